package events

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/store"
)

func onlyAcme(account string) (string, bool) {
	if account == "acme" {
		return "http://127.0.0.1:9/hook", true
	}
	return "", false
}

// journal starts a call writer whose records bring the recorder's final
// events, as the node wires them.
func journal(t *testing.T, st *store.Store, written func()) (*store.CallWriter, *Recorder) {
	var rec *Recorder
	w := st.NewCallWriter(store.CallWriterOptions{Log: quietLog(), Written: written,
		Events: func(r *store.CallRecord) []store.Event { return rec.Final(r) }})
	rec = NewRecorder(w, onlyAcme, quietLog())
	t.Cleanup(w.Close)
	return w, rec
}

// TestRecorderMapsCallEvents: each call event becomes its webhook event,
// with the data of the record as it was when the event happened; a
// finished record brings call.completed, and call.missed when it is a
// missed call; other accounts' and other kinds of events are not recorded.
func TestRecorderMapsCallEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		w, rec := journal(t, st, nil)
		t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
		r := &store.CallRecord{ID: "c1", Account: "acme", Number: "+34910000001", Caller: "+34600000009",
			CallerName: "Ana", Start: t0, Outcome: "routed", Tags: []string{"main"}, Trace: []string{"big"},
			Extension: "support", Direction: store.DirectionInbound}
		emit := func(kind call.EventKind, leg, target string) {
			rec.CallEvent(call.Event{Kind: kind, Time: t0.Add(time.Second), Call: r.ID, Account: r.Account,
				Leg: leg, Target: target, Record: r})
		}
		emit(call.EventStarted, "", "")
		emit(call.EventRinging, "user:alice", "")
		emit(call.EventAnswered, "user:alice", "")
		emit(call.EventTransferred, "user:alice", "user:bob")
		r.Recording, r.RecordingLength, r.RecordingBytes = "rec/c1.wav", 1500*time.Millisecond, 24000
		emit(call.EventRecording, "", "")
		r.Voicemail, r.VoicemailUser = "vm/c1.wav", "bob"
		emit(call.EventVoicemail, "", "")
		// The call goes on changing its record: the events keep what was.
		r.Number = "changed"
		emit(call.EventEnded, "", "") // nothing: the record brings it
		emit(call.EventWaveEnded, "", "")
		r.Number = "+34910000001"
		r.Answer, r.End, r.Duration = t0.Add(2*time.Second), t0.Add(62*time.Second), 60*time.Second
		r.AnsweredBy, r.HangupCause = "user:alice", "callee_bye"
		if err := w.InsertCall(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		// A missed call, and one of an account without a webhook.
		missed := &store.CallRecord{ID: "c3", Account: "acme", Number: "+34910000001", Caller: "+34600000007",
			Start: t0.Add(time.Minute), End: t0.Add(80 * time.Second), Outcome: "routed", Extension: "support",
			HangupCause: "caller_cancel", Direction: store.DirectionInbound}
		for _, c := range []*store.CallRecord{missed, {ID: "c2", Account: "beta", Start: t0, End: t0}} {
			if err := w.InsertCall(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
		if !rec.Enqueue("acme", "message.received", map[string]string{"id": "m1"}) {
			t.Fatal("Enqueue for acme refused")
		}
		if rec.Enqueue("beta", "message.received", map[string]string{"id": "m2"}) {
			t.Fatal("Enqueue for an account without a webhook accepted")
		}
		if rec.Enqueue("acme", "x", func() {}) {
			t.Fatal("Enqueue of data that does not encode accepted")
		}
		w.Close()
		if rec.Enqueue("acme", "message.received", nil) {
			t.Fatal("Enqueue after Close accepted")
		}

		evs, err := st.QueuedEvents(t.Context(), "acme", 100)
		if err != nil {
			t.Fatal(err)
		}
		missedData := `{"id":"c3","number":"+34910000001","caller":"+34600000007","caller_name":"","start":"2025-03-01T10:01:00Z","end":"2025-03-01T10:01:20Z","duration_seconds":0,"outcome":"routed","answered_by":"","hangup_cause":"caller_cancel","tags":[],"extension":"support","direction":"inbound"}`
		want := []struct{ typ, data string }{
			{TypeCallRinging, `{"call":"c1","number":"+34910000001","caller":"+34600000009","leg":"user:alice"}`},
			{TypeCallAnswered, `{"call":"c1","number":"+34910000001","caller":"+34600000009","leg":"user:alice"}`},
			{TypeCallTransferred, `{"call":"c1","number":"+34910000001","caller":"+34600000009","leg":"user:alice","target":"user:bob"}`},
			{TypeRecordingReady, `{"call":"c1","number":"+34910000001","caller":"+34600000009","caller_name":"Ana","url":"/api/v1/acme/calls/c1/recording","length_seconds":1.5,"bytes":24000}`},
			{TypeVoicemailCreated, `{"call":"c1","number":"+34910000001","caller":"+34600000009","caller_name":"Ana","user":"bob","url":"/api/v1/acme/voicemails/c1/audio"}`},
			{TypeCallCompleted, `{"id":"c1","number":"+34910000001","caller":"+34600000009","caller_name":"Ana","start":"2025-03-01T10:00:00Z","answer":"2025-03-01T10:00:02Z","end":"2025-03-01T10:01:02Z","duration_seconds":60,"outcome":"routed","answered_by":"user:alice","hangup_cause":"callee_bye","tags":["main"],"extension":"support","direction":"inbound"}`},
			{TypeCallCompleted, missedData},
			{TypeCallMissed, missedData},
			{"message.received", `{"id":"m1"}`},
		}
		if len(evs) != len(want) {
			t.Fatalf("%d events recorded, want %d", len(evs), len(want))
		}
		seen := map[string]bool{}
		for i, e := range evs {
			var p Payload
			if err := json.Unmarshal(e.Body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Type != want[i].typ || e.Type != want[i].typ || string(p.Data) != want[i].data {
				t.Errorf("event %d: %s %s\nwant %s %s", i, p.Type, p.Data, want[i].typ, want[i].data)
			}
			if p.ID != e.ID || p.Account != "acme" || seen[p.ID] {
				t.Errorf("event %d: id %q (stored %q), account %q", i, p.ID, e.ID, p.Account)
			}
			seen[p.ID] = true
			if i < 5 && (!p.Created.Equal(t0.Add(time.Second)) || !e.Created.Equal(p.Created)) {
				t.Errorf("event %d created %v (stored %v), want the call event's time", i, p.Created, e.Created)
			}
		}
		if !evs[5].Created.Equal(r.End) || !evs[7].Created.Equal(missed.End) {
			t.Errorf("final events created %v, %v; want the calls' ends", evs[5].Created, evs[7].Created)
		}
		if n, _ := st.QueuedEvents(t.Context(), "beta", 10); len(n) != 0 {
			t.Errorf("%d events for beta, which has no webhook", len(n))
		}
	})
}

// TestJournal2000PerSecond: two seconds of 2,000 finished calls a second
// reach the database with their call.completed events, none dropped, in
// batches no more than the writer's delay apart.
func TestJournal2000PerSecond(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		var batches atomic.Int64
		w, _ := journal(t, st, func() { batches.Add(1) })
		const rate, seconds = 2000, 2
		t0 := time.Now()
		var slowest time.Duration
		for i := range rate * seconds {
			// Pace: call i ends at i/rate seconds.
			if d := time.Until(t0.Add(time.Duration(i) * time.Second / rate)); d > 0 {
				time.Sleep(d)
			}
			now := time.Now()
			r := &store.CallRecord{ID: fmt.Sprint("c", i), Account: "acme", Start: now, End: now, Tags: []string{"t"}}
			if err := w.InsertCall(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			slowest = max(slowest, time.Since(now))
		}
		sent := time.Since(t0)
		w.Close()
		t.Logf("%d calls in %v, %d batches, slowest InsertCall %v", rate*seconds,
			sent.Round(time.Millisecond), batches.Load(), slowest)
		if w.Dropped() != 0 {
			t.Fatalf("%d events dropped", w.Dropped())
		}
		evs, err := st.QueuedEvents(t.Context(), "acme", 2*rate*seconds)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != rate*seconds {
			t.Fatalf("%d in the outbox", len(evs))
		}
		if batches.Load() < 5 {
			t.Errorf("%d batches in %v", batches.Load(), sent)
		}
	})
}
