package events

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

func TestBackoffCeiling(t *testing.T) {
	var got []string
	for try := 1; try <= 14; try++ {
		got = append(got, backoffCeiling(try, time.Second, time.Hour).String())
	}
	want := "1s 2s 4s 8s 16s 32s 1m4s 2m8s 4m16s 8m32s 17m4s 34m8s 1h0m0s 1h0m0s"
	if strings.Join(got, " ") != want {
		t.Fatalf("ceilings = %s\nwant       %s", strings.Join(got, " "), want)
	}
	// Full jitter: every delay in [0, ceiling].
	d := NewDispatcher(nil, DispatcherOptions{Webhook: func(string) (string, bool) { return "", false }})
	now := time.Now()
	for try := range 8 {
		ev := store.Event{Queued: now, Tries: try}
		for range 100 {
			next, give := d.retryAt(ev, now)
			if give || next.Before(now) || next.Sub(now) > backoffCeiling(try+1, time.Second, time.Hour) {
				t.Fatalf("retry %d: next in %v (give up %v)", try+1, next.Sub(now), give)
			}
		}
	}
	// The last retry is at the deadline; after it, give up.
	ev := store.Event{Queued: now.Add(-DefaultMaxAge + time.Second), Tries: 20}
	if next, give := d.retryAt(ev, now); give || next.After(ev.Queued.Add(DefaultMaxAge)) {
		t.Fatalf("near the deadline: %v, %v", next, give)
	}
	if _, give := d.retryAt(ev, ev.Queued.Add(DefaultMaxAge)); !give {
		t.Fatal("at the deadline the event is not given up")
	}
}

// TestDeliveryInOrder: 50 events of an account arrive in the order they
// were created, signed, once each; and two accounts are delivered side by
// side.
func TestDeliveryInOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rcv := newReceiver(t, st)
		a := queue(t, st, "acme", 50)
		b := queue(t, st, "beta", 50)
		d := NewDispatcher(st, fastOptions(rcv.webhook))
		start(t, d)
		rcv.wait(20*time.Second, "100 deliveries", func() bool { return d.Stats().Delivered >= 100 })
		for acct, evs := range map[string][]store.Event{"acme": a, "beta": b} {
			got := rcv.requests(acct)
			if len(got) != 50 {
				t.Fatalf("%s: %d requests, want 50", acct, len(got))
			}
			for i, r := range got {
				if r.Payload.ID != evs[i].ID || seqOf(t, r.Payload) != i || r.Payload.Account != acct ||
					r.Payload.Type != TypeCallCompleted {
					t.Fatalf("%s request %d: %+v, want event %d (%s)", acct, i, r.Payload, i, evs[i].ID)
				}
			}
		}
		rcv.checkSignatures()
		for _, acct := range []string{"acme", "beta"} {
			if q, _ := st.QueuedEvents(t.Context(), acct, 10); len(q) != 0 {
				t.Fatalf("%s still has %d queued", acct, len(q))
			}
		}
		if s := d.Stats(); s.Delivered != 100 || s.Attempts != 100 || s.Failed != 0 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

// TestFailingReceiverRetriedThenFailed: a receiver that answers 500 is
// tried again with growing delays until the deadline (MaxAge, short here),
// and then the event is failed; every attempt is in the log. The next
// event goes.
func TestFailingReceiverRetriedThenFailed(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rcv := newReceiver(t, st)
		var failID atomic.Value // the event the receiver refuses
		failID.Store("")
		rcv.handle("acme", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(EventIDHeader) == failID.Load().(string) {
				http.Error(w, "boom\n", http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		opts := fastOptions(rcv.webhook)
		opts.MinBackoff, opts.MaxBackoff, opts.MaxAge = 100*time.Millisecond, 400*time.Millisecond, 2*time.Second
		d := NewDispatcher(st, opts)
		d.jitter = func(c time.Duration) time.Duration { return c } // the ceiling: delays 100, 200, 400, 400 ms...
		evs := queue(t, st, "acme", 1)
		first := evs[0]
		failID.Store(first.ID)
		start(t, d)
		rcv.wait(10*time.Second, "the event to fail", func() bool {
			e, err := st.WebhookEvent(t.Context(), "acme", first.ID)
			return err == nil && e.State == store.EventFailed
		})
		// The next event, queued now, is delivered.
		evs = append(evs, queue(t, st, "acme", 1)...)
		d.Wake()
		rcv.wait(5*time.Second, "the second event's delivery", func() bool {
			e, err := st.WebhookEvent(t.Context(), "acme", evs[1].ID)
			return err == nil && e.State == store.EventDelivered
		})

		e, _ := st.WebhookEvent(t.Context(), "acme", first.ID)
		if e.Done.Before(e.Queued.Add(opts.MaxAge)) || !strings.HasPrefix(e.LastError, "gave up after") ||
			!strings.Contains(e.LastError, "HTTP 500 Internal Server Error: boom") {
			t.Fatalf("failed event: %+v (failed %v after it was queued)", e, e.Done.Sub(e.Queued))
		}
		var times []time.Time
		for _, r := range rcv.requests("acme") {
			if r.Payload.ID == first.ID {
				times = append(times, r.At)
			}
		}
		if len(times) < 5 || len(times) != e.Attempts {
			t.Fatalf("%d requests and %d attempts of the failing event", len(times), e.Attempts)
		}
		var gaps []time.Duration
		for i := 1; i < len(times); i++ {
			gaps = append(gaps, times[i].Sub(times[i-1]))
		}
		t.Logf("%d attempts over %v; gaps %v", len(times), times[len(times)-1].Sub(times[0]).Round(time.Millisecond), gaps)
		// Each retry waits at least its ceiling, and the ceiling doubles up to
		// MaxBackoff: 100, 200, 400, 400 ms. (A loaded machine adds to each
		// gap, so the gaps themselves are bounded below, not compared; the
		// last attempt, at the deadline, may come sooner.)
		for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond} {
			if i < len(gaps)-1 && gaps[i] < want {
				t.Errorf("gap %d = %v, want ≥ %v", i+1, gaps[i], want)
			}
		}
		// The last attempt is at the deadline.
		if last := times[len(times)-1]; last.Before(e.Queued.Add(opts.MaxAge)) {
			t.Errorf("last attempt %v before the deadline", e.Queued.Add(opts.MaxAge).Sub(last))
		}
		ds, err := st.Deliveries(t.Context(), "acme", 100)
		if err != nil {
			t.Fatal(err)
		}
		var failed int
		for _, x := range ds {
			if x.EventID == first.ID {
				failed++
				if x.Status != 500 || x.Error != "HTTP 500 Internal Server Error: boom" || x.Latency <= 0 ||
					x.State != store.EventFailed {
					t.Errorf("attempt %d = %+v", x.No, x)
				}
			}
		}
		if failed != e.Attempts {
			t.Errorf("%d attempts logged, want %d", failed, e.Attempts)
		}
		if ds[0].EventID != evs[1].ID || ds[0].Status != 200 || ds[0].Error != "" {
			t.Errorf("newest attempt = %+v, want the second event's 200", ds[0])
		}
	})
}

// TestHangingReceiverHoldsOnlyItsAccount: while one account's receiver
// hangs (until the request timeout), another account's 20 events arrive.
func TestHangingReceiverHoldsOnlyItsAccount(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rcv := newReceiver(t, st)
		release := make(chan struct{})
		var hangStart atomic.Int64
		rcv.handle("slow", func(w http.ResponseWriter, r *http.Request) {
			hangStart.CompareAndSwap(0, time.Now().UnixNano())
			select {
			case <-r.Context().Done(): // the dispatcher's timeout
			case <-release:
			}
		})
		t.Cleanup(func() { close(release) })
		opts := fastOptions(rcv.webhook)
		opts.Timeout = 1500 * time.Millisecond
		d := NewDispatcher(st, opts)
		queue(t, st, "slow", 5) // first: they are the oldest
		fast := queue(t, st, "fast", 20)
		t0 := time.Now()
		start(t, d)
		rcv.wait(10*time.Second, "the fast account's 20 events", func() bool { return len(rcv.requests("fast")) == 20 })
		took := time.Since(t0)
		// The fast account may be done before the slow request is even
		// made; then it is the slow one's turn.
		rcv.wait(5*time.Second, "the slow receiver's call", func() bool { return hangStart.Load() != 0 })
		hung := time.Since(time.Unix(0, hangStart.Load()))
		t.Logf("fast account's 20 events in %v, while the slow receiver hung for %v", took.Round(time.Millisecond), hung.Round(time.Millisecond))
		if hung >= opts.Timeout || len(rcv.requests("slow")) != 1 {
			t.Fatalf("the fast account took %v: its events waited for the slow receiver (%d slow requests)",
				took, len(rcv.requests("slow")))
		}
		for i, r := range rcv.requests("fast") {
			if r.Payload.ID != fast[i].ID {
				t.Fatalf("fast request %d out of order", i)
			}
		}
		// The slow one times out, is logged, and waits for its retry.
		rcv.wait(5*time.Second, "the slow attempt's timeout", func() bool {
			ds, _ := st.Deliveries(t.Context(), "slow", 10)
			return len(ds) > 0
		})
		ds, _ := st.Deliveries(t.Context(), "slow", 10)
		if ds[0].Status != 0 || ds[0].Error != "no answer within 1.5s" || ds[0].Latency < opts.Timeout {
			t.Fatalf("slow attempt = %+v", ds[0])
		}
	})
}

// TestRestartDeliversEveryEventOnce: events written while no dispatcher
// runs (one stopped, one "killed" still holding the lease) are delivered
// by a new dispatcher on a fresh connection to the database, each once.
func TestRestartDeliversEveryEventOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, dbURL string) {
		st1 := openStore(t, dbURL)
		rcv := newReceiver(t, st1)
		// A dispatcher that starts and stops before anything is queued.
		stop := start(t, NewDispatcher(st1, fastOptions(rcv.webhook)))
		time.Sleep(100 * time.Millisecond)
		stop()
		w := st1.NewCallWriter(store.CallWriterOptions{Log: quietLog()})
		rec := NewRecorder(w, rcv.webhook, quietLog())
		for i := range 30 {
			if !rec.Enqueue([]string{"acme", "beta", "gamma"}[i%3], TypeCallMissed, map[string]int{"n": i}) {
				t.Fatalf("event %d not queued", i)
			}
		}
		w.Close()
		// A node killed with -9 holding the lease: the new one waits for
		// it to expire.
		if ok, err := st1.TakeLease(t.Context(), LeaseName, "killed", 500*time.Millisecond); err != nil || !ok {
			t.Fatalf("take lease: %v, %v", ok, err)
		}
		st1.Close()

		st2 := openStore(t, dbURL)
		rcv.st = st2
		t0 := time.Now()
		d := NewDispatcher(st2, fastOptions(rcv.webhook))
		d.opts.LeaseTTL = 600 * time.Millisecond // retry the lease every 200 ms
		start(t, d)
		rcv.wait(10*time.Second, "30 events", func() bool { return d.Stats().Delivered >= 30 })
		if took := time.Since(t0); took < 300*time.Millisecond {
			t.Errorf("delivered after %v, while the killed node's lease held", took)
		}
		time.Sleep(200 * time.Millisecond) // time for duplicates to show
		seen := map[string]int{}
		for _, acct := range []string{"acme", "beta", "gamma"} {
			prev := -1
			for _, r := range rcv.requests(acct) {
				seen[r.Payload.ID]++
				if n := seqOf(t, r.Payload); n <= prev {
					t.Errorf("%s: event %d after %d", acct, n, prev)
				} else {
					prev = n
				}
				if r.Payload.Type != TypeCallMissed {
					t.Errorf("type %q", r.Payload.Type)
				}
			}
		}
		if len(seen) != 30 || rcv.total() != 30 {
			t.Fatalf("%d distinct events in %d requests, want 30 once each", len(seen), rcv.total())
		}
		rcv.checkSignatures()
	})
}

// TestDeliveriesLogAndReplay: the log shows each attempt's status, latency
// and error; a replayed event is delivered again, with the same id.
func TestDeliveriesLogAndReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rcv := newReceiver(t, st)
		var calls atomic.Int32
		rcv.handle("acme", func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "try\x00later\n")
				return
			}
			time.Sleep(5 * time.Millisecond)
			w.WriteHeader(http.StatusAccepted)
		})
		d := NewDispatcher(st, fastOptions(rcv.webhook))
		evs := queue(t, st, "acme", 1)
		start(t, d)
		delivered := func() bool {
			e, err := st.WebhookEvent(t.Context(), "acme", evs[0].ID)
			return err == nil && e.State == store.EventDelivered
		}
		rcv.wait(5*time.Second, "the delivery", delivered)
		ds, err := st.Deliveries(t.Context(), "acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 2 {
			t.Fatalf("%d attempts logged: %+v", len(ds), ds)
		}
		if a := ds[1]; a.No != 1 || a.Status != 503 || a.Error != "HTTP 503 Service Unavailable: try later" ||
			a.URL != rcv.url("acme") || a.Type != TypeCallCompleted {
			t.Errorf("first attempt = %+v", a)
		}
		if a := ds[0]; a.No != 2 || a.Status != 202 || a.Error != "" || a.Latency < 5*time.Millisecond ||
			a.State != store.EventDelivered {
			t.Errorf("second attempt = %+v", a)
		}

		if err := st.Replay(t.Context(), "acme", evs[0].ID); err != nil {
			t.Fatal(err)
		}
		d.Wake()
		rcv.wait(5*time.Second, "the replay", func() bool { return len(rcv.requests("acme")) == 3 })
		rcv.wait(5*time.Second, "the replay's outcome", delivered)
		got := rcv.requests("acme")
		if got[2].Payload.ID != evs[0].ID || got[2].Header.Get(EventIDHeader) != evs[0].ID {
			t.Fatalf("replay sent %s", got[2].Payload.ID)
		}
		if ds, _ := st.Deliveries(t.Context(), "acme", 0); len(ds) != 3 || ds[0].No != 3 || ds[0].Status != 202 {
			t.Fatalf("after the replay: %+v", ds)
		}
	})
}

// TestRemovedWebhookFailsQueuedEvents: an account without a webhook URL
// any more has its queued events failed, with the reason.
func TestRemovedWebhookFailsQueuedEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rcv := newReceiver(t, st)
		evs := queue(t, st, "gone", 3)
		d := NewDispatcher(st, fastOptions(func(a string) (string, bool) {
			if a == "gone" {
				return "", false
			}
			return rcv.webhook(a)
		}))
		start(t, d)
		rcv.wait(5*time.Second, "the events to fail", func() bool {
			e, err := st.WebhookEvent(t.Context(), "gone", evs[2].ID)
			return err == nil && e.State == store.EventFailed
		})
		for _, ev := range evs {
			e, _ := st.WebhookEvent(t.Context(), "gone", ev.ID)
			if e.State != store.EventFailed || e.LastError != ErrNoWebhook.Error() || e.Attempts != 0 {
				t.Errorf("event = %+v", e)
			}
		}
		if rcv.total() != 0 {
			t.Fatalf("%d requests", rcv.total())
		}
	})
}

// TestRedirectIsNotFollowed: a 3xx is a failed attempt, never followed.
func TestRedirectIsNotFollowed(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rcv := newReceiver(t, st)
		rcv.handle("acme", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		})
		queue(t, st, "acme", 1)
		start(t, NewDispatcher(st, fastOptions(rcv.webhook)))
		rcv.wait(5*time.Second, "the attempt", func() bool {
			ds, _ := st.Deliveries(t.Context(), "acme", 1)
			return len(ds) == 1
		})
		ds, _ := st.Deliveries(t.Context(), "acme", 1)
		if ds[0].Status != 307 || !strings.HasPrefix(ds[0].Error, "HTTP 307") {
			t.Fatalf("attempt = %+v", ds[0])
		}
		if got := rcv.requests("elsewhere"); len(got) != 0 {
			t.Fatal("the redirect was followed")
		}
	})
}

// TestDrain10000 drains 10,000 queued events to a healthy receiver on
// 127.0.0.1: in one account (in order, one at a time) and spread over 100
// accounts. The issue asks for under 30 s. Under the race detector, which
// slows the SQL drivers tenfold, it drains 300 in the same time.
func TestDrain10000(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	total, limit := 10000, 30*time.Second
	if raceEnabled {
		total = 300
	}
	for _, accounts := range []int{1, 100} {
		t.Run(fmt.Sprintf("%d-accounts", accounts), func(t *testing.T) {
			eachStore(t, func(t *testing.T, st *store.Store) {
				rcv := newReceiver(t, nil) // no signature check: it reads the store
				for a := range accounts {
					queue(t, st, fmt.Sprintf("acct%03d", a), total/accounts)
				}
				t0 := time.Now()
				d := NewDispatcher(st, fastOptions(rcv.webhook))
				start(t, d)
				rcv.wait(2*limit, "the deliveries", func() bool { return d.Stats().Delivered >= uint64(total) })
				took := time.Since(t0)
				t.Logf("%d events in %d account(s) drained in %v (%.0f/s), race detector %v", total, accounts,
					took.Round(time.Millisecond), float64(total)/took.Seconds(), raceEnabled)
				if took > limit {
					t.Errorf("draining took %v, want under %v", took, limit)
				}
				if rcv.total() != total {
					t.Errorf("%d requests for %d events", rcv.total(), total)
				}
				seen := map[string]bool{}
				for _, r := range rcv.requests("acct000") {
					seen[r.Payload.ID] = true
				}
				if len(seen) != total/accounts {
					t.Fatalf("acct000 got %d distinct events, want %d", len(seen), total/accounts)
				}
			})
		})
	}
}
