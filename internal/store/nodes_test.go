package store

import (
	"sync"
	"testing"
	"time"
)

// TestNodesReapAndCrash: a node's calls are in the database while they are
// in progress (written at their start); when a node stops beating the
// others close them with cause node_lost at its last heartbeat, once even
// when several nodes reap at the same moment, with call.completed events;
// a node restarting closes what it left open with cause crashed.
func TestNodesReapAndCrash(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		var mu sync.Mutex
		var finals []string
		w := s.NewCallWriter(CallWriterOptions{Events: func(r *CallRecord) []Event {
			mu.Lock()
			finals = append(finals, r.ID+" "+r.HangupCause)
			mu.Unlock()
			return []Event{{ID: "ev-" + r.ID, Account: r.Account, Type: "call.completed", Created: r.End, Body: []byte(`{"call":"` + r.ID + `"}`)}}
		}})
		defer w.Close()

		t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		for _, n := range []string{"a", "b"} {
			if err := s.Beat(ctx, Node{ID: n, SIPAddr: n + ":5060", Started: t0, Heartbeat: t0}); err != nil {
				t.Fatal(err)
			}
		}
		open := func(id, node string, start time.Time) {
			t.Helper()
			c := &CallRecord{ID: id, Account: "acme", Number: "+34910000000", Caller: "+34600000001", Start: start, Outcome: "routed", Node: node}
			if err := s.InsertCall(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		open("a1", "a", t0.Add(-time.Minute))
		open("a2", "a", t0.Add(-time.Second))
		open("b1", "b", t0.Add(-time.Second))
		ended := &CallRecord{ID: "a0", Account: "acme", Caller: "x", Start: t0.Add(-time.Hour), End: t0.Add(-50 * time.Minute), Outcome: "routed", Node: "a"}
		if err := s.InsertCall(ctx, ended); err != nil {
			t.Fatal(err)
		}

		// b beats on; a falls silent.
		now := t0.Add(NodeDeadAfter + time.Second)
		if err := s.Beat(ctx, Node{ID: "b", Started: t0, Heartbeat: now}); err != nil {
			t.Fatal(err)
		}
		alive, err := s.Nodes(ctx, now)
		if err != nil || len(alive) != 1 || alive[0].ID != "b" {
			t.Fatalf("Nodes = %+v, %v; want only b", alive, err)
		}
		live, err := s.OpenCalls(ctx, "acme", "c", now)
		if err != nil || len(live) != 1 || live[0].ID != "b1" {
			t.Fatalf("OpenCalls = %v, %v; want b1 (a is dead)", ids(live), err)
		}

		var wg sync.WaitGroup
		results := make([]map[string]int, 4)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := w.ReapNodes(ctx, now)
				if err != nil {
					t.Error(err)
				}
				results[i] = r
			}()
		}
		wg.Wait()
		total := 0
		for _, r := range results {
			if _, ok := r["b"]; ok {
				t.Errorf("the live node b was reaped: %v", r)
			}
			total += r["a"]
		}
		if total != 2 {
			t.Fatalf("calls closed for a over 4 concurrent reapers = %d, want 2 (%v)", total, results)
		}
		for _, id := range []string{"a1", "a2"} {
			c, err := s.GetCall(ctx, "acme", id)
			if err != nil {
				t.Fatal(err)
			}
			if c.HangupCause != CauseNodeLost || !c.End.Equal(t0) || c.Start.After(c.End) {
				t.Errorf("%s: cause %q end %v start %v; want node_lost at the last heartbeat %v", id, c.HangupCause, c.End, c.Start, t0)
			}
		}
		if c, _ := s.GetCall(ctx, "acme", "a0"); c.HangupCause != "" || !c.End.Equal(ended.End) {
			t.Errorf("a call that had ended was touched: %+v", c)
		}
		if alive, _ := s.Nodes(ctx, t0); len(alive) != 1 {
			t.Errorf("the dead node's row is still there: %+v", alive)
		}
		var events int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_events WHERE type = 'call.completed'`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		if events != 2 {
			t.Errorf("call.completed events = %d, want 2 (one per lost call)", events)
		}

		// b is killed and restarts: its open call is closed as crashed,
		// at its last heartbeat.
		n, err := w.CloseCrashed(ctx, "b", now.Add(time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("CloseCrashed(b) = %d, %v; want 1", n, err)
		}
		if c, _ := s.GetCall(ctx, "acme", "b1"); c.HangupCause != CauseCrashed || !c.End.Equal(now) {
			t.Errorf("b1: cause %q end %v; want crashed at %v", c.HangupCause, c.End, now)
		}
		if n, err := w.CloseCrashed(ctx, "b", now.Add(time.Minute)); err != nil || n != 0 {
			t.Errorf("second CloseCrashed(b) = %d, %v; want 0", n, err)
		}
		if len(finals) != 3 {
			t.Errorf("final events made for %v, want a1, a2, b1 once each", finals)
		}
		if err := s.LeaveCluster(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if alive, _ := s.Nodes(ctx, now); len(alive) != 0 {
			t.Errorf("after LeaveCluster: %+v", alive)
		}
	})
}

func ids(recs []*CallRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}
