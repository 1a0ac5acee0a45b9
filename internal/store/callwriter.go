package store

import (
	"context"
	"log/slog"
	"time"
)

// CallWriter writes call records in batches, one transaction per batch
// instead of one per call: at hundreds of calls a second the per-commit
// cost dominates. InsertCall queues the record and returns; Close writes
// everything still queued. A batch that fails is retried record by record,
// so one bad record does not lose the others.
type CallWriter struct {
	st   *Store
	log  *slog.Logger
	in   chan *CallRecord
	done chan struct{}
}

// Batching limits of a CallWriter.
const (
	callBatchMax   = 256
	callBatchDelay = 20 * time.Millisecond
)

// NewCallWriter starts a batching writer; Close it to flush.
func (s *Store) NewCallWriter(log *slog.Logger) *CallWriter {
	if log == nil {
		log = slog.Default()
	}
	w := &CallWriter{st: s, log: log, in: make(chan *CallRecord, 4*callBatchMax), done: make(chan struct{})}
	go w.run()
	return w
}

// InsertCall queues a copy of the record. It blocks only while the queue is
// full (the database is behind), so no record is dropped.
func (w *CallWriter) InsertCall(ctx context.Context, c *CallRecord) error {
	rec := *c
	select {
	case w.in <- &rec:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes the queued records and stops the writer.
func (w *CallWriter) Close() {
	close(w.in)
	<-w.done
}

func (w *CallWriter) run() {
	defer close(w.done)
	batch := make([]*CallRecord, 0, callBatchMax)
	for rec := range w.in {
		batch = append(batch[:0], rec)
		timer := time.NewTimer(callBatchDelay)
	fill:
		for len(batch) < callBatchMax {
			select {
			case r, ok := <-w.in:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		w.flush(batch)
	}
}

func (w *CallWriter) flush(batch []*CallRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.st.InsertCalls(ctx, batch); err == nil {
		return
	}
	for _, rec := range batch {
		if err := w.st.InsertCall(ctx, rec); err != nil {
			w.log.Error("write call record", "call_id", rec.ID, "err", err)
		}
	}
}
