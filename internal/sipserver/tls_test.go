package sipserver

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/store"
)

const tlsDoc = `
account: acme
domain: acme.test
users:
  alice: { extension: "101", password: tls-pw }
`

// selfSigned is a certificate for 127.0.0.1 made for the test, and a pool
// trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "switchboard test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// startTLSServer is startServer's server with a SIP over TLS listener.
func startTLSServer(t *testing.T, cert tls.Certificate) *Server {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "sb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	applyYAML(t, st, tlsDoc)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := accounts.New(accounts.Config{Store: st, Log: log})
	if err := dir.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	srv, err := Listen(Config{Accounts: dir, Contacts: st, Log: log, SIPAddr: "127.0.0.1:" + strconv.Itoa(port),
		Secret: []byte("test-secret-0123456789"), Guard: registrar.GuardConfig{FloodRequests: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}); err != nil {
		srv.Shutdown(ctx)
		t.Fatal(err)
	}
	rtpMin := 20000 + (port%20)*500
	alloc, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), rtpMin, rtpMin+499)
	if err != nil {
		t.Fatal(err)
	}
	engine := call.New(call.Config{UA: srv.DialogUA(), Media: alloc, MediaIP: netip.MustParseAddr("127.0.0.1"),
		Devices: srv.Devices(), Records: st, Counters: st, Log: log, Recordings: t.TempDir()})
	srv.Serve(engine)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	return srv
}

// sipConn is a raw SIP client over one stream connection.
type sipConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

// register sends a REGISTER for alice, with auth as its Authorization
// header when set, and returns the response.
func (sc *sipConn) register(cseq int, auth string) *sip.Response {
	sc.t.Helper()
	local := sc.c.LocalAddr().String()
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:acme.test;transport=tls SIP/2.0\r\n")
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=z9hG4bK-tls-%d;rport\r\n", local, cseq)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:alice@acme.test>;tag=tls1\r\nTo: <sip:alice@acme.test>\r\n")
	fmt.Fprintf(&b, "Call-ID: tls-register-test\r\nCSeq: %d REGISTER\r\n", cseq)
	fmt.Fprintf(&b, "Contact: <sip:alice@%s;transport=tls>\r\nExpires: 60\r\n", local)
	if auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	_ = sc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(sc.c, b.String()); err != nil {
		sc.t.Fatalf("write REGISTER: %v", err)
	}
	return sc.response()
}

// response reads one response (a stream: headers, then Content-Length).
func (sc *sipConn) response() *sip.Response {
	sc.t.Helper()
	var msg strings.Builder
	length := 0
	for {
		line, err := sc.rd.ReadString('\n')
		if err != nil {
			sc.t.Fatalf("read response: %v (so far %q)", err, msg.String())
		}
		msg.WriteString(line)
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" && msg.Len() > 2 {
			break
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(sc.rd, body); err != nil {
		sc.t.Fatal(err)
	}
	m, err := sip.ParseMessage(append([]byte(msg.String()), body...))
	if err != nil {
		sc.t.Fatalf("parse %q: %v", msg.String(), err)
	}
	res, ok := m.(*sip.Response)
	if !ok {
		sc.t.Fatalf("not a response: %q", msg.String())
	}
	return res
}

// TestTLSRegister: a REGISTER over TLS (the server's certificate verified)
// is challenged 401 and, answered with the user's digest, accepted 200 —
// the same registrar as UDP and TCP, on the TLS listener.
func TestTLSRegister(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startTLSServer(t, cert)
	addr := srv.TLSAddr().String()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	sc := &sipConn{t: t, c: c, rd: bufio.NewReader(c)}
	res := sc.register(1, "")
	if res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("REGISTER without credentials: %d %s, want 401", res.StatusCode, res.Reason)
	}
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		t.Fatal("401 without WWW-Authenticate")
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:acme.test;transport=tls",
		Username: "alice", Password: "tls-pw", Count: 1, Cnonce: "0a4f113b"})
	if err != nil {
		t.Fatal(err)
	}
	res = sc.register(2, cred.String())
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("REGISTER with credentials: %d %s, want 200", res.StatusCode, res.Reason)
	}
	if via := res.Via(); via == nil || !strings.EqualFold(via.Transport, "TLS") {
		t.Errorf("the 200's Via is %v, want the request's TLS one", via)
	}
}

// TestTLSHandshakeTimeout: a client that connects and never says hello is
// disconnected once the handshake time is up, while another registers.
func TestTLSHandshakeTimeout(t *testing.T) {
	defer func(d time.Duration) { tlsHandshakeTimeout = d }(tlsHandshakeTimeout)
	tlsHandshakeTimeout = time.Second
	cert, pool := selfSigned(t)
	srv := startTLSServer(t, cert)
	addr := srv.TLSAddr().String()
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("a second client is refused while one stalls: %v", err)
	}
	sc := &sipConn{t: t, c: c, rd: bufio.NewReader(c)}
	if res := sc.register(1, ""); res.StatusCode != sip.StatusUnauthorized {
		t.Errorf("REGISTER beside a stalled client: %d, want 401", res.StatusCode)
	}
	c.Close()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("the stalled client read data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the stalled client is still connected after %s", time.Since(start))
	}
}
