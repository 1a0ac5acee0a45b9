package node_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestSecurityEventsCounted: what a node's guard refuses is counted in
// /metrics by kind: a scanner's OPTIONS (dropped unanswered), five wrong
// passwords from one address (five auth_failure, then a lockout).
func TestSecurityEventsCounted(t *testing.T) {
	s := nodetest.Run(t, acmeDoc)
	// A scanner's OPTIONS, as sipvicious' svmap sends it.
	c, err := net.Dial("udp", s.SIPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	fmt.Fprintf(c, "OPTIONS sip:100@%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;branch=z9hG4bK-scan1;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: \"sipvicious\" <sip:100@1.1.1.1>;tag=6131\r\nTo: \"sipvicious\" <sip:100@1.1.1.1>\r\n"+
		"Call-ID: scan1\r\nCSeq: 1 OPTIONS\r\nContact: <sip:100@%[2]s>\r\nUser-Agent: friendly-scanner\r\n"+
		"Accept: application/sdp\r\nContent-Length: 0\r\n\r\n", s.SIPAddr, local)
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(make([]byte, 2048)); err == nil {
		t.Errorf("a scanner's OPTIONS was answered (%d bytes)", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := testphone.New(ctx, testphone.Config{Name: "guesser", User: "alice", Password: "wrong", Domain: "acme.test",
		Registrar: s.SIPAddr, IP: netip.MustParseAddr("127.0.0.9")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range 5 {
		if code, _ := p.Register(ctx, time.Hour); code == 200 {
			t.Fatal("a wrong password registered")
		}
	}
	want := map[string]string{"scanner_dropped": "1", "auth_failure": "5", "lockout": "1", "ban": "0"}
	var metrics string
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := http.Get(s.HTTPURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		metrics = string(b)
		ok := true
		for kind, n := range want {
			ok = ok && strings.Contains(metrics, fmt.Sprintf("switchboard_security_events_total{event=%q} %s\n", kind, n))
		}
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("want %v in /metrics:\n%s", want, grepLines(metrics, "switchboard_security"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
