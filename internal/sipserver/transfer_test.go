package sipserver

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

// TestTransfer: the callee of an extension with transfer: true sends the
// caller to another extension, by dialling 0 and its two-digit code or by a
// SIP REFER; without transfer the digits do nothing.
func TestTransfer(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Play: testphone.Tone(1000)})
	bob := w.user("bob", "pb", testphone.Behavior{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, how := range []string{"dtmf", "refer"} {
		c, err := w.call("+34910000016", "+34911222333", "")
		if err != nil {
			t.Fatal(err)
		}
		bc := incoming(t, bob)
		if how == "dtmf" { // an unknown code: "not available" to the callee, the call stays
			if err := bc.SendDTMF(ctx, "099"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2500 * time.Millisecond)
			if score := heardPrompt(t, bc.Heard(2500*time.Millisecond), "not-available"); score < 0.7 {
				t.Errorf("unknown code: the callee did not hear 'not available' (%.2f)", score)
			}
			if bc.EndReason() != testphone.EndNone {
				t.Fatalf("unknown code ended the call: %s", bc.EndReason())
			}
		}
		switch how {
		case "dtmf":
			// The transfer may hang bob up while his last digit's end
			// packets are still going out.
			if err := bc.SendDTMF(ctx, "021"); err != nil && bc.EndReason() == testphone.EndNone {
				t.Fatal(err)
			}
		case "refer":
			if code, err := bc.Refer(ctx, "sip:21@"+w.h.addr); err != nil || code != 202 {
				t.Fatalf("REFER: %d %v", code, err)
			}
		}
		waitEnded(t, bc, 5*time.Second)
		ac := incoming(t, alice)
		if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
			t.Errorf("%s: the caller does not hear alice after the transfer: %v", how, err)
		}
		if got := c.DTMFReceived(); got != "" {
			t.Errorf("%s: the callee's transfer keys reached the caller: %q", how, got)
		}
		if c.IsAnswered() && c.EndReason() != testphone.EndNone {
			t.Errorf("%s: the caller's call ended: %s", how, c.EndReason())
		}
		hangup(t, c)
		waitEnded(t, ac, 5*time.Second)
		rec := lastRecord(t, w.h, i+1)
		if rec.AnsweredBy != "user:alice" || !slices.ContainsFunc(rec.Trace, func(s string) bool { return strings.Contains(s, "user:bob transfers the caller to seq") }) {
			t.Errorf("%s: record answered_by=%q trace=%q", how, rec.AnsweredBy, rec.Trace)
		}
	}
	// Without transfer: true, 0 + code is just DTMF passed to the caller.
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	if err := ac.SendDTMF(ctx, "022"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDTMF(ctx, "022"); err != nil {
		t.Errorf("DTMF not relayed to the caller: %v", err)
	}
	if ac.EndReason() != testphone.EndNone {
		t.Errorf("the callee was hung up without transfer: true (%s)", ac.EndReason())
	}
	hangup(t, c)
}
