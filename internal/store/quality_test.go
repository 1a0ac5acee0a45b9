package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func qualityOf(mos ...float64) []LegQuality {
	var q []LegQuality
	for i, m := range mos {
		q = append(q, LegQuality{Leg: fmt.Sprintf("leg%d", i), PacketsSent: 500, PacketsReceived: 490, Lost: 10,
			LossRatio: 0.02, Jitter: 4 * time.Millisecond, MOS: m})
	}
	return q
}

// TestCallQuality: a record's quality is written with it, the end's write
// replacing the start's, and read back to the microsecond; the column holds
// the documented JSON (rtt_ms null when unknown); a record without quality
// has none, and no MOS.
func TestCallQuality(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		start := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
		c := testCall("acme", "q-1", start)
		if err := s.InsertCall(ctx, c); err != nil { // at the start: nothing measured yet
			t.Fatal(err)
		}
		got, err := s.GetCall(ctx, "acme", "q-1")
		if err != nil || got.Quality != nil || got.MOS != 0 {
			t.Fatalf("at start: quality %+v MOS %v, %v", got.Quality, got.MOS, err)
		}
		c.Quality = []LegQuality{
			{Leg: "caller", PacketsSent: 1500, PacketsReceived: 1425, Lost: 75, LossRatio: 0.05,
				Jitter: 19_457 * time.Microsecond, RTT: 1_234 * time.Microsecond, RTTKnown: true, MOS: 3.86},
			{Leg: "user:alice", PacketsSent: 1499, PacketsReceived: 1500, Lost: -1, LossRatio: 0,
				Jitter: 312 * time.Microsecond, MOS: 4.40},
			{Leg: "user:bob"}, // nothing received: not rated
		}
		c.MOS = 3.86
		if err := s.InsertCall(ctx, c); err != nil { // at the end
			t.Fatal(err)
		}
		got, err = s.GetCall(ctx, "acme", "q-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("GetCall:\n got %+v\nwant %+v", got.Quality, c.Quality)
		}
		var raw string
		var mos sql.NullFloat64
		if err := s.db.QueryRowContext(ctx, `SELECT quality, mos FROM calls WHERE id = 'q-1'`).Scan(&raw, &mos); err != nil {
			t.Fatal(err)
		}
		var doc []map[string]any
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatalf("quality column %q: %v", raw, err)
		}
		want := []map[string]any{
			{"leg": "caller", "packets_sent": 1500.0, "packets_received": 1425.0, "lost": 75.0, "loss_ratio": 0.05,
				"jitter_ms": 19.457, "rtt_ms": 1.234, "mos": 3.86},
			{"leg": "user:alice", "packets_sent": 1499.0, "packets_received": 1500.0, "lost": -1.0, "loss_ratio": 0.0,
				"jitter_ms": 0.312, "rtt_ms": nil, "mos": 4.4},
			{"leg": "user:bob", "packets_sent": 0.0, "packets_received": 0.0, "lost": 0.0, "loss_ratio": 0.0,
				"jitter_ms": 0.0, "rtt_ms": nil, "mos": 0.0},
		}
		if !reflect.DeepEqual(doc, want) || !mos.Valid || mos.Float64 != 3.86 {
			t.Errorf("columns: quality %s mos %+v", raw, mos)
		}
		// A later write wins, quality and all (the call's writes are
		// start, then end).
		c.Quality, c.MOS = nil, 0
		if err := s.InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := s.db.QueryRowContext(ctx, `SELECT quality, mos FROM calls WHERE id = 'q-1'`).Scan(&raw, &mos); err != nil {
			t.Fatal(err)
		}
		if raw != "[]" || mos.Valid {
			t.Errorf("after a write without quality: %s %+v", raw, mos)
		}
		// A row from before the migration reads as no quality.
		if _, err := s.db.ExecContext(ctx, `INSERT INTO calls (id, account, number, caller, caller_name, start_us, duration_us,
			outcome, answered_by, hangup_cause, tags, trace, recording, voicemail)
			VALUES ('q-old', 'acme', '', '', '', $1, 0, 'routed', '', '', '[]', '[]', '', '')`, start.UnixMicro()); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetCall(ctx, "acme", "q-old"); err != nil || got.Quality != nil || got.MOS != 0 {
			t.Errorf("old row: %+v, %v", got, err)
		}
	})
}

// TestListCallsMOSBelow: mos_below selects the calls whose lowest MOS is
// under it, never those without one, alone and with the other filters, in
// pages, by both plans (the MOS index for few matches, the log for many).
func TestListCallsMOSBelow(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 4, 2, 9, 0, 0, 0, time.UTC)
		var batch []*CallRecord
		add := func(account, id string, minute int, mos float64, mod func(*CallRecord)) {
			c := testCall(account, id, t0.Add(time.Duration(minute)*time.Minute))
			if mos > 0 {
				c.Quality, c.MOS = qualityOf(4.4, mos), mos
			}
			if mod != nil {
				mod(c)
			}
			batch = append(batch, c)
		}
		add("acme", "good", 0, 4.41, nil)
		add("acme", "poor", 1, 3.2, func(c *CallRecord) { c.Number = "+34910000001" })
		add("acme", "edge", 2, 3.5, nil) // not below 3.5
		add("acme", "none", 3, 0, nil)   // unanswered: no MOS
		add("acme", "bad", 4, 1.8, func(c *CallRecord) { c.Tags = []string{"vip"}; c.Caller = "+34600000001" })
		add("acme", "fair", 5, 3.49, func(c *CallRecord) { c.Number = "+34910000001"; c.Caller = "+34600000002" })
		add("acme", "worst", 6, 1, nil)
		add("globex", "g-bad", 7, 1.5, nil)
		if err := s.InsertCalls(ctx, batch); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			f    CallFilter
			want []string
		}{
			{"below 3.5", CallFilter{MOSBelow: 3.5}, []string{"worst", "fair", "bad", "poor"}},
			{"below 3.51", CallFilter{MOSBelow: 3.51}, []string{"worst", "fair", "bad", "edge", "poor"}},
			{"below 4.5", CallFilter{MOSBelow: 4.5}, []string{"worst", "fair", "bad", "edge", "poor", "good"}},
			{"below 1", CallFilter{MOSBelow: 1}, nil},
			{"below 4 and a number", CallFilter{MOSBelow: 4, Number: "+34910000001"}, []string{"fair", "poor"}},
			{"with a tag", CallFilter{MOSBelow: 3.5, Tag: "vip"}, []string{"bad"}},
			{"with a caller", CallFilter{MOSBelow: 3.5, Caller: "+34600000002"}, []string{"fair"}},
			{"with a caller prefix", CallFilter{MOSBelow: 3.5, CallerPrefix: "+34600"}, []string{"fair", "bad"}},
			{"with a time range", CallFilter{MOSBelow: 3.5, From: t0.Add(2 * time.Minute), To: t0.Add(6 * time.Minute)}, []string{"fair", "bad"}},
			{"no filter", CallFilter{}, []string{"worst", "fair", "bad", "none", "edge", "poor", "good"}},
		}
		defer func(n int) { callerPrefixProbe = n }(callerPrefixProbe)
		for _, probe := range []int{callerPrefixProbe, 1} {
			callerPrefixProbe = probe
			for _, tc := range cases {
				tc.f.Account = "acme"
				calls, next, err := s.ListCalls(ctx, tc.f)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				var ids []string
				for _, c := range calls {
					ids = append(ids, c.ID)
				}
				if !reflect.DeepEqual(ids, tc.want) || next != "" {
					t.Errorf("%s (probe %d): got %v (next %q), want %v", tc.name, probe, ids, next, tc.want)
				}
			}
			// Pages of two.
			var ids []string
			for f := (CallFilter{Account: "acme", MOSBelow: 3.5, Limit: 2}); ; {
				calls, next, err := s.ListCalls(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range calls {
					ids = append(ids, c.ID)
					if c.MOS >= 3.5 || len(c.Quality) != 2 || c.Quality[1].MOS != c.MOS {
						t.Errorf("%s: MOS %v quality %+v", c.ID, c.MOS, c.Quality)
					}
				}
				if next == "" {
					break
				}
				f.Cursor = next
			}
			if want := []string{"worst", "fair", "bad", "poor"}; !reflect.DeepEqual(ids, want) {
				t.Errorf("pages (probe %d): %v, want %v", probe, ids, want)
			}
		}
	})
}

// TestMOSIndexPlan: on SQLite, the few-matches plan reads the MOS index
// and the many-matches plan the log in order, never the other.
func TestMOSIndexPlan(t *testing.T) {
	s := openStore(t, "sqlite::memory:")
	ctx := testContext(t)
	plan := func(query string, args ...any) string {
		rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	probe := `SELECT COUNT(*) FROM (SELECT 1 FROM calls c WHERE c.account = $1 AND c.mos < $2 LIMIT 10) p`
	if p := plan(probe, "acme", 3.5); !strings.Contains(p, "calls_account_mos") {
		t.Errorf("probe: %s", p)
	}
	byIndex := `WITH m AS MATERIALIZED (SELECT c.id, c.start_us FROM calls c WHERE c.account = $1 AND c.mos < $2)
		SELECT ` + cCallColumns + ` FROM calls c WHERE c.id IN (SELECT id FROM m ORDER BY start_us DESC, id DESC LIMIT 51)
		ORDER BY c.start_us DESC, c.id DESC`
	if p := plan(byIndex, "acme", 3.5); !strings.Contains(p, "calls_account_mos") {
		t.Errorf("few matches: %s", p)
	}
	byLog := `SELECT ` + cCallColumns + ` FROM calls c WHERE c.account = $1 AND (c.mos + 0) < $2 ORDER BY c.start_us DESC, c.id DESC LIMIT 51`
	if p := plan(byLog, "acme", 3.5); strings.Contains(p, "calls_account_mos") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("the log in order: %s", p)
	}
}
