package sipserver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/registrar"
)

// TestSippFlood: three sources flood OPTIONS, REGISTER and INVITE at 50
// requests a second for 2 s (sipp, no retransmissions): each is answered
// up to the limit of 16 in 2 s and then dropped, and stays banned after
// the flood; meanwhile the carrier, from its inbound_from address, places
// 40 calls at 20 a second — more than 16 in 2 s, under the trunks' own
// limit — and every one is answered.
func TestSippFlood(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	uas := startSipp(ctx, t, "carrier", sippOptions{scenario: "uas_answer.xml", rtpEcho: true,
		args: []string{"-m", "40"}})
	h := startServer(t, sippTrunkDoc(uas.uasAddr(), "", ""), harnessOptions{guard: &registrar.GuardConfig{TrunkRequests: 400}})

	flood := func(ip, method string, args ...string) *sipp {
		return startSipp(ctx, t, "flood-"+method, sippOptions{scenario: floodScenario(t, method), ip: ip, remote: h.addr,
			service: "100", args: args})
	}
	var floods []*sipp
	for i, method := range []string{"OPTIONS", "REGISTER", "INVITE"} {
		floods = append(floods, flood(fmt.Sprintf("127.0.0.%d", 5+i), method, "-r", "50", "-m", "100"))
	}
	caller := startSipp(ctx, t, "caller", sippOptions{scenario: "uac_call.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"), args: []string{"-r", "20", "-m", "40", "-l", "40"}})

	for _, f := range floods {
		f.wait()
		sent, answered := len(f.sent(strings.TrimPrefix(f.name, "flood-")+" ")), answeredCalls(f)
		t.Logf("%s: %d sent, %d answered", f.name, sent, answered)
		if sent != 100 || answered < 10 || answered > 16 {
			t.Errorf("%s: %d requests sent, %d answered; want 100 sent, 10 to 16 answered (16 in 2 s, then banned)", f.name, sent, answered)
		}
	}
	caller.expectSuccess()
	uas.expectSuccess()
	if n := len(caller.received("SIP/2.0 200")); n < 40 {
		t.Errorf("carrier calls during the floods: %d answered 200, want 40", n)
	}
	// After the flood the sources are still banned; another is not.
	again, fresh := flood("127.0.0.5", "OPTIONS"), flood("127.0.0.8", "OPTIONS")
	again.wait()
	fresh.wait()
	if n := answeredCalls(again); n != 0 {
		t.Errorf("a banned source was answered after its flood")
	}
	if n := answeredCalls(fresh); n != 1 {
		t.Errorf("another source got %d answers to one OPTIONS, want 1", n)
	}
}

// answeredCalls counts the calls of s that got a final answer (a 403 to
// an INVITE comes again and again: the flood never ACKs it).
func answeredCalls(s *sipp) int {
	ids := map[string]bool{}
	for _, m := range s.received("SIP/2.0 ") {
		if !strings.HasPrefix(m.line(), "SIP/2.0 1") {
			ids[m.header("Call-ID")] = true
		}
	}
	return len(ids)
}

// floodScenario writes testdata/sipp/flood.xml with method in place of
// METHOD and returns its path.
func floodScenario(t *testing.T, method string) string {
	b, err := os.ReadFile(sippScenario(t, "flood.xml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "flood-"+method+".xml")
	if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("METHOD"), []byte(method)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
