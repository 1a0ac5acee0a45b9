package sipserver

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

func TestSequentialGroupBusyFirstThenMediaBothWays(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.Busy})
	bob := w.user("bob", "pb", testphone.Behavior{AnswerAfter: 200 * time.Millisecond, Play: testphone.Tone(1000)})

	c, err := w.call("+34910000001", "+34600111222", "Jane Doe", testphone.DialOptions{Play: testphone.Tone(425)()})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatalf("caller does not hear the callee's 1000 Hz: %v", err)
	}
	bc := incoming(t, bob)
	if err := bc.WaitForTone(ctx, 425, 200*time.Millisecond); err != nil {
		t.Fatalf("callee does not hear the caller's 425 Hz: %v", err)
	}
	if c.HeardTone(425, 200*time.Millisecond) || bc.HeardTone(1000, 200*time.Millisecond) {
		t.Error("a side hears its own tone: media is looped, not relayed")
	}
	ac := incoming(t, alice)
	if ac.Status() != 486 {
		t.Errorf("alice answered %d, want 486", ac.Status())
	}
	// What the callee's phone was shown: caller ID, name, distinctive ring.
	inv := bc.Invite()
	if from := inv.From(); from.Address.User != "+34600111222" || from.DisplayName != "MAIN MOBILE Jane Doe" {
		t.Errorf("callee saw From %q <%s>", from.DisplayName, from.Address.User)
	}
	if got := bc.Header("Alert-Info"); got != "<http://localhost>;info=ring2" {
		t.Errorf("Alert-Info = %q", got)
	}
	hangup(t, c)
	waitEnded(t, bc, 5*time.Second)
	if bc.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("callee end reason %s", bc.EndReason())
	}
	rec := lastRecord(t, w.h, 1)
	if rec.Outcome != "routed" || rec.AnsweredBy != "user:bob" || rec.HangupCause != "caller_bye" || rec.CallerName != "MAIN MOBILE Jane Doe" {
		t.Errorf("record: %+v", rec)
	}
	if !slices.ContainsFunc(rec.Trace, func(s string) bool { return strings.Contains(s, "[user:alice]: busy") }) {
		t.Errorf("trace does not show alice busy: %q", rec.Trace)
	}
	if rec.Answer.IsZero() || rec.Duration <= 0 {
		t.Errorf("record lacks answer time or duration: %+v", rec)
	}
}

func TestRotatingGroupStartsOneFurtherEachCall(t *testing.T) {
	w := newWorld(t)
	phones := map[string]*testphone.Phone{}
	for _, u := range []struct{ name, pw string }{{"alice", "pa"}, {"bob", "pb"}, {"carol", "pc"}} {
		phones[u.name] = w.user(u.name, u.pw, testphone.Behavior{})
	}
	var got []string
	for i := range 4 {
		c, err := w.call("+34910000002", "+34911222333", "")
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		hangup(t, c)
		got = append(got, lastRecord(t, w.h, i+1).AnsweredBy)
	}
	want := []string{"user:alice", "user:bob", "user:carol", "user:alice"}
	if !slices.Equal(got, want) {
		t.Fatalf("answered by %v, want %v", got, want)
	}
}

func TestMultiRingFirstAnswerWinsOthersCancelled(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	bob := w.user("bob", "pb", testphone.Behavior{AnswerAfter: 300 * time.Millisecond})
	carol := w.user("carol", "pc", testphone.Behavior{Mode: testphone.NeverAnswer})
	carol2 := w.user("carol", "pc", testphone.Behavior{Mode: testphone.NeverAnswer}) // a second device

	c, err := w.call("+34910000003", "+34911222333", "")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	for _, p := range []*testphone.Phone{alice, carol, carol2} {
		ic := incoming(t, p)
		waitEnded(t, ic, 5*time.Second)
		if ic.EndReason() != testphone.EndCanceled {
			t.Errorf("%s: end reason %s, want canceled", p.Config().Name, ic.EndReason())
		}
	}
	bc := incoming(t, bob)
	hangup(t, bc)
	waitEnded(t, c, 5*time.Second)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "user:bob" || rec.HangupCause != "callee_bye" {
		t.Errorf("record: %+v", rec)
	}
}

func TestCallerCancelDuringMultiRing(t *testing.T) {
	w := newWorld(t)
	var phones []*testphone.Phone
	for _, u := range []struct{ name, pw string }{{"alice", "pa"}, {"bob", "pb"}, {"carol", "pc"}} {
		phones = append(phones, w.user(u.name, u.pw, testphone.Behavior{Mode: testphone.NeverAnswer}))
	}
	c, err := w.carrier.StartCall(context.Background(), "sip:+34910000003@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
	if err != nil {
		t.Fatal(err)
	}
	var rung []*testphone.Call
	for _, p := range phones {
		rung = append(rung, incoming(t, p))
	}
	select {
	case <-c.Ringing():
	case <-time.After(5 * time.Second):
		t.Fatal("caller heard no ringing")
	}
	hangup(t, c) // CANCEL
	for _, ic := range rung {
		waitEnded(t, ic, 5*time.Second)
		if ic.EndReason() != testphone.EndCanceled {
			t.Errorf("member end reason %s", ic.EndReason())
		}
	}
	rec := lastRecord(t, w.h, 1)
	if rec.HangupCause != "caller_cancel" || rec.AnsweredBy != "" {
		t.Errorf("record: %+v", rec)
	}
}

func TestBlocklistedMemberIsSkipped(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	w.user("bob", "pb", testphone.Behavior{})
	c, err := w.call("+34910000001", "+19005551234", "")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	hangup(t, c)
	if rec := lastRecord(t, w.h, 1); rec.AnsweredBy != "user:bob" {
		t.Errorf("answered by %q, want user:bob (alice blocks +1900*)", rec.AnsweredBy)
	}
	select {
	case <-alice.Incoming():
		t.Error("alice's phone rang although her blocklist matches the caller")
	default:
	}
}

// TestRingbackAcrossAttempts: when the first member does not answer, the
// caller gets 183 with Switchboard's ringback (425 Hz, or the US 440+480 Hz
// on a +1 number) while the next member rings, so the group sounds like one
// continuous ring.
func TestRingbackAcrossAttempts(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	w.user("bob", "pb", testphone.Behavior{AnswerAfter: 800 * time.Millisecond}) // within seq2's 1s timeout
	for _, tt := range []struct {
		number string
		freqs  []float64
	}{{"+34910000011", []float64{425}}, {"+12125550111", []float64{440, 480}}} {
		c, err := w.carrier.StartCall(context.Background(), "sip:"+tt.number+"@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		for _, f := range tt.freqs {
			if err := c.WaitForTone(ctx, f, 200*time.Millisecond); err != nil {
				t.Errorf("%s: no %v Hz ringback before the answer: %v", tt.number, f, err)
			}
		}
		cancel()
		if c.IsAnswered() {
			t.Errorf("%s: tone heard only after the answer", tt.number)
		}
		if !c.EarlyMedia() || !slices.Contains(c.Provisionals(), 183) {
			t.Errorf("%s: provisionals %v, early media %v", tt.number, c.Provisionals(), c.EarlyMedia())
		}
		select {
		case <-c.Answered():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not answered", tt.number)
		}
		hangup(t, c)
	}
}

// TestQueue: when every member has failed the caller is answered, hears the
// queue message once and then ringing while the members are retried; a
// member who answers within max_wait gets the call, and a caller who hangs
// up in the queue is recorded as abandoned.
func TestQueue(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000022", "+34911222333", "")
	if err != nil {
		t.Fatalf("the queue answers: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if score := heardPrompt(t, c.Heard(2500*time.Millisecond), "please-hold"); score < 0.7 {
		t.Errorf("no queue message (correlation %.2f)", score)
	}
	alice.SetBehavior(testphone.Behavior{Play: testphone.Tone(1000)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatalf("a retried member's answer does not reach the caller: %v", err)
	}
	hangup(t, c)
	if rec := lastRecord(t, w.h, 1); rec.AnsweredBy != "user:alice" || !sippTraceHas(rec, "queue: answered after") {
		t.Errorf("queued call: %+v", rec)
	}

	alice.SetBehavior(testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err = w.call("+34910000022", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	hangup(t, c)
	if rec := lastRecord(t, w.h, 2); rec.HangupCause != "abandoned" || !sippTraceHas(rec, "queue: the caller hung up after waiting") {
		t.Errorf("abandoned call: cause %q trace %q", rec.HangupCause, rec.Trace)
	}
}
