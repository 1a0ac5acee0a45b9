package cluster

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestSharedLockout: a source guesses alice's password 3 times on one
// node and 2 times on the other — fewer than 5 on each, 5 in all — and is
// locked out of both: a REGISTER with the right password from it is
// refused 403 by either node, while another address registers fine.
func TestSharedLockout(t *testing.T) {
	c := startCluster(t, clusterOptions{config: accountYAML("")})
	guesser, err := net.ListenPacket("udp", phoneIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer guesser.Close()
	for i, n := range []*node{c.nodes[0], c.nodes[1], c.nodes[0], c.nodes[1], c.nodes[0]} {
		code, err := wrongRegister(guesser, n.SIP(), fmt.Sprintf("guess-%d", i))
		if err != nil {
			t.Fatalf("guess %d on %s: %v", i+1, n.id, err)
		}
		if i < 4 && code != 401 && code != 403 {
			t.Fatalf("guess %d on %s: %d, want the wrong password refused", i+1, n.id, code)
		}
		t.Logf("guess %d on %s: %d", i+1, n.id, code)
	}
	for _, n := range c.nodes {
		var code int
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			code = register(t, phoneIP, n, "pw-alice")
			if code == 403 || time.Now().After(deadline) {
				break
			}
		}
		if code != 403 {
			t.Errorf("%s: the right password from the locked-out %s gets %d, want 403", n.id, phoneIP, code)
		}
	}
	if code := register(t, "127.0.0.5", c.nodes[1], "pw-alice"); code != 200 {
		t.Errorf("another address: REGISTER %d, want 200", code)
	}
}

// register sends one REGISTER for alice from ip straight to n (not
// through Kamailio) and returns its final status.
func register(t *testing.T, ip string, n *node, password string) int {
	t.Helper()
	p, err := testphone.New(ctxFor(t, 5*time.Second), testphone.Config{
		Name: "alice-" + ip, User: "alice", Password: password, Domain: "acme.test",
		Registrar: n.SIP(), IP: netip.MustParseAddr(ip), RTPPortMin: 47000, RTPPortMax: 47999,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	code, _ := p.Register(ctxFor(t, 10*time.Second), time.Minute)
	return code
}

var nonceRe = regexp.MustCompile(`nonce="([^"]+)"`)

// wrongRegister sends a REGISTER for alice, answers its challenge with a
// wrong password (one failed authentication, exactly) and returns the
// final status of that second REGISTER.
func wrongRegister(conn net.PacketConn, to, callID string) (int, error) {
	dst, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return 0, err
	}
	local := conn.LocalAddr().String()
	send := func(cseq int, auth string) (string, error) {
		msg := fmt.Sprintf("REGISTER sip:acme.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s%d;rport\r\n"+
			"From: <sip:alice@acme.test>;tag=g%s\r\nTo: <sip:alice@acme.test>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n"+
			"Contact: <sip:alice@%s>\r\nMax-Forwards: 70\r\nExpires: 60\r\n%sContent-Length: 0\r\n\r\n",
			local, callID, cseq, callID, callID, cseq, local, auth)
		if _, err := conn.WriteTo([]byte(msg), dst); err != nil {
			return "", err
		}
		buf := make([]byte, 65535)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return "", err
			}
			res := string(buf[:n])
			if strings.Contains(res, fmt.Sprintf("CSeq: %d REGISTER", cseq)) && !strings.HasPrefix(res, "SIP/2.0 100") {
				return res, nil
			}
		}
	}
	res, err := send(1, "")
	if err != nil {
		return 0, err
	}
	m := nonceRe.FindStringSubmatch(res)
	if !strings.HasPrefix(res, "SIP/2.0 401") || m == nil {
		return 0, fmt.Errorf("no challenge: %.60q", res)
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1, ha2 := h("alice:acme.test:not-her-password"), h("REGISTER:sip:acme.test")
	resp := h(ha1 + ":" + m[1] + ":00000001:0a4f113b:auth:" + ha2)
	auth := fmt.Sprintf("Authorization: Digest username=\"alice\", realm=\"acme.test\", nonce=%q, uri=\"sip:acme.test\", "+
		"response=%q, algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n", m[1], resp)
	if res, err = send(2, auth); err != nil {
		return 0, err
	}
	var code int
	if _, err := fmt.Sscanf(res, "SIP/2.0 %d", &code); err != nil {
		return 0, fmt.Errorf("status line of %.60q", res)
	}
	return code, nil
}

// TestSharedFloodCount: one caller's 11 calls to the account within a
// minute, placed on the two nodes in turn (6 and 5: under the flood
// guard's limit of 10 on each), are counted together: the 11th is marked
// high reputation by the flood guard in its trace.
func TestSharedFloodCount(t *testing.T) {
	c := startCluster(t, clusterOptions{config: accountYAML("")})
	carrier := newCarrierPhone(t)
	const caller = "+34600030001"
	for i := range 11 {
		n := c.nodes[i%2]
		// alice is not registered: the call rings on with tones until the
		// carrier gives up after a second; it is counted all the same.
		ctx := ctxFor(t, time.Second)
		if call, err := carrier.Dial(ctx, "sip:"+deskNumber+"@"+n.SIP(), testphone.DialOptions{FromUser: caller}); err == nil {
			_ = call.Hangup(ctxFor(t, 5*time.Second))
		}
	}
	var flagged []string
	total := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		flagged, total = flagged[:0], 0
		st, err := store.Open(ctxFor(t, 5*time.Second), c.db)
		if err != nil {
			t.Fatal(err)
		}
		err = st.EachCall(ctxFor(t, 5*time.Second), store.CallFilter{Account: "acme"}, func(r *store.CallRecord) error {
			if r.Caller != caller || r.End.IsZero() {
				return nil
			}
			total++
			for _, l := range r.Trace {
				if strings.Contains(l, "(flood guard)") {
					flagged = append(flagged, r.Node+": "+l)
				}
			}
			return nil
		})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if total == 11 {
			break
		}
	}
	if total != 11 {
		t.Fatalf("%d records of the caller's 11 calls", total)
	}
	if len(flagged) != 1 || !strings.Contains(flagged[0], "placed 11 calls to the account within 1m0s (flood guard): high") {
		t.Fatalf("flood guard notes %q; want the 11th call alone marked high", flagged)
	}
	t.Logf("11 calls on two nodes, the 11th flagged: %s", flagged[0])
}
