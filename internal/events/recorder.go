package events

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/store"
)

// EventWriter is what a Recorder needs of the store.
type EventWriter interface {
	InsertEvents(ctx context.Context, evs []store.Event) error
}

var _ EventWriter = (*store.Store)(nil)

// RecorderOptions configure a Recorder. Webhook is required.
type RecorderOptions struct {
	// Webhook returns the account's webhook URL; false (or "") when it has
	// none, and then its events are not recorded. It runs on the calls'
	// goroutines: it must be quick and never block (a lookup in the
	// accounts' current view).
	Webhook func(account string) (url string, ok bool)
	// Written, if set, is called after each batch is in the outbox
	// (Dispatcher.Wake).
	Written func()
	Log     *slog.Logger
	// QueueSize is how many events may wait for the writer (DefaultQueueSize).
	QueueSize int
	// BatchDelay is the longest an event waits before its batch is written
	// (DefaultBatchDelay).
	BatchDelay time.Duration
}

// Defaults of RecorderOptions. The queue holds eight seconds of 2,000
// events a second: the database can stall that long before one is dropped.
const (
	DefaultQueueSize  = 16384
	DefaultBatchDelay = 100 * time.Millisecond
)

// Batching limits of the writer: a batch is at most recordBatchMax events;
// a batch the database refuses is tried recordRetries more times, backing
// off from recordRetryDelay.
const (
	recordBatchMax   = 512
	recordRetries    = 5
	recordRetryDelay = 200 * time.Millisecond
)

// Recorder turns calls' events into webhook events in the outbox. Its
// methods never block: events wait in a queue that one goroutine writes in
// batches (one transaction each, at most every BatchDelay). When the queue
// is full an event is dropped, logged and counted (Stats). An event still
// queued when the process is killed is lost; one in the outbox is not.
type Recorder struct {
	w       EventWriter
	o       RecorderOptions
	log     *slog.Logger
	mu      sync.RWMutex // orders sends before Close's close(in)
	closed  bool
	in      chan pending
	done    chan struct{}
	queued  atomic.Uint64
	written atomic.Uint64
	dropped atomic.Uint64
	lost    atomic.Uint64
}

// pending is an event waiting for the writer: either data to encode or,
// from Enqueue, the event already encoded.
type pending struct {
	account string
	typ     string
	created time.Time
	data    any
	ev      *store.Event
}

// RecorderStats counts a Recorder's events.
type RecorderStats struct {
	Queued  uint64 // accepted into the queue
	Written uint64 // in the outbox
	Dropped uint64 // refused: the queue was full
	Lost    uint64 // the database refused them, retries included
}

// NewRecorder starts a recorder writing to w; Close it to flush.
func NewRecorder(w EventWriter, o RecorderOptions) *Recorder {
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BatchDelay <= 0 {
		o.BatchDelay = DefaultBatchDelay
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	r := &Recorder{w: w, o: o, log: log.With("component", "webhooks"),
		in: make(chan pending, o.QueueSize), done: make(chan struct{})}
	go r.run()
	return r
}

// CallEvent is the observer for call.Config.Events. It maps a call's
// events to webhook events (ringing, answered, transferred, recording
// ready, voicemail created; EventEnded is call.completed with the record)
// for accounts with a webhook URL, copying what it needs of ev.Record on
// the call's goroutine, and never blocks.
func (r *Recorder) CallEvent(ev call.Event) {
	if ev.Record == nil || ev.Kind < call.EventRinging || ev.Kind > call.EventEnded || !r.wanted(ev.Account) {
		return
	}
	var (
		typ  string
		data any
		rec  = ev.Record
	)
	switch ev.Kind {
	case call.EventRinging:
		typ, data = TypeCallRinging, Leg{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, Leg: ev.Leg}
	case call.EventAnswered:
		typ, data = TypeCallAnswered, Leg{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, Leg: ev.Leg}
	case call.EventTransferred:
		typ, data = TypeCallTransferred, Leg{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, Leg: ev.Leg,
			Target: ev.Target}
	case call.EventRecording:
		typ = TypeRecordingReady
		data = Media{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, CallerName: rec.CallerName,
			URL:           "/api/v1/" + ev.Account + "/calls/" + ev.Call + "/recording",
			LengthSeconds: rec.RecordingLength.Seconds(), Bytes: rec.RecordingBytes}
	case call.EventVoicemail:
		typ = TypeVoicemailCreated
		data = Media{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, CallerName: rec.CallerName,
			User: rec.VoicemailUser, URL: "/api/v1/" + ev.Account + "/voicemails/" + ev.Call + "/audio"}
	case call.EventEnded:
		typ, data = TypeCallCompleted, NewCall(rec)
	default:
		return
	}
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	r.push(pending{account: ev.Account, typ: typ, created: t, data: data})
}

func (r *Recorder) wanted(account string) bool {
	url, ok := r.o.Webhook(account)
	return ok && url != ""
}

// Enqueue records an event of any type (call.missed, message events) for
// an account with a webhook URL; data, encoded here, is its "data". It
// never blocks, and reports whether the event was queued: false when the
// account has no webhook URL, data does not encode, the queue is full or
// the recorder is closed.
func (r *Recorder) Enqueue(account, typ string, data any) bool {
	if !r.wanted(account) {
		return false
	}
	ev, err := NewEvent(account, typ, time.Now(), data)
	if err != nil {
		r.log.Error("encode webhook event", "account", account, "type", typ, "err", err)
		return false
	}
	return r.push(pending{ev: &ev})
}

func (r *Recorder) push(p pending) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return false
	}
	select {
	case r.in <- p:
		r.queued.Add(1)
		return true
	default:
		if n := r.dropped.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th...
			r.log.Error("webhook queue full: event dropped", "account", p.account, "type", p.typ, "dropped", n)
		}
		return false
	}
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{Queued: r.queued.Load(), Written: r.written.Load(), Dropped: r.dropped.Load(),
		Lost: r.lost.Load()}
}

// Close writes the queued events and stops the recorder. Later events are
// not recorded.
func (r *Recorder) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.in)
	}
	r.mu.Unlock()
	<-r.done
}

func (r *Recorder) run() {
	defer close(r.done)
	batch := make([]store.Event, 0, recordBatchMax)
	for p := range r.in {
		batch = r.add(batch[:0], p)
		timer := time.NewTimer(r.o.BatchDelay)
	fill:
		for len(batch) < recordBatchMax {
			select {
			case p, ok := <-r.in:
				if !ok {
					break fill
				}
				batch = r.add(batch, p)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		r.flush(batch)
	}
}

// add encodes p (on the writer's goroutine, not the call's) onto batch.
func (r *Recorder) add(batch []store.Event, p pending) []store.Event {
	if p.ev != nil {
		return append(batch, *p.ev)
	}
	ev, err := NewEvent(p.account, p.typ, p.created, p.data)
	if err != nil {
		r.lost.Add(1)
		r.log.Error("encode webhook event", "account", p.account, "type", p.typ, "err", err)
		return batch
	}
	return append(batch, ev)
}

// flush writes a batch, retrying a failed one with backoff (the queue
// fills meanwhile): a database that is briefly away loses nothing.
func (r *Recorder) flush(batch []store.Event) {
	if len(batch) == 0 {
		return
	}
	delay := recordRetryDelay
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.w.InsertEvents(ctx, batch)
		cancel()
		if err == nil {
			r.written.Add(uint64(len(batch)))
			if r.o.Written != nil {
				r.o.Written()
			}
			return
		}
		if try == recordRetries {
			r.lost.Add(uint64(len(batch)))
			r.log.Error("write webhook events: lost", "events", len(batch), "err", err)
			return
		}
		r.log.Warn("write webhook events: retrying", "events", len(batch), "err", err)
		time.Sleep(delay)
		delay *= 2
	}
}
