package sipserver

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

func TestOnFailureTones(t *testing.T) {
	w := newWorld(t, harnessOptions{ringTimeout: time.Second})
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.Busy})

	// The last failure was busy: the caller gets 486.
	_, err := w.call("+34910000004", "+34911222333", "")
	if code := testphone.StatusCode(err); code != 486 {
		t.Fatalf("busy member: got %d (%v), want 486", code, err)
	}
	// No answer: ringing goes on, then 480 when the ring timeout ends.
	alice.SetBehavior(testphone.Behavior{Mode: testphone.NeverAnswer})
	start := time.Now()
	c, err := w.call("+34910000005", "+34911222333", "")
	if code := testphone.StatusCode(err); code != 480 {
		t.Fatalf("no answer: got %d (%v), want 480", code, err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("480 after %s: ringback should go on for the ring timeout", took)
	}
	if !slices.Contains(c.Provisionals(), 180) {
		t.Errorf("caller got provisionals %v, want 180", c.Provisionals())
	}
	recs := w.h.waitCalls("acme", 2)
	if recs[0].HangupCause != "no_answer" || recs[1].HangupCause != "busy" {
		t.Errorf("hangup causes %q, %q", recs[0].HangupCause, recs[1].HangupCause)
	}
}

func TestOnFailureContinuesToTarget(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	w.pstn.SetBehavior(testphone.Behavior{})
	c, err := w.call("+34910000009", "+34911222333", "")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	pc := incoming(t, w.pstn)
	if got := pc.Invite().Recipient.User; got != "+34600000003" {
		t.Errorf("trunk INVITE to %q", got)
	}
	hangup(t, c)
	if rec := lastRecord(t, w.h, 1); rec.AnsweredBy != "+34600000003" {
		t.Errorf("record: %+v", rec)
	}
}

func TestOnFailurePrompt(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000014", "+34911222333", "")
	if err != nil {
		t.Fatalf("on_failure prompt answers the call: %v", err)
	}
	waitEnded(t, c, 10*time.Second)
	if c.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("end reason %s, want remote-hangup after the prompt", c.EndReason())
	}
	if score := heardPrompt(t, c.Heard(5*time.Second), "goodbye"); score < 0.7 {
		t.Errorf("caller did not hear the on_failure prompt (correlation %.2f)", score)
	}
	if rec := lastRecord(t, w.h, 1); rec.HangupCause != "prompt_played" {
		t.Errorf("record: %+v", rec)
	}
}

func TestUnknownNumber(t *testing.T) {
	w := newWorld(t)
	_, err := w.call("+34919999999", "+34911222333", "")
	if code := testphone.StatusCode(err); code != 404 {
		t.Fatalf("got %d (%v), want 404", code, err)
	}
	if rec := lastRecord(t, w.h, 1); rec.Outcome != "not_found" {
		t.Errorf("record: %+v", rec)
	}
}
