package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// testEvent is an event of the account, created at t.
func testEvent(account, id string, t time.Time) Event {
	return Event{ID: id, Account: account, Type: "call.completed", Created: t,
		Body: []byte(`{"id":"` + id + `"}`)}
}

func eventIDs(evs []Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func TestOutboxNextDueHoldsEachAccountsOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
		evs := []Event{
			testEvent("acme", "a1", t0), testEvent("beta", "b1", t0.Add(time.Second)),
			testEvent("acme", "a2", t0.Add(2*time.Second)), testEvent("acme", "a3", t0.Add(3*time.Second)),
			testEvent("beta", "b2", t0.Add(4*time.Second)),
		}
		if err := s.InsertEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		var seqs []string
		for _, e := range evs {
			seqs = append(seqs, fmt.Sprintf("%s=%d/%s", e.ID, e.Seq, e.State))
		}
		if got, want := strings.Join(seqs, " "), "a1=1/queued b1=1/queued a2=2/queued a3=3/queued b2=2/queued"; got != want {
			t.Fatalf("seqs = %s, want %s", got, want)
		}
		// A later batch numbers after the stored events.
		more := []Event{testEvent("acme", "a4", t0.Add(5*time.Second))}
		if err := s.InsertEvents(ctx, more); err != nil {
			t.Fatal(err)
		}
		if more[0].Seq != 4 {
			t.Fatalf("a4 seq = %d, want 4", more[0].Seq)
		}

		now := time.Now()
		due, err := s.NextDue(ctx, now, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(eventIDs(due), ","); got != "a1,b1" {
			t.Fatalf("due = %s, want a1,b1 (each account's head, longest waiting first)", got)
		}
		if got := due[0]; got.Account != "acme" || got.Type != "call.completed" || string(got.Body) != `{"id":"a1"}` ||
			!got.Created.Equal(t0) || !got.Queued.Equal(t0) || !got.NextAttempt.Equal(t0) || got.State != EventQueued {
			t.Fatalf("a1 read back as %+v", got)
		}
		if due, _ := s.NextDue(ctx, now, 1); len(due) != 1 || due[0].ID != "a1" {
			t.Fatalf("limit 1: %v", eventIDs(due))
		}

		// acme's head waits for a retry: acme has nothing due, beta goes on.
		if err := s.MarkRetry(ctx, "a1", now.Add(time.Hour), "HTTP 500", nil); err != nil {
			t.Fatal(err)
		}
		due, _ = s.NextDue(ctx, now, 10)
		if got := strings.Join(eventIDs(due), ","); got != "b1" {
			t.Fatalf("due after a1's retry = %s, want b1", got)
		}
		if err := s.MarkDelivered(ctx, "b1", now, nil); err != nil {
			t.Fatal(err)
		}
		due, _ = s.NextDue(ctx, now, 10)
		if got := strings.Join(eventIDs(due), ","); got != "b2" {
			t.Fatalf("due after b1 = %s, want b2", got)
		}
		// At the retry time acme's head is due again, before a2.
		due, _ = s.NextDue(ctx, now.Add(time.Hour), 10)
		if got := strings.Join(eventIDs(due), ","); got != "b2,a1" {
			t.Fatalf("due in an hour = %s, want b2,a1", got)
		}
		q, err := s.QueuedEvents(ctx, "acme", 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(eventIDs(q), ","); got != "a1,a2,a3,a4" {
			t.Fatalf("queued acme = %s", got)
		}
		if q[0].LastError != "HTTP 500" || !q[0].NextAttempt.Equal(now.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Fatalf("a1 after retry: %+v", q[0])
		}
		if err := s.MarkFailed(ctx, "a1", now, "gave up", nil); err != nil {
			t.Fatal(err)
		}
		due, _ = s.NextDue(ctx, now, 10)
		if got := strings.Join(eventIDs(due), ","); got != "a2,b2" {
			t.Fatalf("due after a1 failed = %s, want a2,b2", got)
		}
		e, err := s.WebhookEvent(ctx, "acme", "a1")
		if err != nil {
			t.Fatal(err)
		}
		if e.State != EventFailed || e.LastError != "gave up" || !e.Done.Equal(now.Truncate(time.Microsecond)) {
			t.Fatalf("a1 = %+v", e)
		}
		if _, err := s.WebhookEvent(ctx, "beta", "a1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another account's event: %v, want ErrNotFound", err)
		}
		// Only a queued event can be marked.
		if err := s.MarkDelivered(ctx, "a1", now, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("MarkDelivered of a failed event: %v, want ErrNotFound", err)
		}
	})
}

func TestOutboxInsertIsAllOrNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		now := time.Now()
		if err := s.InsertEvents(ctx, []Event{testEvent("acme", "e1", now)}); err != nil {
			t.Fatal(err)
		}
		err := s.InsertEvents(ctx, []Event{testEvent("acme", "e2", now), testEvent("acme", "e1", now)})
		if err == nil {
			t.Fatal("a batch with a stored id was accepted")
		}
		if q, _ := s.QueuedEvents(ctx, "acme", 10); strings.Join(eventIDs(q), ",") != "e1" {
			t.Fatalf("queued = %v: the failed batch left rows", eventIDs(q))
		}
		for _, bad := range []Event{
			{Account: "acme", Type: "x", Created: now, Body: []byte("{}")},
			{ID: "x", Type: "x", Created: now, Body: []byte("{}")},
			{ID: "x", Account: "acme", Created: now, Body: []byte("{}")},
			{ID: "x", Account: "acme", Type: "x", Body: []byte("{}")},
			{ID: "x", Account: "acme", Type: "x", Created: now},
		} {
			if err := s.InsertEvents(ctx, []Event{bad}); err == nil {
				t.Errorf("InsertEvents(%+v) accepted", bad)
			}
		}
		// The failed batch used no numbers.
		next := []Event{testEvent("acme", "e3", now)}
		if err := s.InsertEvents(ctx, next); err != nil {
			t.Fatal(err)
		}
		if next[0].Seq != 2 {
			t.Fatalf("seq after a failed batch = %d, want 2", next[0].Seq)
		}
	})
}

func TestOutboxConcurrentInsertsNumberWithoutGaps(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		const writers, batches, size = 4, 5, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*batches)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					evs := make([]Event, size)
					for i := range evs {
						// Two accounts per batch, in both orders across writers.
						acct := []string{"acme", "beta"}[(i+w)%2]
						evs[i] = testEvent(acct, fmt.Sprintf("w%d-b%d-%d", w, b, i), time.Now())
					}
					if err := s.InsertEvents(ctx, evs); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, acct := range []string{"acme", "beta"} {
			q, err := s.QueuedEvents(ctx, acct, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(q) != writers*batches*size/2 {
				t.Fatalf("%s has %d events, want %d", acct, len(q), writers*batches*size/2)
			}
			for i, e := range q {
				if e.Seq != int64(i+1) {
					t.Fatalf("%s event %d has seq %d", acct, i, e.Seq)
				}
			}
		}
	})
}

func TestOutboxAttemptsAndDeliveries(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Now().Truncate(time.Microsecond)
		if err := s.InsertEvents(ctx, []Event{testEvent("acme", "e1", t0), testEvent("acme", "e2", t0),
			testEvent("beta", "f1", t0)}); err != nil {
			t.Fatal(err)
		}
		a1 := Attempt{EventID: "e1", At: t0, URL: "http://hook/", Status: 0, Latency: 5 * time.Second,
			Error: "timeout"}
		if err := s.RecordAttempt(ctx, &a1); err != nil {
			t.Fatal(err)
		}
		if a1.No != 1 || a1.Account != "acme" {
			t.Fatalf("first attempt = %+v", a1)
		}
		a2 := Attempt{At: t0.Add(time.Second), URL: "http://hook/", Status: 500, Latency: 3 * time.Millisecond,
			Error: "HTTP 500"}
		if err := s.MarkRetry(ctx, "e1", t0.Add(2*time.Second), "HTTP 500", &a2); err != nil {
			t.Fatal(err)
		}
		a3 := Attempt{At: t0.Add(2 * time.Second), URL: "http://hook/", Status: 204, Latency: 1500 * time.Microsecond}
		if err := s.MarkDelivered(ctx, "e1", a3.At, &a3); err != nil {
			t.Fatal(err)
		}
		if a2.No != 2 || a3.No != 3 {
			t.Fatalf("attempt numbers %d, %d", a2.No, a3.No)
		}
		f1 := Attempt{At: t0.Add(3 * time.Second), URL: "http://beta/", Status: 200}
		if err := s.MarkDelivered(ctx, "f1", f1.At, &f1); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAttempt(ctx, &Attempt{EventID: "nope", At: t0}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("attempt of an unknown event: %v", err)
		}
		// A failed mark records nothing.
		if err := s.MarkDelivered(ctx, "e1", t0, &Attempt{At: t0.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second MarkDelivered: %v", err)
		}

		ds, err := s.Deliveries(ctx, "acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, fmt.Sprintf("%s#%d %d %v %q %s/%s", d.EventID, d.No, d.Status, d.Latency, d.Error, d.Type, d.State))
		}
		want := []string{
			`e1#3 204 1.5ms "" call.completed/delivered`,
			`e1#2 500 3ms "HTTP 500" call.completed/delivered`,
			`e1#1 0 5s "timeout" call.completed/delivered`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("deliveries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !ds[0].At.Equal(a3.At) || ds[0].URL != "http://hook/" || ds[0].Account != "acme" {
			t.Fatalf("newest delivery = %+v", ds[0])
		}
		if ds, _ := s.Deliveries(ctx, "acme", 1); len(ds) != 1 || ds[0].No != 3 {
			t.Fatalf("limit 1: %+v", ds)
		}
		if ds, _ := s.Deliveries(ctx, "beta", 0); len(ds) != 1 || ds[0].EventID != "f1" {
			t.Fatalf("beta's deliveries: %+v", ds)
		}
		if e, _ := s.WebhookEvent(ctx, "acme", "e1"); e.Attempts != 3 || e.Tries != 3 || e.LastError != "" {
			t.Fatalf("e1 = %+v", e)
		}
	})
}

func TestOutboxMarkDeliveredBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Now().Truncate(time.Microsecond)
		if err := s.InsertEvents(ctx, []Event{testEvent("acme", "e1", t0), testEvent("acme", "e2", t0),
			testEvent("acme", "e3", t0)}); err != nil {
			t.Fatal(err)
		}
		as := []Attempt{
			{EventID: "e1", At: t0, URL: "http://hook/", Status: 200, Latency: time.Millisecond},
			{EventID: "e2", At: t0.Add(time.Second), URL: "http://hook/", Status: 204, Latency: 2 * time.Millisecond},
		}
		if err := s.MarkDeliveredBatch(ctx, as); err != nil {
			t.Fatal(err)
		}
		if as[0].No != 1 || as[1].No != 1 || as[1].Account != "acme" {
			t.Fatalf("attempts = %+v", as)
		}
		for _, a := range as {
			e, _ := s.WebhookEvent(ctx, "acme", a.EventID)
			if e.State != EventDelivered || e.Attempts != 1 || !e.Done.Equal(a.At.Add(a.Latency)) {
				t.Fatalf("%s = %+v", a.EventID, e)
			}
		}
		if due, _ := s.NextDue(ctx, time.Now(), 10); strings.Join(eventIDs(due), ",") != "e3" {
			t.Fatalf("due = %v", eventIDs(due))
		}
		// One event not queued: nothing of the batch is written.
		err := s.MarkDeliveredBatch(ctx, []Attempt{{EventID: "e3", At: t0, Status: 200}, {EventID: "e1", At: t0, Status: 200}})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("batch with a delivered event: %v", err)
		}
		if e, _ := s.WebhookEvent(ctx, "acme", "e3"); e.State != EventQueued || e.Attempts != 0 {
			t.Fatalf("e3 after the refused batch: %+v", e)
		}
		if ds, _ := s.Deliveries(ctx, "acme", 0); len(ds) != 2 {
			t.Fatalf("%d attempts logged, want 2", len(ds))
		}
	})
}

func TestOutboxReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Now().Add(-time.Hour)
		if err := s.InsertEvents(ctx, []Event{testEvent("acme", "e1", t0), testEvent("acme", "e2", t0),
			testEvent("acme", "e3", t0)}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkDelivered(ctx, "e1", t0, &Attempt{At: t0, Status: 200}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkFailed(ctx, "e2", t0, "gave up", nil); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkRetry(ctx, "e3", time.Now().Add(time.Hour), "HTTP 503", nil); err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Millisecond)
		// A queued event keeps its place and is due now.
		if err := s.Replay(ctx, "acme", "e3"); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.NextDue(ctx, time.Now(), 10); strings.Join(eventIDs(due), ",") != "e3" {
			t.Fatalf("due after replaying queued e3: %v", eventIDs(due))
		}
		// Delivered and failed events go to the end of the queue.
		for _, id := range []string{"e1", "e2"} {
			if err := s.Replay(ctx, "acme", id); err != nil {
				t.Fatal(err)
			}
		}
		q, err := s.QueuedEvents(ctx, "acme", 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(eventIDs(q), ","); got != "e3,e1,e2" {
			t.Fatalf("queue after replays = %s, want e3,e1,e2", got)
		}
		e1 := q[1]
		if e1.Seq != 4 || e1.State != EventQueued || e1.LastError != "" || !e1.Done.IsZero() ||
			e1.Queued.Before(before) || e1.NextAttempt.After(time.Now()) || e1.Attempts != 1 || e1.Tries != 0 {
			t.Fatalf("replayed e1 = %+v", e1)
		}
		if err := s.Replay(ctx, "beta", "e1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("replay of another account's event: %v", err)
		}
		if err := s.Replay(ctx, "acme", "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("replay of an unknown event: %v", err)
		}
	})
}

func TestOutboxPrune(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Now().Add(-48 * time.Hour)
		if err := s.InsertEvents(ctx, []Event{testEvent("acme", "old", t0), testEvent("acme", "new", t0),
			testEvent("acme", "queued", t0)}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkDelivered(ctx, "old", t0, &Attempt{At: t0, Status: 200}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkFailed(ctx, "new", time.Now(), "x", nil); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneEvents(ctx, time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("pruned %d, want 1", n)
		}
		if _, err := s.WebhookEvent(ctx, "acme", "old"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("pruned event still there: %v", err)
		}
		if ds, _ := s.Deliveries(ctx, "acme", 0); len(ds) != 0 {
			t.Fatalf("pruned event's attempts remain: %+v", ds)
		}
		for _, id := range []string{"new", "queued"} {
			if _, err := s.WebhookEvent(ctx, "acme", id); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
	})
}

func TestWebhookSecretsRotate(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		cur, prev, err := s.WebhookSecrets(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cur, "whsec_") || len(cur) != len("whsec_")+43 || prev != "" {
			t.Fatalf("first secrets = %q, %q", cur, prev)
		}
		if again, _, _ := s.WebhookSecrets(ctx, "acme"); again != cur {
			t.Fatal("the secret changed without a rotation")
		}
		if other, _, _ := s.WebhookSecrets(ctx, "beta"); other == cur {
			t.Fatal("two accounts share a secret")
		}

		next, err := s.RotateWebhookSecret(ctx, "acme", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		c2, p2, err := s.WebhookSecrets(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if c2 != next || p2 != cur || next == cur {
			t.Fatalf("after rotation: current %q previous %q; want %q, %q", c2, p2, next, cur)
		}
		time.Sleep(400 * time.Millisecond)
		if c3, p3, _ := s.WebhookSecrets(ctx, "acme"); c3 != next || p3 != "" {
			t.Fatalf("after expiry: %q, %q", c3, p3)
		}

		// Two valid at most; keepPrevious 0 ends the old one at once.
		third, _ := s.RotateWebhookSecret(ctx, "acme", time.Hour)
		fourth, _ := s.RotateWebhookSecret(ctx, "acme", time.Hour)
		if c, p, _ := s.WebhookSecrets(ctx, "acme"); c != fourth || p != third {
			t.Fatalf("after two rotations: %q, %q; want %q, %q", c, p, fourth, third)
		}
		fifth, _ := s.RotateWebhookSecret(ctx, "acme", 0)
		if c, p, _ := s.WebhookSecrets(ctx, "acme"); c != fifth || p != "" {
			t.Fatalf("after a rotation without overlap: %q, %q", c, p)
		}
		// Rotating an account that never had one just creates it.
		first, err := s.RotateWebhookSecret(ctx, "gamma", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if c, p, _ := s.WebhookSecrets(ctx, "gamma"); c != first || p != "" {
			t.Fatalf("gamma: %q, %q", c, p)
		}
	})
}

func TestLeases(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		take := func(holder string, ttl time.Duration) bool {
			t.Helper()
			ok, err := s.TakeLease(ctx, "webhooks", holder, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !take("a", time.Hour) {
			t.Fatal("a could not take a free lease")
		}
		if take("b", time.Hour) {
			t.Fatal("b took a's lease")
		}
		if !take("a", 200*time.Millisecond) {
			t.Fatal("a could not renew")
		}
		time.Sleep(300 * time.Millisecond)
		if !take("b", time.Hour) {
			t.Fatal("b could not take an expired lease")
		}
		if take("a", time.Hour) {
			t.Fatal("a took b's lease back")
		}
		if err := s.ReleaseLease(ctx, "webhooks", "a"); err != nil {
			t.Fatal(err)
		}
		if take("a", time.Hour) {
			t.Fatal("a's release of b's lease freed it")
		}
		if err := s.ReleaseLease(ctx, "webhooks", "b"); err != nil {
			t.Fatal(err)
		}
		if !take("a", time.Hour) {
			t.Fatal("a could not take a released lease")
		}
	})
}
