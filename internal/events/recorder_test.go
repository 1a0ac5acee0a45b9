package events

import (
	"context"
	"encoding/json"
	"errors"
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

// TestRecorderMapsCallEvents: each call event becomes its webhook event,
// with the data of the record as it was when the event happened; other
// accounts' and other kinds of events are not recorded.
func TestRecorderMapsCallEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rec := NewRecorder(st, RecorderOptions{Webhook: onlyAcme, Log: quietLog()})
		t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
		r := &store.CallRecord{ID: "c1", Account: "acme", Number: "+34910000001", Caller: "+34600000009",
			CallerName: "Ana", Start: t0, Outcome: "routed", Tags: []string{"main"}, Trace: []string{"big"}}
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
		r.Answer, r.End, r.Duration = t0.Add(2*time.Second), t0.Add(62*time.Second), 60*time.Second
		r.AnsweredBy, r.HangupCause = "user:alice", "callee_bye"
		emit(call.EventEnded, "", "")
		emit(call.EventWaveEnded, "", "")
		// The call goes on changing its record: the events keep what was.
		r.Tags[0], r.Number = "changed", "changed"
		rec.CallEvent(call.Event{Kind: call.EventEnded, Call: "c2", Account: "beta",
			Record: &store.CallRecord{ID: "c2", Account: "beta"}})
		if !rec.Enqueue("acme", TypeCallMissed, map[string]string{"call": "c1"}) {
			t.Fatal("Enqueue for acme refused")
		}
		if rec.Enqueue("beta", TypeCallMissed, map[string]string{"call": "c2"}) {
			t.Fatal("Enqueue for an account without a webhook accepted")
		}
		if rec.Enqueue("acme", "x", func() {}) {
			t.Fatal("Enqueue of data that does not encode accepted")
		}
		rec.Close()
		if rec.Enqueue("acme", TypeCallMissed, nil) {
			t.Fatal("Enqueue after Close accepted")
		}

		evs, err := st.QueuedEvents(t.Context(), "acme", 100)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct{ typ, data string }{
			{TypeCallRinging, `{"call":"c1","number":"+34910000001","caller":"+34600000009","leg":"user:alice"}`},
			{TypeCallAnswered, `{"call":"c1","number":"+34910000001","caller":"+34600000009","leg":"user:alice"}`},
			{TypeCallTransferred, `{"call":"c1","number":"+34910000001","caller":"+34600000009","leg":"user:alice","target":"user:bob"}`},
			{TypeRecordingReady, `{"call":"c1","number":"+34910000001","caller":"+34600000009","caller_name":"Ana","url":"/api/v1/acme/calls/c1/recording","length_seconds":1.5,"bytes":24000}`},
			{TypeVoicemailCreated, `{"call":"c1","number":"+34910000001","caller":"+34600000009","caller_name":"Ana","user":"bob","url":"/api/v1/acme/voicemails/c1/audio"}`},
			{TypeCallCompleted, `{"id":"c1","number":"+34910000001","caller":"+34600000009","caller_name":"Ana","start":"2025-03-01T10:00:00Z","answer":"2025-03-01T10:00:02Z","end":"2025-03-01T10:01:02Z","duration_seconds":60,"outcome":"routed","answered_by":"user:alice","hangup_cause":"callee_bye","tags":["main"]}`},
			{TypeCallMissed, `{"call":"c1"}`},
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
			if i < 6 && (!p.Created.Equal(t0.Add(time.Second)) || !e.Created.Equal(p.Created)) {
				t.Errorf("event %d created %v (stored %v), want the call event's time", i, p.Created, e.Created)
			}
		}
		if s := rec.Stats(); s.Queued != 7 || s.Written != 7 || s.Dropped != 0 || s.Lost != 0 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

// blockingWriter holds every InsertEvents until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	n       atomic.Int64
}

func (w *blockingWriter) InsertEvents(ctx context.Context, evs []store.Event) error {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	w.n.Add(int64(len(evs)))
	return nil
}

// TestRecorderNeverBlocks: with the database stuck, CallEvent returns at
// once; past the queue's size events are dropped and counted.
func TestRecorderNeverBlocks(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	rec := NewRecorder(w, RecorderOptions{Webhook: onlyAcme, QueueSize: 10, BatchDelay: time.Millisecond,
		Log: quietLog()})
	ended := func(id string) call.Event {
		return call.Event{Kind: call.EventEnded, Call: id, Account: "acme",
			Record: &store.CallRecord{ID: id, Account: "acme", Start: time.Now()}}
	}
	rec.CallEvent(ended("first"))
	select {
	case <-w.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer was not called")
	}
	t0 := time.Now()
	for i := range 15 {
		rec.CallEvent(ended(fmt.Sprint(i)))
	}
	if took := time.Since(t0); took > time.Second {
		t.Fatalf("15 events took %v with the database stuck", took)
	}
	if s := rec.Stats(); s.Dropped != 5 || s.Queued != 11 {
		t.Fatalf("stats with the database stuck = %+v, want 5 dropped", s)
	}
	close(w.release)
	rec.Close()
	if s := rec.Stats(); s.Written != 11 || w.n.Load() != 11 {
		t.Fatalf("after Close: stats %+v, %d written", s, w.n.Load())
	}
}

// flakyWriter fails its first calls.
type flakyWriter struct {
	fails atomic.Int32
	n     atomic.Int64
}

func (w *flakyWriter) InsertEvents(ctx context.Context, evs []store.Event) error {
	if w.fails.Add(-1) >= 0 {
		return errors.New("database away")
	}
	w.n.Add(int64(len(evs)))
	return nil
}

func TestRecorderRetriesAFailedBatch(t *testing.T) {
	w := &flakyWriter{}
	w.fails.Store(2)
	rec := NewRecorder(w, RecorderOptions{Webhook: onlyAcme, Log: quietLog()})
	for range 3 {
		rec.Enqueue("acme", TypeCallMissed, map[string]int{})
	}
	rec.Close()
	if s := rec.Stats(); s.Written != 3 || s.Lost != 0 || w.n.Load() != 3 {
		t.Fatalf("stats = %+v, written %d", s, w.n.Load())
	}
}

// TestRecorder2000PerSecond: two seconds of 2,000 call.completed events a
// second reach the outbox with none dropped, in batches no more than
// BatchDelay apart.
func TestRecorder2000PerSecond(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		var batches atomic.Int64
		rec := NewRecorder(st, RecorderOptions{Webhook: onlyAcme, Log: quietLog(),
			Written: func() { batches.Add(1) }})
		const rate, seconds = 2000, 2
		t0 := time.Now()
		var slowest time.Duration
		for i := range rate * seconds {
			// Pace: event i is due at i/rate seconds.
			if d := time.Until(t0.Add(time.Duration(i) * time.Second / rate)); d > 0 {
				time.Sleep(d)
			}
			r := &store.CallRecord{ID: fmt.Sprint("c", i), Account: "acme", Start: time.Now(), Tags: []string{"t"}}
			s := time.Now()
			rec.CallEvent(call.Event{Kind: call.EventEnded, Time: s, Call: r.ID, Account: "acme", Record: r})
			slowest = max(slowest, time.Since(s))
		}
		sent := time.Since(t0)
		rec.Close()
		s := rec.Stats()
		t.Logf("%d events in %v, %d batches, slowest CallEvent %v, stats %+v", rate*seconds,
			sent.Round(time.Millisecond), batches.Load(), slowest, s)
		if s.Dropped != 0 || s.Lost != 0 || s.Written != rate*seconds {
			t.Fatalf("stats = %+v", s)
		}
		evs, err := st.QueuedEvents(t.Context(), "acme", 2*rate*seconds)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != rate*seconds {
			t.Fatalf("%d in the outbox", len(evs))
		}
		// A batch waits BatchDelay from its first event, then for its write:
		// several a second, not one at Close.
		if batches.Load() < 5 {
			t.Errorf("%d batches in %v", batches.Load(), sent)
		}
	})
}
