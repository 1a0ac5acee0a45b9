package sipserver

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

// TestVoiceCaptcha: a caller whose reputation reaches the rule's threshold
// is answered and asked for a 3-digit code; typing it continues the rules
// (the call reaches the group), failing twice plays goodbye and hangs up.
func TestVoiceCaptcha(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Play: testphone.Tone(1000)})
	spam := testphone.DialOptions{Headers: map[string]string{"X-Spam-Score": "70"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := w.call("+34910000019", "+34911222333", "", spam)
	if err != nil {
		t.Fatalf("captcha answers the call: %v", err)
	}
	time.Sleep(4 * time.Second) // "please enter the code", then the three digits
	if score := heardPrompt(t, c.Heard(4*time.Second), "enter-code"); score < 0.7 {
		t.Errorf("no 'please enter the code' prompt (correlation %.2f)", score)
	}
	if err := c.SendDTMF(ctx, "456"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatalf("after the right code the call does not reach alice: %v", err)
	}
	hangup(t, c)
	rec := lastRecord(t, w.h, 1)
	if rec.Outcome != "routed" || rec.AnsweredBy != "user:alice" || !sippTraceHas(rec, "captcha passed: true") {
		t.Errorf("passed captcha record: %+v", rec)
	}

	c, err = w.call("+34910000019", "+34911222333", "", spam)
	if err != nil {
		t.Fatal(err)
	}
	for _, wait := range []time.Duration{4 * time.Second, 5 * time.Second} {
		time.Sleep(wait) // the code read out (again, after "the code was not correct")
		if err := c.SendDTMF(ctx, "111"); err != nil {
			t.Fatal(err)
		}
	}
	waitEnded(t, c, 15*time.Second)
	if c.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("failed captcha: end reason %s", c.EndReason())
	}
	if score := heardPrompt(t, c.Heard(3*time.Second), "goodbye"); score < 0.7 {
		t.Errorf("no goodbye after a failed captcha (correlation %.2f)", score)
	}
	if rec := lastRecord(t, w.h, 2); rec.Outcome != "captcha_failed" {
		t.Errorf("failed captcha record: %+v", rec)
	}
}
