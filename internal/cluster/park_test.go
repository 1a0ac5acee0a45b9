package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

const parkNumber = "+34910000004" // the park lot: orbits 701-703

// TestParkAcrossNodes: two carrier calls to the park lot arrive through
// Kamailio (on either node) and wait in orbits 701 and 702, given out by
// the database whichever node took them. Bob, registered through
// Kamailio, dials each orbit on the node that does NOT hold the call: that
// node sends the holder a signed pickup, and bob and the parked caller
// hear each other. A forged pickup header is refused 403. Once both calls
// end, the orbits are free again: the next call parked waits in 701.
func TestParkAcrossNodes(t *testing.T) {
	cfg := strings.Replace(accountYAML(""), "numbers:\n", "parks:\n  lot: { orbits: \"701-703\", timeout: 60s }\nnumbers:\n  \""+parkNumber+"\": { extension: lot }\n", 1)
	c := startCluster(t, clusterOptions{config: cfg})
	bob := newPhone(t, c, "bob", "pw-bob", 1500)
	carrier := newCarrierPhone(t)

	type parkedCall struct {
		caller string
		tone   float64
		call   *testphone.Call
		holder *node
	}
	parked := []*parkedCall{{caller: "+34600020001", tone: 700}, {caller: "+34600020002", tone: 900}}
	for _, p := range parked {
		ctx := ctxFor(t, 15*time.Second)
		var err error
		p.call, err = carrier.Dial(ctx, "sip:"+parkNumber+"@"+c.Proxy, testphone.DialOptions{FromUser: p.caller, Play: testphone.Tone(p.tone)()})
		if err != nil {
			t.Fatalf("park call from %s: %v", p.caller, err)
		}
		if p.holder = answeredBy(c, p.call); p.holder == nil {
			t.Fatalf("park call from %s: answered by no node", p.caller)
		}
	}
	// The trace names the orbit only once the call ends: ask the shared
	// orbits which call holds which.
	orbits := map[string]string{} // caller -> orbit
	deadline := time.Now().Add(10 * time.Second)
	for len(orbits) < len(parked) && time.Now().Before(deadline) {
		for _, p := range parked {
			if o := parkedOrbit(t, c, p.caller); o != "" {
				orbits[p.caller] = o
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range parked {
		t.Logf("%s parked on %s in orbit %s", p.caller, p.holder.id, orbits[p.caller])
	}
	if orbits[parked[0].caller] != "701" || orbits[parked[1].caller] != "702" {
		t.Fatalf("orbits %v; want 701 and 702, given out once across the nodes", orbits)
	}

	// A phone cannot forge a node's pickup.
	ctx := ctxFor(t, 10*time.Second)
	forged := testphone.DialOptions{Headers: map[string]string{call.PickupHeader: "acme bob " + fmt.Sprint(time.Now().Unix()) + " " + strings.Repeat("ab", 32)}}
	if _, err := bob.Dial(ctx, "sip:701@"+c.nodes[0].SIP(), forged); testphone.StatusCode(err) != 403 {
		t.Errorf("forged pickup: %v, want 403", err)
	}

	for _, p := range parked {
		other := c.nodes[0]
		if other == p.holder {
			other = c.nodes[1]
		}
		ctx := ctxFor(t, 20*time.Second)
		orbit := orbits[p.caller]
		pick, err := bob.Dial(ctx, "sip:"+orbit+"@"+other.SIP(), testphone.DialOptions{Play: testphone.Tone(1500)()})
		if err != nil {
			t.Fatalf("bob dials orbit %s on %s (the call waits on %s): %v", orbit, other.id, p.holder.id, err)
		}
		if err := pick.WaitForTone(ctx, p.tone, 200*time.Millisecond); err != nil {
			t.Errorf("orbit %s: bob, on %s, does not hear the caller parked on %s: %v", orbit, other.id, p.holder.id, err)
		}
		if err := p.call.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
			t.Errorf("orbit %s: the caller parked on %s does not hear bob: %v", orbit, p.holder.id, err)
		}
		if err := p.call.Hangup(ctx); err != nil {
			t.Errorf("orbit %s: hangup: %v", orbit, err)
		}
		select {
		case <-pick.Ended():
		case <-ctx.Done():
			t.Errorf("orbit %s: bob's call did not end after the parked caller hung up", orbit)
		}
		t.Logf("orbit %s: picked up by bob on %s from %s, audio both ways, ended together", orbit, other.id, p.holder.id)
	}

	// The records: each parked call answered by bob, on its holder.
	recs := waitRecords(t, c, 10*time.Second, parked[0].caller, parked[1].caller)
	for _, p := range parked {
		r := recs[p.caller]
		orbit := orbits[p.caller]
		if r.AnsweredBy != "user:bob" || r.Node != p.holder.id || !traceHas(r, "picked up from orbit "+orbit+" by user:bob") {
			t.Errorf("%s: answered_by %q node %q trace %q", p.caller, r.AnsweredBy, r.Node, r.Trace)
		}
	}

	// Both orbits are free again, on every node.
	ctx = ctxFor(t, 15*time.Second)
	again, err := carrier.Dial(ctx, "sip:"+parkNumber+"@"+c.Proxy, testphone.DialOptions{FromUser: "+34600020003"})
	if err != nil {
		t.Fatal(err)
	}
	var orbit string
	for deadline := time.Now().Add(5 * time.Second); orbit == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		orbit = parkedOrbit(t, c, "+34600020003")
	}
	if orbit != "701" {
		t.Errorf("after both pickups the next call waits in orbit %q, want 701", orbit)
	}
	_ = again.Hangup(ctx)
}

// parkedOrbit is the orbit the caller's call waits in, from the shared
// orbits table ("" if none).
func parkedOrbit(t *testing.T, c *cluster, caller string) string {
	t.Helper()
	ctx := ctxFor(t, 5*time.Second)
	st, err := store.Open(ctx, c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for orbit := 701; orbit <= 703; orbit++ {
		p, ok, err := st.ParkedCall(ctx, "acme", orbit, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		r, err := st.GetCall(ctx, "acme", p.CallID)
		if err == nil && r.Caller == caller {
			return fmt.Sprint(orbit)
		}
	}
	return ""
}

// waitRecords waits until the callers' records are closed.
func waitRecords(t *testing.T, c *cluster, d time.Duration, callers ...string) map[string]*store.CallRecord {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		recs := records(t, c.db)
		done := true
		for _, caller := range callers {
			if r := recs[caller]; r == nil || r.End.IsZero() {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func traceHas(r *store.CallRecord, s string) bool {
	for _, l := range r.Trace {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
