package sipserver

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/testphone"
)

func TestRingingNoneIsSilentEarlyMedia(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{AnswerAfter: time.Second})
	c, err := w.call("+34910000012", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.EarlyMedia() {
		t.Errorf("ringing: none should answer 183 with SDP, got %v", c.Provisionals())
	}
	hangup(t, c)
}

func TestRingingPrompt(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{AnswerAfter: 3 * time.Second})
	c, err := w.carrier.StartCall(context.Background(), "sip:+34910000013@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if c.IsAnswered() || !c.EarlyMedia() {
		t.Fatalf("want early media before the answer: answered %v, provisionals %v", c.IsAnswered(), c.Provisionals())
	}
	if score := heardPrompt(t, c.Heard(2500*time.Millisecond), "please-hold"); score < 0.7 {
		t.Errorf("caller did not hear the ringing prompt (correlation %.2f)", score)
	}
	select {
	case <-c.Answered():
	case <-time.After(5 * time.Second):
		t.Fatal("not answered")
	}
	hangup(t, c)
}

func TestAnnouncementToCallee(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{})
	start := time.Now()
	c, err := w.call("+34910000015", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := prompt.Builtin("press-one")
	if took, plays := time.Since(start), time.Duration(len(p))*time.Second/8000; took < plays {
		t.Errorf("caller connected after %s, before the %s announcement ended", took, plays)
	}
	bc := incoming(t, bob)
	if score := heardPrompt(t, bc.Heard(5*time.Second), "press-one"); score < 0.7 {
		t.Errorf("callee did not hear the announcement (correlation %.2f)", score)
	}
	if score := heardPrompt(t, c.Heard(5*time.Second), "press-one"); score > 0.5 {
		t.Errorf("the caller heard the announcement too (correlation %.2f)", score)
	}
	hangup(t, c)
}

// TestConfirm: with confirm: true a callee who does not press 1 within 5 s
// of the announcement counts as no answer (a mobile's voicemail picking up)
// and the group moves on; one who presses 1 is connected.
func TestConfirm(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	bob := w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1000)})
	c, err := w.carrier.StartCall(context.Background(), "sip:+34910000023@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	waitEnded(t, ac, 10*time.Second) // no 1 pressed: hung up
	if c.IsAnswered() {
		t.Fatal("the caller was connected to a callee who did not confirm")
	}
	bc := incoming(t, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	time.Sleep(1500 * time.Millisecond) // the announcement
	if err := bc.SendDTMF(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Answered():
	case <-time.After(5 * time.Second):
		t.Fatal("the caller was not connected after bob pressed 1")
	}
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Errorf("caller does not hear bob: %v", err)
	}
	hangup(t, c)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "user:bob" || !sippTraceHas(rec, "user:alice did not press 1") || !sippTraceHas(rec, "user:bob pressed 1") {
		t.Errorf("record: answered_by %q trace %q", rec.AnsweredBy, rec.Trace)
	}
}
