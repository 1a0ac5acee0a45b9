package sipserver

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestPark: calls sent to a park lot wait in the lowest free orbit hearing
// "parked in orbit 7 0 1" and music; a user dialling the orbit is bridged
// to the call; an empty orbit is 404; a full lot and the lot's timeout
// send the call to return_to.
func TestPark(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{})
	carol := w.user("carol", "pc", testphone.Behavior{Play: testphone.Tone(1200)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, err := w.call("+34910000025", "+34911222333", "", testphone.DialOptions{Play: testphone.Tone(700)()})
	if err != nil {
		t.Fatal(err)
	}
	second, err := w.call("+34910000025", "+34911222444", "", testphone.DialOptions{Play: testphone.Tone(900)()})
	if err != nil {
		t.Fatal(err)
	}
	// The lot is full: a third call goes straight to return_to.
	third, err := w.call("+34910000025", "+34911222555", "")
	if err != nil {
		t.Fatal(err)
	}
	cc := incoming(t, carol)
	if err := third.WaitForTone(ctx, 1200, 200*time.Millisecond); err != nil {
		t.Errorf("full lot: not connected to return_to: %v", err)
	}
	hangup(t, third)
	waitEnded(t, cc, 5*time.Second)

	if err := second.WaitForTone(ctx, 523.25, 300*time.Millisecond); err != nil {
		t.Errorf("no hold music in orbit 702: %v", err)
	}
	if score := heardPrompt(t, second.Heard(5*time.Second), "parked"); score < 0.7 {
		t.Errorf("'you have been parked in orbit' not heard (%.2f)", score)
	}
	// bob picks up orbit 702: the second caller, both ways.
	pick, err := bob.Dial(ctx, "sip:702@"+w.h.addr, testphone.DialOptions{Play: testphone.Tone(1500)()})
	if err != nil {
		t.Fatalf("bob dials orbit 702: %v", err)
	}
	if err := pick.WaitForTone(ctx, 900, 200*time.Millisecond); err != nil {
		t.Errorf("bob does not hear the caller parked in 702: %v", err)
	}
	if err := second.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
		t.Errorf("the parked caller does not hear bob: %v", err)
	}
	hangup(t, second)
	waitEnded(t, pick, 5*time.Second)
	if _, err := bob.Dial(ctx, "sip:702@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 404 {
		t.Errorf("empty orbit: %v, want 404", err)
	}

	// Nobody picks up orbit 701 within 6 s: it goes to carol.
	cc = incoming(t, carol)
	if err := first.WaitForTone(ctx, 1200, 200*time.Millisecond); err != nil {
		t.Errorf("timeout: not connected to return_to: %v", err)
	}
	hangup(t, first)
	waitEnded(t, cc, 5*time.Second)

	recs := w.h.waitCalls("acme", 5)
	byCaller := map[string]store.CallRecord{}
	for _, r := range recs {
		byCaller[r.Caller] = r
	}
	if r := byCaller["+34911222444"]; r.AnsweredBy != "user:bob" || !sippTraceHas(r, "picked up from orbit 702 by user:bob") || !sippTraceHas(r, "parked in orbit 702 of lot") {
		t.Errorf("picked-up call: answered_by %q trace %q", r.AnsweredBy, r.Trace)
	}
	if r := byCaller["+34911222333"]; r.AnsweredBy != "user:carol" || !sippTraceHas(r, "orbit 701: nobody picked up within 6s") {
		t.Errorf("timed-out call: answered_by %q trace %q", r.AnsweredBy, r.Trace)
	}
	if r := byCaller["+34911222555"]; r.AnsweredBy != "user:carol" || !sippTraceHas(r, "every orbit (701-702) is taken") {
		t.Errorf("full lot: answered_by %q trace %q", r.AnsweredBy, r.Trace)
	}
}
