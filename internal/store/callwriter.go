package store

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// CallWriter is the journal of the calls: it writes their records and
// their webhook events in batches, one transaction per batch instead of
// one per call (at hundreds of calls a second the per-commit cost
// dominates), in the order they were given, so that one account's events
// are numbered as they happened. The events a finished record brings
// (CallWriterOptions.Events: call.completed, call.missed) are written in
// the transaction of the record itself, as is its missed-call ledger entry:
// the activity log, the ledger and the webhooks never disagree, even after
// a kill -9 (what is lost then is the last batch not yet committed, at most
// callBatchDelay of calls' ends and events, whole).
//
// InsertCall queues a record and returns; StartCall queues the record of a
// call starting and waits for its commit (a call is not placed before its
// record would survive a kill -9), at most StartWait; Enqueue queues an
// event without ever blocking; Close writes everything still queued. A batch the database
// refuses is retried with backoff, then item by item, so that one bad
// record does not lose the others.
type CallWriter struct {
	st      *Store
	o       CallWriterOptions
	mu      sync.RWMutex // orders sends before Close's close(in)
	closed  bool
	in      chan journalItem
	done    chan struct{}
	dropped atomic.Uint64
}

// CallWriterOptions configure a CallWriter.
type CallWriterOptions struct {
	Log *slog.Logger
	// Events, if set, returns the events a finished record brings; they
	// are written in the record's transaction. It runs on the writer's
	// goroutine.
	Events func(*CallRecord) []Event
	// Written, if set, is called after a batch that held events committed
	// (the webhook dispatcher's Wake).
	Written func()
	// QueueSize is how many records and events may wait for the writer
	// (DefaultJournalQueue).
	QueueSize int
}

// journalItem is a record or an event waiting for the writer.
type journalItem struct {
	rec  *CallRecord
	ev   *Event
	done chan struct{} // closed once the item's batch is written (StartCall)
}

// Batching of a CallWriter. The queue holds eight seconds of 2,000 events a
// second: the database can stall that long before an event is dropped
// (records are never dropped: InsertCall waits instead).
const (
	DefaultJournalQueue = 16384
	callBatchMax        = 512
	callBatchDelay      = 20 * time.Millisecond
	journalRetries      = 3
	journalRetryDelay   = 200 * time.Millisecond
	// StartWait bounds how long StartCall waits for the database: when it
	// is slower than that (a starved machine, a stalled disk), the call goes
	// on and its record follows.
	StartWait = 3 * time.Second
)

// NewCallWriter starts a batching writer; Close it to flush.
func (s *Store) NewCallWriter(o CallWriterOptions) *CallWriter {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultJournalQueue
	}
	w := &CallWriter{st: s, o: o, in: make(chan journalItem, o.QueueSize), done: make(chan struct{})}
	go w.run()
	return w
}

// InsertCall queues a copy of the record. It blocks only while the queue is
// full (the database is behind), so no record is dropped.
func (w *CallWriter) InsertCall(ctx context.Context, c *CallRecord) error {
	return w.queue(ctx, journalItem{rec: c})
}

// StartCall queues a copy of the record of a call starting and returns
// once it is committed, or after StartWait while the database is slow
// (the record stays queued and is written later).
func (w *CallWriter) StartCall(ctx context.Context, c *CallRecord) error {
	it := journalItem{rec: c, done: make(chan struct{})}
	if err := w.queue(ctx, it); err != nil {
		return err
	}
	t := time.NewTimer(StartWait)
	defer t.Stop()
	select {
	case <-it.done:
	case <-t.C:
		w.o.Log.Warn("call record not yet written: the call goes on", "call_id", c.ID, "waited", StartWait)
	case <-ctx.Done():
	}
	return nil
}

func (w *CallWriter) queue(ctx context.Context, it journalItem) error {
	rec := *it.rec
	it.rec = &rec
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return errWriterClosed
	}
	select {
	case w.in <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue queues an event for the outbox. It never blocks: false when the
// queue is full (the event is dropped, logged and counted) or the writer
// is closed.
func (w *CallWriter) Enqueue(ev Event) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	select {
	case w.in <- journalItem{ev: &ev}:
		return true
	default:
		if n := w.dropped.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th...
			w.o.Log.Error("event queue full: event dropped", "account", ev.Account, "type", ev.Type, "dropped", n)
		}
		return false
	}
}

// Dropped counts the events Enqueue refused because the queue was full.
func (w *CallWriter) Dropped() uint64 { return w.dropped.Load() }

var errWriterClosed = errors.New("call writer closed")

// Close writes the queued records and events and stops the writer.
func (w *CallWriter) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.in)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *CallWriter) run() {
	defer close(w.done)
	batch := make([]journalItem, 0, callBatchMax)
	for it := range w.in {
		batch = append(batch[:0], it)
		timer := time.NewTimer(callBatchDelay)
	fill:
		for len(batch) < callBatchMax {
			select {
			case it, ok := <-w.in:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		w.flush(batch)
		for _, it := range batch {
			if it.done != nil {
				close(it.done)
			}
		}
	}
}

// flush writes a batch, retrying it with backoff while the database is
// away (the queue fills meanwhile), then item by item.
func (w *CallWriter) flush(batch []journalItem) {
	recs, evs := w.split(batch)
	delay := journalRetryDelay
	for try := 0; ; try++ {
		err := w.write(recs, evs)
		if err == nil {
			return
		}
		if try == journalRetries {
			w.o.Log.Warn("write call journal batch: writing item by item", "records", len(recs), "events", len(evs), "err", err)
			break
		}
		time.Sleep(delay)
		delay *= 2
	}
	for _, it := range batch {
		r, e := w.split([]journalItem{it})
		if err := w.write(r, e); err != nil {
			if it.rec != nil {
				w.o.Log.Error("write call record: lost", "call_id", it.rec.ID, "events", len(e), "err", err)
			} else {
				w.o.Log.Error("write webhook event: lost", "account", it.ev.Account, "type", it.ev.Type, "err", err)
			}
		}
	}
}

// split returns a batch's records and, in order, its events: those queued
// and those each finished record brings, after the record's place.
func (w *CallWriter) split(batch []journalItem) (recs []*CallRecord, evs []Event) {
	for _, it := range batch {
		if it.ev != nil {
			evs = append(evs, *it.ev)
			continue
		}
		recs = append(recs, it.rec)
		if w.o.Events != nil && !it.rec.End.IsZero() {
			evs = append(evs, w.o.Events(it.rec)...)
		}
	}
	return recs, evs
}

func (w *CallWriter) write(recs []*CallRecord, evs []Event) error {
	if len(recs) == 0 && len(evs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := w.st.inTx(ctx, func(tx *sql.Tx) error {
		x := &txStmts{tx: tx}
		if err := insertCalls(ctx, x, recs); err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		_, err := insertEvents(ctx, x, evs)
		return err
	})
	if err == nil && len(evs) > 0 && w.o.Written != nil {
		w.o.Written()
	}
	return err
}
