package sipserver

import (
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/config"
)

// FuzzInviteHeaders feeds the headers Switchboard reads from a carrier's
// INVITE (From, Privacy, P-Asserted-Identity with verstat, the reputation
// score header, To with its tag) through the parser and our readers: no
// panic, and the results stay in range.
func FuzzInviteHeaders(f *testing.F) {
	f.Add(`"Jane" <sip:+34600111222@carrier>;tag=a`, "none", "<sip:+34600111222@c;verstat=TN-Validation-Failed>", "95", "<sip:+34910000000@sb>")
	f.Add("<sip:anonymous@anonymous.invalid>;tag=x", "id", "", "abc", "<sip:1@h>;tag=")
	f.Add("sip:@", "", "<sip:x;verstat=No-TN-Validation>", "-5", "x")
	f.Fuzz(func(t *testing.T, from, privacy, pai, score, to string) {
		raw := fmt.Sprintf("INVITE sip:+34910000000@127.0.0.1 SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKfuzz\r\nFrom: %s\r\nTo: %s\r\n"+
			"Call-ID: fuzz\r\nCSeq: 1 INVITE\r\nPrivacy: %s\r\nP-Asserted-Identity: %s\r\nX-Spam-Score: %s\r\n"+
			"Content-Length: 0\r\n\r\n", from, to, privacy, pai, score)
		msg, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		if c := callerNumber(req); c == "" {
			t.Fatal("empty caller: a withheld caller must read as anonymous")
		}
		if l := reputation(req, "X-Spam-Score"); l > config.LevelHigh {
			t.Fatalf("reputation %d out of range", l)
		}
	})
}
