package node_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/testphone"
)

// httpDoc is the account of the HTTP side's tests.
const httpDoc = `
account: acme
domain: acme.test
users:
  alice: { extension: "101", password: pa }
`

// startHTTPNode starts a node as serve does, with o's HTTP and TLS
// settings, on loopback; it stops at the end of the test.
func startHTTPNode(t *testing.T, o node.Options) *node.Node {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "acme.yaml")
	if err := os.WriteFile(cfg, []byte(httpDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	o.DB = "sqlite:" + filepath.Join(dir, "sb.db")
	o.ConfigFile = cfg
	o.SIPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	o.MediaIP = netip.MustParseAddr("127.0.0.1")
	o.RTPMin, o.RTPMax = 40000+os.Getpid()%40*100, 40000+os.Getpid()%40*100+99
	o.Drain = time.Second
	o.Secret = []byte("http-test-secret-0123456789")
	o.Recordings, o.PromptDir = t.TempDir(), t.TempDir()
	o.Guard = registrar.GuardConfig{FloodRequests: -1}
	o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var n *node.Node
	var err error
	for range 10 { // the TCP port beside a free UDP one may be taken
		var op *net.OpError
		if n, err = node.Start(ctx, o); err == nil || !errors.As(err, &op) || op.Op != "listen" {
			break
		}
	}
	if err != nil {
		cancel()
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		done := make(chan error, 1)
		go func() { done <- n.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the node did not stop")
		}
	})
	for deadline := time.Now().Add(5 * time.Second); !n.SIP.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
	}
	return n
}

// short are timeouts a test can wait out.
var short = node.HTTPTimeouts{ReadHeader: time.Second, Read: 2 * time.Second, Write: 2 * time.Second, Idle: 2 * time.Second}

// closedWithin reads c until the server closes it (EOF or reset) and
// reports how long that took; it fails past limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: still open after %s", c.LocalAddr(), limit)
	}
	return time.Since(start)
}

// TestSlowlorisHTTP: clients that send their headers a byte a second, a
// body a byte at a time, or nothing after a request are disconnected by
// the server's timeouts, while a normal request is served at once.
func TestSlowlorisHTTP(t *testing.T) {
	n := startHTTPNode(t, node.Options{HTTPTimeouts: short})
	addr := n.HTTPAddr.String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Slow headers: a byte a second, never the blank line.
	var wg sync.WaitGroup
	const loris = 20
	cut := make(chan time.Duration, loris)
	for range loris {
		c := dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			stop := make(chan struct{})
			go func() {
				defer close(stop)
				for range 30 {
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			cut <- closedWithin(t, c, short.ReadHeader+3*time.Second)
			c.Close()
			<-stop
		}()
	}
	// Meanwhile a normal request is served.
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	res, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz beside %d slow clients: %v", loris, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "ok\n" || time.Since(start) > time.Second {
		t.Errorf("GET /healthz beside slow clients: %d %q in %s", res.StatusCode, b, time.Since(start))
	}
	wg.Wait()
	close(cut)
	for d := range cut {
		if d > short.ReadHeader+2*time.Second {
			t.Errorf("a slow-header client was cut after %s (ReadHeaderTimeout %s)", d, short.ReadHeader)
		}
	}

	// A slow body: the headers promise 1000 bytes that come a byte a second.
	sb := dial()
	_, _ = io.WriteString(sb, "PUT /api/v1/acme/prompts/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	go func() {
		for range 30 {
			if _, err := sb.Write([]byte(" ")); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
	if d := closedWithin(t, sb, short.Read+4*time.Second); d > short.Read+2*time.Second {
		t.Errorf("a slow-body client was cut after %s (ReadTimeout %s)", d, short.Read)
	}

	// An idle kept-alive connection: one request, then nothing.
	c := dial()
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	rd := bufio.NewReader(c)
	if line, err := rd.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("keep-alive request: %q %v", line, err)
	}
	start = time.Now()
	_ = c.SetReadDeadline(start.Add(short.Idle + 3*time.Second))
	_, err = io.Copy(io.Discard, rd)
	if d := time.Since(start); err != nil || d > short.Idle+2*time.Second {
		t.Errorf("an idle connection was closed after %s (%v), IdleTimeout %s", d, err, short.Idle)
	}
}

// TestSlowlorisEventStream: the live event stream outlives the server's
// read and write timeouts (it is exempt from them) and still delivers.
func TestSlowlorisEventStream(t *testing.T) {
	n := startHTTPNode(t, node.Options{HTTPTimeouts: short})
	tok, _, err := n.Store.NewToken(context.Background(), "acme", "stream", true)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr.String()+"/api/v1/acme/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("events: %d", res.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	time.Sleep(short.Read + short.Write) // past both deadlines
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := testphone.New(ctx, testphone.Config{Name: "alice", User: "alice", Password: "pa", Domain: "acme.test", Registrar: n.SIP.UDPAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if code, err := p.Register(ctx, time.Hour); code != 200 {
		t.Fatalf("register: %d %v", code, err)
	}
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended after %s", short.Read+short.Write)
			}
			if strings.Contains(l, "registration.changed") {
				return
			}
		case <-ctx.Done():
			t.Fatal("no registration.changed on the stream")
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files, and returns them with a pool trusting the certificate.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
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
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return certFile, keyFile, pool
}

// TestHTTPSAndSIPTLS: with a certificate the HTTP address serves HTTPS
// only (plain HTTP there gets no page), SIP over TLS listens with the
// same certificate, and MetricsAddr moves /metrics off the public
// address to a plain-HTTP one of its own.
func TestHTTPSAndSIPTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	n := startHTTPNode(t, node.Options{TLSCert: certFile, TLSKey: keyFile, SIPTLSAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0"})
	addr := n.HTTPAddr.String()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	fetch := func(c *http.Client, url string) (int, string, error) {
		res, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), nil
	}
	if code, body, err := fetch(hc, "https://"+addr+"/healthz"); err != nil || code != 200 || body != "ok\n" {
		t.Errorf("HTTPS /healthz: %d %q %v", code, body, err)
	}
	if code, body, err := fetch(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/healthz"); err == nil && (code == 200 || strings.Contains(body, "ok")) {
		t.Errorf("plain HTTP to the HTTPS port: %d %q", code, body)
	}
	if code, _, err := fetch(hc, "https://"+addr+"/metrics"); err != nil || code != 404 {
		t.Errorf("/metrics on the public address: %d %v, want 404 (it has its own)", code, err)
	}
	if n.MetricsAddr.String() == addr {
		t.Fatalf("MetricsAddr is the HTTP address %s", addr)
	}
	if code, body, err := fetch(&http.Client{Timeout: 5 * time.Second}, "http://"+n.MetricsAddr.String()+"/metrics"); err != nil || code != 200 || !strings.Contains(body, "switchboard_calls_total") {
		t.Errorf("/metrics on MetricsAddr: %d %v %.100q", code, err, body)
	}
	if code, _, err := fetch(&http.Client{Timeout: 5 * time.Second}, "http://"+n.MetricsAddr.String()+"/api/v1/acme/numbers"); err != nil || code != 404 {
		t.Errorf("the API on MetricsAddr: %d %v, want 404", code, err)
	}
	// The sign-in cookie is Secure over HTTPS (the console serves here too).
	if code, body, err := fetch(hc, "https://"+addr+"/signin"); err != nil || code != 200 || !strings.Contains(body, "<form") {
		t.Errorf("HTTPS /signin: %d %v", code, err)
	}
	sa := n.SIP.TLSAddr()
	if sa == nil {
		t.Fatal("no SIP over TLS listener")
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", sa.String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("SIP over TLS handshake with the certificate of --tls-cert: %v", err)
	}
	c.Close()
}

// TestTLSOptionsRefused: a certificate without its key, or SIP over TLS
// without a certificate, stops the node from starting with an error that
// says so.
func TestTLSOptionsRefused(t *testing.T) {
	certFile, _, _ := writeCert(t)
	for name, o := range map[string]node.Options{
		"cert without key": {TLSCert: certFile},
		"sip-tls alone":    {SIPTLSAddr: "127.0.0.1:0"},
		"unreadable":       {TLSCert: certFile, TLSKey: certFile},
	} {
		o.DB = "sqlite:" + filepath.Join(t.TempDir(), "sb.db")
		o.SIPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
		ctx, cancel := context.WithCancel(context.Background())
		n, err := node.Start(ctx, o)
		if err == nil {
			t.Errorf("%s: the node started", name)
			cancel()
			_ = n.Wait()
			continue
		}
		cancel()
		if !strings.Contains(err.Error(), "tls") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSlowlorisUploadAccepted: an accepted prompt upload whose body takes
// longer than the server's read timeout still arrives (uploads get their
// own deadline once the token is checked).
func TestSlowlorisUploadAccepted(t *testing.T) {
	n := startHTTPNode(t, node.Options{HTTPTimeouts: short})
	tok, _, err := n.Store.NewToken(context.Background(), "acme", "upload", false)
	if err != nil {
		t.Fatal(err)
	}
	wav := wav8k(8000)
	pr, pw := io.Pipe()
	go func() {
		// The body in four parts over 3 s: past ReadTimeout (2 s).
		for i := range 4 {
			if i > 0 {
				time.Sleep(time.Second)
			}
			if _, err := pw.Write(wav[i*len(wav)/4 : (i+1)*len(wav)/4]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", "http://"+n.HTTPAddr.String()+"/api/v1/acme/prompts/slow", pr)
	req.ContentLength = int64(len(wav))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "audio/wav")
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 && res.StatusCode != 201 {
		t.Errorf("slow upload: %d %s", res.StatusCode, b)
	}
}

// wav8k is a mono 16-bit 8 kHz WAV of n samples of a 440 Hz tone.
func wav8k(n int) []byte {
	data := make([]byte, 2*n)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))
		binary.LittleEndian.PutUint16(data[2*i:], uint16(v))
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+len(data)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}
