package cluster

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// tableStats are PostgreSQL's counts of what was done to one table.
type tableStats struct{ ins, upd, del, scans int64 }

// schemaStats reads pg_stat_user_tables for the schema of the database
// URL db. The nodes must have stopped: a backend reports its counts when
// it exits (or when it has been idle a while).
func schemaStats(t *testing.T, db string) map[string]tableStats {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	conn, err := sql.Open("pgx", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := conn.QueryContext(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_del,
		coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE schemaname = $1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]tableStats{}
	for rows.Next() {
		var name string
		var s tableStats
		if err := rows.Scan(&name, &s.ins, &s.upd, &s.del, &s.scans); err != nil {
			t.Fatal(err)
		}
		out[name] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// callsCost runs a one-node cluster, places n calls from the carrier
// through Kamailio (half to alice's registered phone, half out through
// the trunk to the far end), stops the node and returns the schema's
// table counts.
func callsCost(t *testing.T, n int) map[string]tableStats {
	t.Helper()
	far := startFarEnd(t, t.TempDir())
	c := startCluster(t, clusterOptions{nodes: 1, config: accountYAML(far.addr)})
	newPhone(t, c, "alice", "pw-alice", 800)
	toAlice := newCarrier(t, c.Proxy, deskNumber, 200*time.Millisecond)
	toTrunk := newCarrier(t, c.Proxy, outNumber, 200*time.Millisecond)
	for _, car := range []*carrier{toAlice, toTrunk} {
		car.run(10)
	}
	time.Sleep(time.Duration(n/20) * time.Second)
	var calls []*loadCall
	for _, car := range []*carrier{toAlice, toTrunk} {
		car.halt()
		calls = append(calls, car.snapshot()...)
	}
	for _, lc := range calls {
		if !lc.ok() {
			t.Fatalf("call %d to %s failed: %v", lc.n, lc.caller, lc.err)
		}
	}
	if len(calls) < n*9/10 {
		t.Fatalf("%d calls placed, want about %d", len(calls), n)
	}
	c.stop()
	time.Sleep(500 * time.Millisecond) // the backends' last reports
	s := schemaStats(t, c.db)
	s["(calls placed)"] = tableStats{ins: int64(len(calls))}
	return s
}

// TestDatabaseCostPerCall measures what one call costs the database
// (docs/scaling.md): two runs of a one-node cluster on PostgreSQL, of
// about 40 and 200 calls; the difference of their per-table counts over
// the difference of their calls is the cost of a call, without what a
// node does once at start and stop. The node's heartbeat (one update a
// second of the nodes table) is left out: it is per node, not per call.
// The bounds are today's figures with a margin: a change that makes a
// call cost more rows or lookups fails here and updates the document.
func TestDatabaseCostPerCall(t *testing.T) {
	small := callsCost(t, 40)
	large := callsCost(t, 200)
	calls := float64(large["(calls placed)"].ins - small["(calls placed)"].ins)
	var names []string
	for name := range large {
		if name != "nodes" && name != "(calls placed)" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var writes, reads float64
	var lines []string
	for _, name := range names {
		a, b := small[name], large[name]
		w := float64((b.ins-a.ins)+(b.upd-a.upd)+(b.del-a.del)) / calls
		r := float64(b.scans-a.scans) / calls
		if w == 0 && r == 0 {
			continue
		}
		writes += w
		reads += r
		lines = append(lines, fmt.Sprintf("%-18s ins %.2f  upd %.2f  del %.2f  scans %.2f",
			name, float64(b.ins-a.ins)/calls, float64(b.upd-a.upd)/calls, float64(b.del-a.del)/calls, r))
	}
	t.Logf("per call (%v calls' difference; half to a registered user, half out through the trunk):\n%s\nrows written %.2f, table scans (index or sequential) %.2f",
		calls, strings.Join(lines, "\n"), writes, reads)
	if writes > 6 {
		t.Errorf("a call writes %.2f rows, more than the 6 docs/scaling.md allows for", writes)
	}
	if reads > 8 {
		t.Errorf("a call makes %.2f table scans, more than the 8 docs/scaling.md allows for", reads)
	}
}
