package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestMissed: which finished calls are missed calls.
func TestMissed(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	base := func(edit func(c *CallRecord)) *CallRecord {
		c := &CallRecord{ID: "c", Account: "acme", Number: "+34910000001", Caller: "+34600000001",
			Start: t0, End: t0.Add(30 * time.Second), Outcome: "routed", Extension: "support",
			HangupCause: "no_answer", Direction: DirectionInbound}
		if edit != nil {
			edit(c)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		rec  *CallRecord
		want bool
	}{
		{"a group nobody answered", base(nil), true},
		{"the caller hung up while it rang", base(func(c *CallRecord) { c.HangupCause = "caller_cancel" }), true},
		{"a user reached directly, unanswered", base(func(c *CallRecord) { c.Extension = "user:alice" }), true},
		{"left the queue", base(func(c *CallRecord) { c.HangupCause = "abandoned"; c.Answer = t0.Add(time.Second) }), true},
		{"another member of a multi-ring group answered", base(func(c *CallRecord) { c.AnsweredBy = "user:bob" }), false},
		{"answered, then transferred", base(func(c *CallRecord) { c.AnsweredBy = "user:alice"; c.HangupCause = "transferred" }), false},
		{"picked up from a park orbit", base(func(c *CallRecord) { c.AnsweredBy = "orbit:701" }), false},
		{"a rule rejected it", base(func(c *CallRecord) { c.Outcome = "rejected"; c.Extension = "" }), false},
		{"a rule rejected it (extension named)", base(func(c *CallRecord) { c.Outcome = "rejected" }), false},
		{"the captcha failed", base(func(c *CallRecord) { c.Outcome = "captcha_failed"; c.Extension = "" }), false},
		{"unknown number", base(func(c *CallRecord) { c.Outcome = "not_found"; c.Extension = "" }), false},
		{"voicemail left", base(func(c *CallRecord) { c.Voicemail = "vm/c.wav"; c.VoicemailUser = "alice" }), false},
		{"voicemail greeting, no message left", base(func(c *CallRecord) { c.HangupCause = "caller_bye" }), true},
		{"forwarded to an external number", base(func(c *CallRecord) { c.Outcome = "forwarded"; c.Extension = "" }), false},
		{"forwarded to an extension, unanswered", base(func(c *CallRecord) { c.Outcome = "forwarded" }), true},
		{"an IVR that reached no extension", base(func(c *CallRecord) { c.Extension = "" }), false},
		{"still in progress", base(func(c *CallRecord) { c.End = time.Time{} }), false},
		{"an internal call nobody answered", base(func(c *CallRecord) { c.Direction = DirectionInternal; c.Caller = "101" }), true},
	} {
		if got := tc.rec.Missed(); got != tc.want {
			t.Errorf("%s: Missed() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMissedLedger: missed calls enter the ledger as their records are
// written; a later answered call between the same two parties — either
// direction — or the owner resolves one; the list is newest first, filtered
// and paginated.
func TestMissedLedger(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		const n1, n2, c1, c2 = "+34910000001", "+34910000002", "+34600000001", "+34600000002"
		put := func(id, number, caller, ext, answeredBy, dir string, start time.Duration) {
			t.Helper()
			c := &CallRecord{ID: id, Account: "acme", Number: number, Caller: caller, CallerName: "N " + id,
				Start: t0.Add(start), End: t0.Add(start + 20*time.Second), Outcome: "routed",
				Extension: ext, AnsweredBy: answeredBy, Direction: dir}
			if answeredBy != "" {
				c.Answer = t0.Add(start + 5*time.Second)
			}
			if dir == DirectionOutbound {
				c.Extension = ""
			}
			if err := s.InsertCall(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		in := DirectionInbound
		put("m1", n1, c1, "support", "", in, 0)
		put("m2", n2, c1, "sales", "", in, time.Minute)
		put("m3", n1, c2, "user:alice", "", in, 2*time.Minute)
		put("m4", n1, "anonymous", "support", "", in, 3*time.Minute)
		put("m2", n2, c1, "sales", "", in, time.Minute) // written twice: one entry
		// An answered call of c1 to n2 that started before m2 does not resolve it.
		put("early", n2, c1, "sales", "user:bob", in, 30*time.Second)
		// c1 calls n1 again and is answered: m1 only (m2 was to n2).
		put("back1", n1, c1, "support", "user:bob", in, 4*time.Minute)
		// The business calls c2 back: m3, whichever number c2 had called.
		put("out-no", c2, "101", "", "", DirectionOutbound, 5*time.Minute) // unanswered: nothing
		put("out2", c2, "101", "", "+34600000002", DirectionOutbound, 6*time.Minute)
		// A withheld caller's answered call resolves no withheld entry.
		put("anon", n1, "anonymous", "support", "user:bob", in, 7*time.Minute)

		all, next, err := s.Missed(ctx, MissedFilter{Account: "acme"})
		if err != nil || next != "" {
			t.Fatalf("Missed: %v, next %q", err, next)
		}
		type entry struct{ id, by string }
		got := func(l []MissedCall) []entry {
			var out []entry
			for _, m := range l {
				out = append(out, entry{m.CallID, m.ResolvedBy})
				if (m.ResolvedBy == "") != m.Resolved.IsZero() {
					t.Errorf("%s: resolved %v by %q", m.CallID, m.Resolved, m.ResolvedBy)
				}
			}
			return out
		}
		want := []entry{{"m4", ""}, {"m3", "call:out2"}, {"m2", ""}, {"m1", "call:back1"}}
		if g := got(all); !slices.Equal(g, want) {
			t.Fatalf("ledger = %v, want %v", g, want)
		}
		if m := all[2]; m.Number != n2 || m.Extension != "sales" || m.Caller != c1 || m.CallerName != "N m2" || !m.Start.Equal(t0.Add(time.Minute)) {
			t.Errorf("m2 = %+v", m)
		}
		if !all[3].Resolved.Equal(t0.Add(4*time.Minute + 20*time.Second)) {
			t.Errorf("m1 resolved at %v, want the answered call's end", all[3].Resolved)
		}

		// The owner marks m2 done; again is no change; unknown ids are not found.
		at := t0.Add(time.Hour)
		if err := s.ResolveMissed(ctx, "acme", "m2", at); err != nil {
			t.Fatal(err)
		}
		if err := s.ResolveMissed(ctx, "acme", "m2", at.Add(time.Hour)); err != nil {
			t.Fatalf("resolving twice: %v", err)
		}
		for _, id := range []struct{ acct, id string }{{"acme", "back1"}, {"acme", "nope"}, {"other", "m4"}} {
			if err := s.ResolveMissed(ctx, id.acct, id.id, at); !errors.Is(err, ErrNotFound) {
				t.Errorf("ResolveMissed(%s, %s) = %v, want ErrNotFound", id.acct, id.id, err)
			}
		}
		open, resolved := true, false
		for _, tc := range []struct {
			f    MissedFilter
			want []entry
		}{
			{MissedFilter{Open: &open}, []entry{{"m4", ""}}},
			{MissedFilter{Open: &resolved}, []entry{{"m3", "call:out2"}, {"m2", "owner"}, {"m1", "call:back1"}}},
			{MissedFilter{Number: n2}, []entry{{"m2", "owner"}}},
			{MissedFilter{Extension: "support"}, []entry{{"m4", ""}, {"m1", "call:back1"}}},
			{MissedFilter{Extension: "user:alice", Number: n1}, []entry{{"m3", "call:out2"}}},
		} {
			tc.f.Account = "acme"
			l, _, err := s.Missed(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := got(l); !slices.Equal(g, tc.want) {
				t.Errorf("Missed(%+v) = %v, want %v", tc.f, g, tc.want)
			}
		}
		m2, _, _ := s.Missed(ctx, MissedFilter{Account: "acme", Number: n2})
		if !m2[0].Resolved.Equal(at) {
			t.Errorf("m2 resolved at %v, want the first mark's %v", m2[0].Resolved, at)
		}
		// Pages of one.
		var paged []MissedCall
		f := MissedFilter{Account: "acme", Limit: 1}
		for range 10 {
			l, next, err := s.Missed(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, l...)
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if len(paged) != 4 || paged[0].CallID != "m4" || paged[3].CallID != "m1" {
			t.Errorf("paged = %v", got(paged))
		}
		if _, _, err := s.Missed(ctx, MissedFilter{Account: "acme", Cursor: "!!"}); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("bad cursor: %v", err)
		}
		if l, _, _ := s.Missed(ctx, MissedFilter{Account: "other"}); len(l) != 0 {
			t.Errorf("another account sees %d entries", len(l))
		}
	})
}
