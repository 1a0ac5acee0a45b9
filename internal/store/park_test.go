package store

import (
	"sync"
	"testing"
	"time"
)

// TestParkOrbits: orbits are given lowest first and once across nodes,
// even to calls parked at the same moment on two nodes; a pickup finds the
// node and its SIP address; a release frees only the releasing call's
// orbit; the orbits of a node that died are free to others, and gone once
// it is reaped; a restarting node clears what it held.
func TestParkOrbits(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		for _, n := range []string{"a", "b"} {
			if err := s.Beat(ctx, Node{ID: n, SIPAddr: n + ".test:5060", Started: t0, Heartbeat: t0}); err != nil {
				t.Fatal(err)
			}
		}
		claim := func(node, call string, now time.Time) (int, bool) {
			t.Helper()
			o, ok, err := s.ClaimOrbit(ctx, "acme", 701, 703, node, call, now)
			if err != nil {
				t.Fatalf("ClaimOrbit(%s, %s): %v", node, call, err)
			}
			return o, ok
		}
		if o, ok := claim("a", "c1", t0); !ok || o != 701 {
			t.Fatalf("first claim: %d %v, want 701", o, ok)
		}
		if o, ok := claim("b", "c2", t0); !ok || o != 702 {
			t.Fatalf("second claim (other node): %d %v, want 702", o, ok)
		}
		if o, _, _ := s.ClaimOrbit(ctx, "other", 701, 703, "c", "x1", t0); o != 701 {
			t.Errorf("another account's first orbit: %d, want 701", o)
		}
		p, ok, err := s.ParkedCall(ctx, "acme", 702, t0)
		if err != nil || !ok || p.Node != "b" || p.SIPAddr != "b.test:5060" || p.CallID != "c2" || !p.Parked.Equal(t0) {
			t.Fatalf("ParkedCall(702) = %+v %v %v", p, ok, err)
		}
		if _, ok, _ := s.ParkedCall(ctx, "acme", 703, t0); ok {
			t.Error("ParkedCall(703): found a call in an empty orbit")
		}
		if o, ok := claim("a", "c3", t0); !ok || o != 703 {
			t.Fatalf("third claim: %d %v, want 703", o, ok)
		}
		if o, ok := claim("b", "c4", t0); ok {
			t.Fatalf("claim of a full lot: got %d", o)
		}
		// A release names its call: c9 never held 701.
		if err := s.ReleaseOrbit(ctx, "acme", 701, "c9"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.ParkedCall(ctx, "acme", 701, t0); !ok {
			t.Error("701 freed by a call that did not hold it")
		}
		if err := s.ReleaseOrbit(ctx, "acme", 701, "c1"); err != nil {
			t.Fatal(err)
		}
		if o, ok := claim("b", "c5", t0); !ok || o != 701 {
			t.Fatalf("claim after the release: %d %v, want 701", o, ok)
		}

		// An orbit whose call ended (its release was lost) is free again.
		ended := &CallRecord{ID: "c5", Account: "acme", Caller: "x", Start: t0, End: t0.Add(time.Second), Outcome: "routed", Node: "b"}
		if err := s.InsertCall(ctx, ended); err != nil {
			t.Fatal(err)
		}
		if o, ok := claim("a", "c6", t0); !ok || o != 701 {
			t.Fatalf("claim with the ended c5 in 701: %d %v, want 701", o, ok)
		}

		// Two calls parked at once on two nodes get two orbits.
		for _, o := range []int{701, 702, 703} {
			p, _, _ := s.ParkedCall(ctx, "acme", o, t0)
			_ = s.ReleaseOrbit(ctx, "acme", o, p.CallID)
		}
		var wg sync.WaitGroup
		got := make([]int, 6)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				node := []string{"a", "b"}[i%2]
				o, ok, err := s.ClaimOrbit(ctx, "race", 1, 3, node, node+string(rune('0'+i)), t0)
				if err != nil {
					t.Errorf("concurrent claim %d: %v", i, err)
				}
				if ok {
					got[i] = o
				}
			}()
		}
		wg.Wait()
		seen := map[int]bool{}
		for _, o := range got {
			if o == 0 {
				continue
			}
			if seen[o] {
				t.Errorf("orbit %d given twice: %v", o, got)
			}
			seen[o] = true
		}
		if len(seen) != 3 {
			t.Errorf("concurrent claims got %v, want orbits 1, 2, 3 once each", got)
		}

		// a falls silent: its calls are not found, its orbits go to others.
		now := t0.Add(NodeDeadAfter + time.Second)
		if err := s.Beat(ctx, Node{ID: "b", SIPAddr: "b.test:5060", Started: t0, Heartbeat: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.Beat(ctx, Node{ID: "a", SIPAddr: "a.test:5060", Started: t0, Heartbeat: t0}); err != nil {
			t.Fatal(err)
		}
		var heldByA int
		for o := 1; o <= 3; o++ {
			if p, _, _ := s.ParkedCall(ctx, "race", o, t0); p.Node == "a" && heldByA == 0 {
				heldByA = o // the lowest
			}
			if p, ok, _ := s.ParkedCall(ctx, "race", o, now); ok && p.Node == "a" {
				t.Errorf("orbit %d: a dead node's call is found", o)
			}
		}
		if heldByA == 0 {
			t.Fatal("node a holds none of the race's orbits")
		}
		if o, ok, err := s.ClaimOrbit(ctx, "race", 1, 3, "b", "late", now); err != nil || !ok || o != heldByA {
			t.Errorf("claim with a dead node's orbit held: %d %v %v, want %d", o, ok, err, heldByA)
		}

		// Reaping a removes whatever it still held.
		if _, _, err := s.ClaimOrbit(ctx, "acme", 701, 703, "a", "a-last", t0); err != nil {
			t.Fatal(err)
		}
		w := s.NewCallWriter(CallWriterOptions{})
		defer w.Close()
		if _, err := w.ReapNodes(ctx, now); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM park_orbits WHERE node = 'a'`).Scan(&left); err != nil || left != 0 {
			t.Errorf("after reaping a: %d of its orbits left (%v)", left, err)
		}

		// A restart clears what the node held before.
		if err := s.ClearOrbits(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM park_orbits`).Scan(&left); err != nil || left != 1 {
			t.Errorf("after clearing b: %d orbits left (%v), want other's 1", left, err)
		}
	})
}
