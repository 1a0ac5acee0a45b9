package store

import (
	"context"
	"testing"
	"time"
)

// TestAuthFailuresAndLockouts: failures of a source are counted within the
// window; a lockout is stored, a later one extends it and an earlier one
// does not shorten it, it spends the failures so far, and it is announced
// to the listeners (PostgreSQL). Old rows are swept.
func TestAuthFailuresAndLockouts(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		heard := make(chan string, 4)
		lctx, stop := context.WithCancel(ctx)
		defer stop()
		listening := make(chan error, 1)
		go func() {
			listening <- s.ListenLockouts(lctx, func(source string, until time.Time) {
				heard <- source + " " + until.UTC().Format(time.RFC3339)
			})
		}()
		for i := 1; i <= 3; i++ {
			at := t0.Add(time.Duration(i) * 20 * time.Second)
			n, err := s.AddAuthFailure(ctx, "203.0.113.7", at, at.Add(-time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if n != i {
				t.Fatalf("failure %d counted %d", i, n)
			}
		}
		// 80 s: the failure at 20 s is out of the window.
		at := t0.Add(80 * time.Second)
		if n, err := s.AddAuthFailure(ctx, "203.0.113.7", at, at.Add(-time.Minute)); err != nil || n != 3 {
			t.Fatalf("failure at 80 s: %d, %v; want 3", n, err)
		}
		if n, err := s.AddAuthFailure(ctx, "203.0.113.8", at, at.Add(-time.Minute)); err != nil || n != 1 {
			t.Fatalf("another source: %d, %v; want 1", n, err)
		}

		if s.Shared() {
			// LISTEN has started once a NOTIFY sent now is heard.
			deadline := time.After(10 * time.Second)
			for ready := false; !ready; {
				if _, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, GuardChannel, lockoutPayload("probe", t0)); err != nil {
					t.Fatal(err)
				}
				select {
				case <-heard:
					ready = true
				case <-time.After(100 * time.Millisecond):
				case <-deadline:
					t.Fatal("the listener hears nothing")
				}
			}
		}
		until := t0.Add(16 * time.Minute)
		if err := s.PutLockout(ctx, "203.0.113.7", until); err != nil {
			t.Fatal(err)
		}
		if err := s.PutLockout(ctx, "203.0.113.7", t0.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		locks, err := s.Lockouts(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if len(locks) != 1 || !locks["203.0.113.7"].Equal(until) {
			t.Fatalf("lockouts %v; want 203.0.113.7 until %v", locks, until)
		}
		if s.Shared() {
			for _, want := range []string{"203.0.113.7 2026-12-04T10:16:00Z", "203.0.113.7 2026-12-04T10:10:00Z"} {
				select {
				case got := <-heard:
					if got != want {
						t.Fatalf("heard %q, want %q", got, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("lockout %q not heard", want)
				}
			}
		}
		// The lockout spent the failures: counting starts again.
		if n, err := s.AddAuthFailure(ctx, "203.0.113.7", at, at.Add(-time.Minute)); err != nil || n != 1 {
			t.Fatalf("after the lockout: %d, %v; want 1", n, err)
		}

		if err := s.SweepGuard(ctx, at, until); err != nil {
			t.Fatal(err)
		}
		if locks, err := s.Lockouts(ctx, t0); err != nil || len(locks) != 0 {
			t.Fatalf("lockouts after the sweep: %v, %v", locks, err)
		}
		var rows int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM auth_failures`).Scan(&rows); err != nil || rows != 0 {
			t.Fatalf("failures after the sweep: %d, %v", rows, err)
		}
		stop()
		if err := <-listening; err != context.Canceled {
			t.Fatalf("ListenLockouts returned %v", err)
		}
	})
}

// TestFloodCalls: calls are counted per account and caller within the
// window, saturating at the limit, and swept.
func TestFloodCalls(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		const limit = 11
		var at time.Time
		for i := 1; i <= 12; i++ {
			at = t0.Add(time.Duration(i) * time.Second)
			n, err := s.ObserveCall(ctx, "acme", "34600000001", at, at.Add(-time.Minute), limit)
			if err != nil {
				t.Fatal(err)
			}
			if want := min(i, limit); n != want {
				t.Fatalf("call %d counted %d, want %d", i, n, want)
			}
		}
		if n, err := s.ObserveCall(ctx, "other", "34600000001", at, at.Add(-time.Minute), limit); err != nil || n != 1 {
			t.Fatalf("another account: %d, %v", n, err)
		}
		if n, err := s.CountCalls(ctx, "acme", "34600000002", at.Add(-time.Minute), limit); err != nil || n != 0 {
			t.Fatalf("another caller: %d, %v", n, err)
		}
		// 65 s after t0 the calls of the first 5 seconds are out.
		later := t0.Add(65 * time.Second)
		if n, err := s.CountCalls(ctx, "acme", "34600000001", later.Add(-time.Minute), 100); err != nil || n != 7 {
			t.Fatalf("count at 65 s: %d, %v; want 7", n, err)
		}
		if err := s.SweepGuard(ctx, later.Add(-time.Minute), later); err != nil {
			t.Fatal(err)
		}
		var rows int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM flood_calls`).Scan(&rows); err != nil || rows != 8 {
			t.Fatalf("calls after the sweep: %d, %v; want 8", rows, err)
		}
	})
}
