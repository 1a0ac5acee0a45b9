package events

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/switchboard/switchboard/internal/store"
)

// Outbox is what a Dispatcher needs of the store.
type Outbox interface {
	NextDue(ctx context.Context, now time.Time, limit int) ([]store.Event, error)
	QueuedEvents(ctx context.Context, account string, limit int) ([]store.Event, error)
	MarkDeliveredBatch(ctx context.Context, attempts []store.Attempt) error
	MarkRetry(ctx context.Context, id string, next time.Time, errMsg string, a *store.Attempt) error
	MarkFailed(ctx context.Context, id string, at time.Time, errMsg string, a *store.Attempt) error
	WebhookSecrets(ctx context.Context, account string) (current, previous string, err error)
	TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	PruneEvents(ctx context.Context, before time.Time) (int64, error)
}

var _ Outbox = (*store.Store)(nil)

// DispatcherOptions configure a Dispatcher. Webhook is required; a zero
// field takes its default.
type DispatcherOptions struct {
	// Webhook returns the account's current webhook URL; false (or "")
	// when it has none: its queued events are then marked failed.
	Webhook func(account string) (url string, ok bool)
	// AllowPrivate lets webhooks reach loopback and private addresses
	// (--webhook-allow-private).
	AllowPrivate bool
	Timeout      time.Duration // per request, from dial to the response's end (5 s)
	MaxInFlight  int           // accounts delivered to at once (32)
	MinBackoff   time.Duration // the first retry's ceiling (1 s)
	MaxBackoff   time.Duration // the ceiling's ceiling (1 h)
	// MaxAge is how long after it was queued an event is retried (24 h);
	// the attempt that fails after that marks it failed.
	MaxAge time.Duration
	// PollInterval is how often the outbox is read for due events when
	// nothing wakes the dispatcher (1 s): it sees retries coming due and
	// events written by other nodes.
	PollInterval time.Duration
	// LeaseTTL is how long the dispatcher's lease lasts unrenewed (15 s):
	// after a crash, another dispatcher takes over within it.
	LeaseTTL time.Duration
	// Holder names this dispatcher in the lease (host name and a random
	// suffix).
	Holder string
	// Retention is how long delivered and failed events (and their
	// attempts) are kept (7 days); < 0 keeps them forever.
	Retention time.Duration
	Log       *slog.Logger
}

// Defaults of DispatcherOptions.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultMaxInFlight  = 32
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Hour
	DefaultMaxAge       = 24 * time.Hour
	DefaultPollInterval = time.Second
	DefaultLeaseTTL     = 15 * time.Second
	DefaultRetention    = 7 * 24 * time.Hour
)

// LeaseName is the lease a dispatcher holds while it delivers.
const LeaseName = "webhooks"

// Delivery limits: an account is delivered to for at most runMax events
// before its slot goes back to the others; its queue is read runBatch
// events at a time.
const (
	runMax   = 1000
	runBatch = 100
	// errorBodyMax is how much of a refusing receiver's body the attempt
	// log keeps.
	errorBodyMax = 200
	// markTimeout bounds writing an attempt's outcome.
	markTimeout = 10 * time.Second
	// A run of successes is written at most flushMax at a time, and at
	// most flushDelay after the first of them.
	flushMax   = 32
	flushDelay = 20 * time.Millisecond
)

// Dispatcher delivers the outbox's events (Run). One dispatcher per
// database delivers at a time (it holds LeaseName); each account's events
// are POSTed one after the other, in order, and up to MaxInFlight accounts
// at once, so that a slow receiver holds back only its own account.
type Dispatcher struct {
	o      Outbox
	opts   DispatcherOptions
	log    *slog.Logger
	client *http.Client
	wake   chan struct{}
	// jitter draws a retry's delay under its ceiling (tests fix it).
	jitter func(ceiling time.Duration) time.Duration

	attempts, delivered, retried, failed atomic.Uint64
}

// DispatcherStats counts a Dispatcher's work.
type DispatcherStats struct {
	Attempts  uint64 // POSTs made
	Delivered uint64
	Retried   uint64 // attempts that failed and will be retried
	Failed    uint64 // events given up
}

// NewDispatcher returns a dispatcher of o's events; Run starts it.
func NewDispatcher(o Outbox, opts DispatcherOptions) *Dispatcher {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		rand.Read(b)
		opts.Holder = host + "-" + hex.EncodeToString(b)
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	dialer := guardedDialer(opts.AllowPrivate)
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * opts.MaxInFlight,
		MaxIdleConnsPerHost:   opts.MaxInFlight,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
	}
	d := &Dispatcher{o: o, opts: opts, log: log.With("component", "webhooks"), wake: make(chan struct{}, 1),
		client: &http.Client{
			Transport: transport,
			Timeout:   opts.Timeout,
			// A redirect is an answer that is not 2xx: following it would
			// send the signed event somewhere the account did not name.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		jitter: func(ceiling time.Duration) time.Duration { return mrand.N(ceiling + 1) },
	}
	return d
}

// Wake tells the dispatcher that events were written (store.CallWriterOptions.Written).
// It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() DispatcherStats {
	return DispatcherStats{Attempts: d.attempts.Load(), Delivered: d.delivered.Load(),
		Retried: d.retried.Load(), Failed: d.failed.Load()}
}

// Run delivers events until ctx is done. It waits for the lease while
// another dispatcher holds it, and gives the lease back when it stops. A
// POST cut short by ctx is not logged: its event stays queued and is sent
// again after the restart.
func (d *Dispatcher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		ok, err := d.o.TakeLease(ctx, LeaseName, d.opts.Holder, d.opts.LeaseTTL)
		if err != nil && ctx.Err() == nil {
			d.log.Error("take the webhook lease", "err", err)
		}
		if !ok {
			select {
			case <-ctx.Done():
			case <-time.After(d.opts.LeaseTTL / 3):
			}
			continue
		}
		d.dispatch(ctx)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := d.o.ReleaseLease(rctx, LeaseName, d.opts.Holder); err != nil {
		d.log.Warn("release the webhook lease", "err", err)
	}
}

// dispatch delivers while the lease holds: it polls the outbox for the
// accounts with a due head and runs one worker per account, at most
// MaxInFlight at once. It returns when ctx is done or the lease is lost,
// once every worker has stopped.
func (d *Dispatcher) dispatch(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	type result struct {
		account string
		next    time.Time // the account's next retry, or zero
	}
	finished := make(chan result, d.opts.MaxInFlight)
	inFlight := map[string]bool{}
	// Polls happen every PollInterval, and as soon as a worker finishes
	// or a retry comes due: wakeups holds the retries' times, soon is set
	// for the earliest.
	tick := time.NewTicker(d.opts.PollInterval)
	defer tick.Stop()
	soon := time.NewTimer(0) // the first poll, at once
	defer soon.Stop()
	soonAt := time.Now()
	var wakeups timeHeap
	arm := func() {
		if len(wakeups) > 0 && (soonAt.IsZero() || wakeups[0].Before(soonAt)) {
			soonAt = wakeups[0]
			soon.Reset(max(0, time.Until(soonAt)))
		}
	}
	schedule := func(at time.Time) {
		heap.Push(&wakeups, at)
		arm()
	}
	renew := time.NewTicker(d.opts.LeaseTTL / 3)
	defer renew.Stop()
	renewed := time.Now()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			schedule(time.Now())
			continue
		case r := <-finished:
			delete(inFlight, r.account)
			if r.next.IsZero() {
				schedule(time.Now())
			} else {
				schedule(r.next)
			}
			continue
		case <-renew.C:
			ok, err := d.o.TakeLease(ctx, LeaseName, d.opts.Holder, d.opts.LeaseTTL)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				d.log.Error("renew the webhook lease", "err", err)
				if time.Since(renewed) > d.opts.LeaseTTL/2 {
					return // another node may take it soon: stop first
				}
			case !ok:
				d.log.Warn("lost the webhook lease to another node")
				return
			default:
				renewed = time.Now()
			}
			continue
		case <-soon.C:
			soonAt = time.Time{}
		case <-tick.C:
		}
		now := time.Now()
		for len(wakeups) > 0 && !wakeups[0].After(now) {
			heap.Pop(&wakeups)
		}
		arm()
		if d.opts.Retention > 0 && now.Sub(pruned) > time.Hour {
			pruned = now
			if n, err := d.o.PruneEvents(ctx, now.Add(-d.opts.Retention)); err != nil {
				d.log.Warn("prune webhook events", "err", err)
			} else if n > 0 {
				d.log.Info("pruned webhook events", "events", n)
			}
		}
		free := d.opts.MaxInFlight - len(inFlight)
		if free <= 0 {
			continue
		}
		// The accounts in flight may fill part of the answer.
		heads, err := d.o.NextDue(ctx, now, free+len(inFlight))
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("read due webhook events", "err", err)
			}
			continue
		}
		for _, head := range heads {
			if free == 0 {
				break
			}
			if inFlight[head.Account] {
				continue
			}
			inFlight[head.Account] = true
			free--
			wg.Add(1)
			go func() {
				defer wg.Done()
				finished <- result{head.Account, d.deliverAccount(ctx, head)}
			}()
		}
	}
}

// timeHeap is a min-heap of times (container/heap).
type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// deliverAccount delivers the account's events in order, from head, until
// its queue is empty, an attempt fails (it returns the retry's time) or it
// has delivered runMax (it returns zero: poll again now).
//
// Successes are written in batches (one commit for up to flushMax, at most
// flushDelay after the first): a crash can send up to that many events
// again, which at-least-once allows; a stop writes them before it returns.
func (d *Dispatcher) deliverAccount(ctx context.Context, head store.Event) time.Time {
	account := head.Account
	log := d.log.With("account", account)
	var (
		secret    []byte
		done      []store.Attempt // delivered, not yet written
		doneSince time.Time
	)
	// flush writes done; false if it could not (the events stay queued
	// and are sent again).
	flush := func() bool {
		if len(done) == 0 {
			return true
		}
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
		defer cancel()
		err := d.o.MarkDeliveredBatch(mctx, done)
		if err != nil {
			log.Error("mark webhook events delivered", "events", len(done), "err", err)
			done = done[:0]
			return false
		}
		d.delivered.Add(uint64(len(done)))
		done = done[:0]
		return true
	}
	defer flush()
	batch := []store.Event{head}
	for n := 0; n < runMax; {
		for _, ev := range batch {
			if ctx.Err() != nil {
				return time.Time{}
			}
			now := time.Now()
			if ev.NextAttempt.After(now) {
				return ev.NextAttempt
			}
			target, ok := d.opts.Webhook(account)
			if !ok || target == "" {
				if err := d.o.MarkFailed(ctx, ev.ID, now, ErrNoWebhook.Error(), nil); err != nil {
					log.Error("mark webhook event failed", "event", ev.ID, "err", err)
					return now.Add(d.opts.PollInterval)
				}
				d.failed.Add(1)
				continue
			}
			if secret == nil {
				cur, _, err := d.o.WebhookSecrets(ctx, account)
				if err != nil {
					log.Error("read webhook secret", "err", err)
					return now.Add(d.opts.PollInterval)
				}
				secret = []byte(cur)
			}
			a, aborted := d.post(ctx, target, secret, ev)
			if aborted {
				return time.Time{} // stopping: the event stays queued
			}
			d.attempts.Add(1)
			if a.Error == "" {
				if len(done) == 0 {
					doneSince = time.Now()
				}
				done = append(done, a)
				n++
				if len(done) >= flushMax || time.Since(doneSince) >= flushDelay {
					if !flush() {
						return time.Now().Add(d.opts.PollInterval)
					}
				}
				continue
			}
			if !flush() {
				return time.Now().Add(d.opts.PollInterval)
			}
			// The outcome is written even if ctx ends meanwhile: the
			// attempt happened.
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
			next, err := d.outcome(mctx, ev, a)
			cancel()
			if err != nil {
				log.Error("record webhook attempt", "event", ev.ID, "err", err)
				return time.Now().Add(d.opts.PollInterval)
			}
			if !next.IsZero() {
				return next
			}
		}
		// The queue is read again only once what was delivered is written.
		if !flush() {
			return time.Now().Add(d.opts.PollInterval)
		}
		var err error
		if batch, err = d.o.QueuedEvents(ctx, account, runBatch); err != nil {
			if ctx.Err() == nil {
				log.Error("read queued webhook events", "err", err)
			}
			return time.Now().Add(d.opts.PollInterval)
		}
		if len(batch) == 0 {
			return time.Time{}
		}
	}
	return time.Time{}
}

// outcome writes a failed attempt's outcome: a retry (it returns its
// time) or, past the deadline, the event failed.
func (d *Dispatcher) outcome(ctx context.Context, ev store.Event, a store.Attempt) (time.Time, error) {
	now := time.Now()
	next, give := d.retryAt(ev, now)
	if give {
		msg := fmt.Sprintf("gave up after %d attempts in %v: %s", ev.Tries+1, d.opts.MaxAge, a.Error)
		if err := d.o.MarkFailed(ctx, ev.ID, now, msg, &a); err != nil {
			return time.Time{}, err
		}
		d.failed.Add(1)
		d.log.Warn("webhook event failed", "account", ev.Account, "event", ev.ID, "type", ev.Type, "err", msg)
		return time.Time{}, nil
	}
	if err := d.o.MarkRetry(ctx, ev.ID, next, a.Error, &a); err != nil {
		return time.Time{}, err
	}
	d.retried.Add(1)
	d.log.Debug("webhook attempt failed", "account", ev.Account, "event", ev.ID, "attempt", a.No,
		"err", a.Error, "retry", next)
	return next, nil
}

// retryAt is when to try ev again after a failed attempt at now, or true
// to give up: its deadline (MaxAge after it was queued) has passed. The
// delay is drawn in [0, ceiling], the ceiling doubling with each try from
// MinBackoff up to MaxBackoff ("full jitter"); the last retry is at the
// deadline.
func (d *Dispatcher) retryAt(ev store.Event, now time.Time) (time.Time, bool) {
	deadline := ev.Queued.Add(d.opts.MaxAge)
	if !now.Before(deadline) {
		return time.Time{}, true
	}
	next := now.Add(d.jitter(backoffCeiling(ev.Tries+1, d.opts.MinBackoff, d.opts.MaxBackoff)))
	if next.After(deadline) {
		next = deadline
	}
	return next, false
}

// backoffCeiling is the longest wait after the try-th failed attempt:
// min, 2·min, 4·min, … at most max.
func backoffCeiling(try int, min, max time.Duration) time.Duration {
	c := min
	for i := 1; i < try && c < max; i++ {
		c *= 2
	}
	if c > max {
		c = max
	}
	return c
}

// post makes one attempt: the event's body, signed at the time of sending.
//
// aborted reports an attempt that ctx cut short before the receiver
// answered: not the receiver's doing, so not logged.
func (d *Dispatcher) post(ctx context.Context, target string, secret []byte, ev store.Event) (a store.Attempt, aborted bool) {
	start := time.Now()
	a = store.Attempt{EventID: ev.ID, Account: ev.Account, At: start, URL: target}
	fail := func(err error) (store.Attempt, bool) {
		a.Latency, a.Error = time.Since(start), err.Error()
		return a, false
	}
	u, err := parseURL(target)
	if err != nil {
		return fail(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(ev.Body))
	if err != nil {
		return fail(err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Switchboard-Webhooks/1")
	h.Set(EventIDHeader, ev.ID)
	h.Set("Switchboard-Event-Type", ev.Type)
	h.Set(SignatureHeader, Sign(secret, start, ev.Body))
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return a, true
		}
		return fail(d.describe(err))
	}
	defer resp.Body.Close()
	// A 2xx whose body breaks off still is an answer: the receiver has the
	// event. The rest of a body is drained a little so that the connection
	// can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyMax))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	a.Status, a.Latency = resp.StatusCode, time.Since(start)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Error = "HTTP " + resp.Status
		if s := printable(snippet); s != "" {
			a.Error += ": " + s
		}
	}
	return a, false
}

// describe turns a client error into the attempt log's words.
func (d *Dispatcher) describe(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no answer within %v", d.opts.Timeout)
		}
		return ue.Err
	}
	return err
}

// printable is a receiver's text for a log line: one line, no controls.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, string(b))
	return strings.Join(strings.Fields(s), " ")
}
