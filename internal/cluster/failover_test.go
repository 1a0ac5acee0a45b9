package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// Load of the failover tests: 20 calls a second through Kamailio, each
// held 2 s, so some 40 calls are up at any moment, half on each node.
const (
	loadRate = 20
	loadHold = 2 * time.Second
	// failoverLimit is how soon a call placed after a node's loss must be
	// answered by another node (issue 13: "within 5 s").
	failoverLimit = 5 * time.Second
)

// records returns the account's call records by caller.
func records(t *testing.T, db string) map[string]*store.CallRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string]*store.CallRecord{}
	if err := st.EachCall(ctx, store.CallFilter{Account: "acme"}, func(c *store.CallRecord) error {
		out[c.Caller] = c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// answerGap is the longest time between two consecutive 200s (any node)
// from..to: how long the carrier went without a call being set up.
func answerGap(calls []*loadCall, from, to time.Time) time.Duration {
	var at []time.Time
	for _, c := range calls {
		if !c.answered.IsZero() && !c.answered.Before(from) && !c.answered.After(to) {
			at = append(at, c.answered)
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	prev, gap := from, time.Duration(0)
	for _, a := range at {
		gap = max(gap, a.Sub(prev))
		prev = a
	}
	return max(gap, to.Sub(prev))
}

// TestNodeLossUnderLoad: under a steady 20 calls/s through Kamailio, one
// of the two nodes is killed with SIGKILL. Every call placed after the
// kill is answered by the other node within 5 s (Kamailio gives up on the
// silent node after FR_TIMER, marks it inactive and tries the next), and
// every call that was up on the dead node has a record, closed by the
// survivor with cause node_lost once the dead node's heartbeat is 10 s old.
func TestNodeLossUnderLoad(t *testing.T) {
	dir := t.TempDir()
	far := startFarEnd(t, dir)
	c := startCluster(t, clusterOptions{config: accountYAML(far.addr)})
	victim, survivor := c.nodes[0], c.nodes[1]
	car := newCarrier(t, c.Proxy, outNumber, loadHold)
	car.run(loadRate)

	time.Sleep(4 * time.Second)
	killed := time.Now()
	victim.p.signal(syscall.SIGKILL)
	if !victim.p.waitExit(5 * time.Second) {
		t.Fatal("the killed node did not exit")
	}
	t.Logf("%s killed with SIGKILL at %s", victim.id, killed.Format("15:04:05.000"))
	time.Sleep(8 * time.Second)
	car.halt()
	calls := car.snapshot()
	t.Logf("load: %s", summary(calls))

	var before, after, onDead, failedAfter []*loadCall
	var maxSetup time.Duration
	for _, lc := range calls {
		if lc.start.Before(killed) {
			before = append(before, lc)
			if lc.node == victim.SIP() && (lc.byeSent.IsZero() || !lc.byeSent.Before(killed)) {
				onDead = append(onDead, lc) // up on the victim when it died
			}
			continue
		}
		after = append(after, lc)
		if !lc.ok() {
			failedAfter = append(failedAfter, lc)
			continue
		}
		maxSetup = max(maxSetup, lc.answered.Sub(lc.start))
		if lc.node != survivor.SIP() {
			t.Errorf("call %d placed %v after the kill was answered by %q, not the surviving node %s",
				lc.n, lc.start.Sub(killed).Round(time.Millisecond), lc.node, survivor.SIP())
		}
	}
	gap := answerGap(calls, killed, killed.Add(5*time.Second))
	t.Logf("failover: %d calls placed after the kill, %d failed; longest INVITE→200 among them %v (limit %v); longest time without a new call answered after the kill %v",
		len(after), len(failedAfter), maxSetup.Round(time.Millisecond), failoverLimit, gap.Round(time.Millisecond))
	t.Logf("%d calls were up on %s when it died", len(onDead), victim.id)
	for _, lc := range failedAfter {
		t.Errorf("call %d placed %v after the kill failed: status %d: %v", lc.n, lc.start.Sub(killed).Round(time.Millisecond), lc.status, lc.err)
	}
	if maxSetup > failoverLimit {
		t.Errorf("a call placed after the kill took %v to be answered (limit %v)", maxSetup, failoverLimit)
	}
	if len(after) < 100 {
		t.Errorf("only %d calls were placed after the kill (the load fell behind)", len(after))
	}
	if len(onDead) == 0 {
		t.Fatal("no call was up on the killed node: nothing to check of node_lost")
	}
	for _, lc := range before {
		if lc.node == survivor.SIP() && !lc.ok() {
			t.Errorf("call %d, up on the surviving node during the kill, failed: %v", lc.n, lc.err)
		}
	}

	// The survivor reaps the dead node's calls NodeDeadAfter after its last
	// heartbeat (plus a reaping period).
	deadline := killed.Add(store.NodeDeadAfter + 15*time.Second)
	var missing []string
	for {
		recs := records(t, c.db)
		missing = missing[:0]
		for _, lc := range onDead {
			r := recs[lc.caller]
			switch {
			case r == nil:
				missing = append(missing, fmt.Sprintf("call %d (%s): no record", lc.n, lc.caller))
			case r.End.IsZero():
				missing = append(missing, fmt.Sprintf("call %d (%s): record still open", lc.n, lc.caller))
			case r.HangupCause != store.CauseNodeLost:
				missing = append(missing, fmt.Sprintf("call %d (%s): cause %q, want %q", lc.n, lc.caller, r.HangupCause, store.CauseNodeLost))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of the %d calls up on the dead node have no node_lost record %v after the kill:\n%s",
			len(missing), len(onDead), time.Since(killed).Round(time.Second), strings.Join(missing, "\n"))
	}
	t.Logf("all %d calls up on the dead node closed with cause %s, %v after the kill",
		len(onDead), store.CauseNodeLost, time.Since(killed).Round(100*time.Millisecond))
	// Nothing is left open: every record of the account has its end.
	for caller, r := range records(t, c.db) {
		if r.End.IsZero() {
			t.Errorf("the record of %s (call %s) is still open", caller, r.ID)
		}
	}
}

// TestRollingRestart: under a steady 20 calls/s through Kamailio, each
// node in turn is sent SIGTERM, drains (new INVITEs answered 503 and
// retried by Kamailio on the other node; its calls end normally), exits
// and is started again; the next one goes once the restarted node takes
// calls again. Not one call fails.
func TestRollingRestart(t *testing.T) {
	dir := t.TempDir()
	far := startFarEnd(t, dir)
	c := startCluster(t, clusterOptions{config: accountYAML(far.addr), drain: 15 * time.Second})
	car := newCarrier(t, c.Proxy, outNumber, loadHold)
	car.run(loadRate)
	time.Sleep(3 * time.Second)
	for _, n := range c.nodes {
		termAt := time.Now()
		n.p.signal(syscall.SIGTERM)
		if !n.p.waitExit(20 * time.Second) {
			t.Fatalf("%s did not exit within 20 s of SIGTERM", n.id)
		}
		exited := time.Now()
		n.start(t)
		ready := time.Now()
		// Back in Kamailio's set once an OPTIONS ping has been answered:
		// wait until it answers calls again.
		back := waitAnswering(t, car, n, ready, 15*time.Second)
		t.Logf("%s: SIGTERM, drained and exited in %v, ready again %v later, answering calls %v after that",
			n.id, exited.Sub(termAt).Round(time.Millisecond), ready.Sub(exited).Round(time.Millisecond), back.Sub(ready).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	car.halt()
	calls := car.snapshot()
	t.Logf("load: %s", summary(calls))
	var failed int
	for _, lc := range calls {
		if !lc.ok() {
			failed++
			if failed <= 10 {
				t.Errorf("call %d (placed %s) failed: status %d, BYE %d: %v", lc.n, lc.start.Format("15:04:05.000"), lc.status, lc.byeCode, lc.err)
			}
		}
	}
	t.Logf("rolling restart: %d calls, %d failed", len(calls), failed)
	if failed > 0 {
		t.Fatalf("%d calls failed during the rolling restart, want 0", failed)
	}
}

// waitAnswering waits until a call placed after since is answered by n.
func waitAnswering(t *testing.T, car *carrier, n *node, since time.Time, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, lc := range car.snapshot() {
			if lc.start.After(since) && lc.node == n.SIP() && !lc.answered.IsZero() {
				return lc.answered
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s answered no call within %v of being ready again", n.id, d)
	return time.Time{}
}
