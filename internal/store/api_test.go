package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// Tests of what the REST API needs from the store: configuration history
// and conditional writes, named read-only tokens, the activity filters,
// voicemail per user and EachCall. Each runs on SQLite and PostgreSQL.

func TestConfigHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		if _, err := s.ConfigHistory(ctx, "acme"); !errors.Is(err, ErrNotFound) {
			t.Errorf("history of an unknown account: %v, want ErrNotFound", err)
		}
		before := time.Now().Add(-time.Second)
		if v, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil || v != 1 {
			t.Fatalf("ApplyConfig: %d, %v", v, err)
		}
		second := loadAcme(t)
		second.Users["alice"] = config.User{Extension: "101", Password: "n3w"}
		if v, err := s.PutConfig(ctx, second, Change{Author: "ops-token"}); err != nil || v != 2 {
			t.Fatalf("PutConfig: %d, %v", v, err)
		}
		if v, err := s.UpdateConfig(ctx, "acme", func(d *config.Document) error { d.Domain = "acme.test"; return nil }); err != nil || v != 3 {
			t.Fatalf("UpdateConfig: %d, %v", v, err)
		}
		var sawVersion int64
		if v, err := s.EditConfig(ctx, "acme", Change{Author: "web", IfVersion: 3}, func(d *config.Document, version int64) error {
			sawVersion = version
			delete(d.Users, "bob")
			return nil
		}); err != nil || v != 4 || sawVersion != 3 {
			t.Fatalf("EditConfig: %d, %v (edit saw version %d)", v, err, sawVersion)
		}
		if v, err := s.PutConfig(ctx, loadAcme(t), Change{IfVersion: 4}); err != nil || v != 5 {
			t.Fatalf("PutConfig IfVersion 4: %d, %v", v, err)
		}
		// Another account's history is its own.
		if _, err := s.PutConfig(ctx, &config.Document{Account: "globex"}, Change{Author: "admin"}); err != nil {
			t.Fatal(err)
		}

		hist, err := s.ConfigHistory(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hist {
			got = append(got, fmt.Sprintf("%s %d %s", h.Account, h.Version, h.Author))
			if h.Created.Before(before) || h.Created.After(time.Now()) || h.Created.Location() != time.UTC {
				t.Errorf("version %d created %v", h.Version, h.Created)
			}
		}
		want := []string{"acme 5 cli", "acme 4 web", "acme 3 api", "acme 2 ops-token", "acme 1 cli"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("history:\n got %q\nwant %q", got, want)
		}
		if g, _ := s.ConfigHistory(ctx, "globex"); len(g) != 1 || g[0].Author != "admin" {
			t.Errorf("globex history %+v", g)
		}

		// Old versions come back whole, secrets included.
		doc, v, err := s.ConfigAt(ctx, "acme", 2)
		if err != nil {
			t.Fatal(err)
		}
		if v.Version != 2 || v.Author != "ops-token" || v.Account != "acme" || v != hist[3] {
			t.Errorf("ConfigAt version %+v, want %+v", v, hist[3])
		}
		if doc.Users["alice"].Password != "n3w" || doc.Domain != loadAcme(t).Domain {
			t.Errorf("version 2: alice %q, domain %q", doc.Users["alice"].Password, doc.Domain)
		}
		doc, _, err = s.ConfigAt(ctx, "acme", 1)
		if err != nil || !reflect.DeepEqual(doc, loadAcme(t)) {
			t.Errorf("version 1 differs from what was applied (%v)", err)
		}
		doc, _, _ = s.ConfigAt(ctx, "acme", 4)
		if _, ok := doc.Users["bob"]; ok || doc.Domain != "acme.test" {
			t.Errorf("version 4 is not the edited one")
		}
		for _, bad := range []struct {
			account string
			version int64
		}{{"acme", 6}, {"acme", 0}, {"nobody", 1}, {"globex", 2}} {
			if _, _, err := s.ConfigAt(ctx, bad.account, bad.version); !errors.Is(err, ErrNotFound) {
				t.Errorf("ConfigAt(%s, %d): %v, want ErrNotFound", bad.account, bad.version, err)
			}
		}
		// The latest is still what LoadConfig and the watchers see.
		if _, lv, _ := s.LoadConfig(ctx, "acme"); lv != 5 {
			t.Errorf("LoadConfig version %d, want 5", lv)
		}
		if vs, _ := s.ConfigVersions(ctx); !reflect.DeepEqual(vs, map[string]int64{"acme": 5, "globex": 1}) {
			t.Errorf("ConfigVersions %v", vs)
		}
	})
}

func TestConfigIfVersion(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		// No stored version matches any IfVersion.
		if _, err := s.PutConfig(ctx, loadAcme(t), Change{IfVersion: 1}); !errors.Is(err, ErrVersionMismatch) {
			t.Errorf("PutConfig IfVersion 1 of a new account: %v, want ErrVersionMismatch", err)
		}
		if _, err := s.ConfigHistory(ctx, "acme"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a refused write was stored: %v", err)
		}
		if _, err := s.EditConfig(ctx, "acme", Change{IfVersion: 1}, func(*config.Document, int64) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("EditConfig of an unknown account: %v, want ErrNotFound", err)
		}
		if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateConfig(ctx, "acme", func(d *config.Document) error { d.Domain = "v2.test"; return nil }); err != nil {
			t.Fatal(err)
		}

		// Stale versions: refused, nothing written, the edit not even run.
		stale := loadAcme(t)
		stale.Domain = "stale.test"
		_, err := s.PutConfig(ctx, stale, Change{Author: "web", IfVersion: 1})
		if !errors.Is(err, ErrVersionMismatch) {
			t.Fatalf("stale PutConfig: %v, want ErrVersionMismatch", err)
		}
		t.Logf("stale PutConfig: %v", err)
		ran := false
		_, err = s.EditConfig(ctx, "acme", Change{IfVersion: 3}, func(d *config.Document, _ int64) error {
			ran = true
			return nil
		})
		if !errors.Is(err, ErrVersionMismatch) || ran {
			t.Fatalf("EditConfig IfVersion 3 (ahead): %v, edit ran %v", err, ran)
		}
		doc, v, _ := s.LoadConfig(ctx, "acme")
		if v != 2 || doc.Domain != "v2.test" {
			t.Errorf("after refused writes: version %d, domain %q", v, doc.Domain)
		}
		if h, _ := s.ConfigHistory(ctx, "acme"); len(h) != 2 {
			t.Errorf("history has %d versions, want 2", len(h))
		}

		// Concurrent edits from version 2: exactly one wins, from several
		// stores as from several nodes.
		const editors = 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []int
			errs []error
		)
		for i := range editors {
			wg.Go(func() {
				v, err := s.EditConfig(ctx, "acme", Change{Author: fmt.Sprint("editor-", i), IfVersion: 2}, func(d *config.Document, _ int64) error {
					d.Users[fmt.Sprint("u", i)] = config.User{Extension: fmt.Sprint(600 + i)}
					time.Sleep(10 * time.Millisecond) // widen the window
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins = append(wins, i)
					if v != 3 {
						t.Errorf("winner got version %d, want 3", v)
					}
				} else {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("%d edits won (%v), want 1", len(wins), wins)
		}
		for _, err := range errs {
			if !errors.Is(err, ErrVersionMismatch) {
				t.Errorf("a losing edit failed with %v, want ErrVersionMismatch", err)
			}
		}
		doc, v, _ = s.LoadConfig(ctx, "acme")
		for i := range editors {
			if _, ok := doc.Users[fmt.Sprint("u", i)]; ok != (i == wins[0]) {
				t.Errorf("user u%d present %v; the winner was %d", i, ok, wins[0])
			}
		}
		h, _ := s.ConfigHistory(ctx, "acme")
		if v != 3 || len(h) != 3 || h[0].Author != fmt.Sprint("editor-", wins[0]) {
			t.Errorf("after the race: version %d, history %+v", v, h)
		}

		// PutConfig races the same way.
		wins = nil
		for i := range editors {
			wg.Go(func() {
				d := loadAcme(t)
				d.Domain = fmt.Sprintf("put%d.test", i)
				_, err := s.PutConfig(ctx, d, Change{IfVersion: 3})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins = append(wins, i)
				} else if !errors.Is(err, ErrVersionMismatch) {
					t.Errorf("losing PutConfig: %v", err)
				}
			})
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("%d PutConfig won, want 1", len(wins))
		}
		if doc, v, _ := s.LoadConfig(ctx, "acme"); v != 4 || doc.Domain != fmt.Sprintf("put%d.test", wins[0]) {
			t.Errorf("after the PutConfig race: version %d, domain %q", v, doc.Domain)
		}
	})
}

// TestEditConfigKeepsRedactedSecrets: an edit that writes config.Redacted
// (an API client echoing what it was shown) keeps the stored secret.
func TestEditConfigKeepsRedactedSecrets(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EditConfig(ctx, "acme", Change{}, func(d *config.Document, _ int64) error {
			u := d.Users["alice"]
			u.Password = config.Redacted
			u.Extension = "199"
			d.Users["alice"] = u
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		doc, _, _ := s.LoadConfig(ctx, "acme")
		if a := doc.Users["alice"]; a.Password != "s3cret" || a.Extension != "199" {
			t.Errorf("alice after the edit: %+v", a)
		}
		_, err := s.EditConfig(ctx, "acme", Change{}, func(d *config.Document, _ int64) error {
			d.Users["newbie"] = config.User{Extension: "150", Password: config.Redacted}
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "users.newbie.password") {
			t.Errorf("edit adding a redacted secret: %v", err)
		}
	})
}

// TestMigrationBackfillsConfigHistory builds a database at schema version
// 2 with a configuration, then opens it (which migrates to the latest): the
// history holds the version that was current, by "cli".
func TestMigrationBackfillsConfigHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := testContext(t)
		ms, err := loadMigrations()
		if err != nil {
			t.Fatal(err)
		}
		var old *Store
		if strings.HasPrefix(url, "sqlite:") {
			old, err = openSQLite(strings.TrimPrefix(url, "sqlite:"))
		} else {
			old, err = openPostgres(url)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := old.applyMigrations(ctx, ms[:2]); err != nil {
			t.Fatal(err)
		}
		body, err := jsonDocument(loadAcme(t))
		if err != nil {
			t.Fatal(err)
		}
		updated := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO account_configs (account, version, document, updated_us) VALUES ($1, $2, $3, $4)`,
				[]any{"acme", 7, body, updated.UnixMicro()}},
			{`INSERT INTO api_tokens (token_hash, account, created_us) VALUES ($1, $2, $3)`,
				[]any{hashToken("old-token"), "acme", updated.UnixMicro()}},
			{`INSERT INTO calls (id, account, number, caller, caller_name, start_us, duration_us, outcome,
				answered_by, hangup_cause, tags, trace, recording, voicemail)
				VALUES ('c1', 'acme', '+34910000000', '+34600000001', '', $1, 0, 'routed', '', '', '["vip"]', '[]', '', 'vm/c1.wav')`,
				[]any{updated.UnixMicro()}},
			{`INSERT INTO call_tags (call_id, tag) VALUES ('c1', 'vip')`, nil},
		} {
			if _, err := old.db.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := old.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("schema version %d, %v; want 2", n, err)
		}
		old.Close()

		s := openStore(t, url)
		h, err := s.ConfigHistory(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if want := []ConfigVersion{{Account: "acme", Version: 7, Author: "cli", Created: updated}}; !reflect.DeepEqual(h, want) {
			t.Errorf("backfilled history %+v, want %+v", h, want)
		}
		doc, _, err := s.ConfigAt(ctx, "acme", 7)
		if err != nil || !reflect.DeepEqual(doc, loadAcme(t)) {
			t.Errorf("backfilled version differs (%v)", err)
		}
		if v, err := s.UpdateConfig(ctx, "acme", func(*config.Document) error { return nil }); err != nil || v != 8 {
			t.Errorf("edit after the migration: %d, %v", v, err)
		}
		// Existing tokens and calls carry the new columns' defaults.
		tok, err := s.Authenticate(ctx, "old-token")
		if err != nil || tok.Name != "" || tok.ReadOnly || tok.Account != "acme" || tok.ID != hashToken("old-token")[:12] {
			t.Errorf("old token: %+v, %v", tok, err)
		}
		c, err := s.GetCall(ctx, "acme", "c1")
		if err != nil || c.VoicemailUser != "" || c.VoicemailHeard {
			t.Errorf("old call: %+v, %v", c, err)
		}
		// call_tags rows get their call's account and start.
		calls, _, err := s.ListCalls(ctx, CallFilter{Account: "acme", Tag: "vip", From: updated, To: updated.Add(time.Second)})
		if err != nil || len(calls) != 1 || calls[0].ID != "c1" {
			t.Errorf("old call by tag: %+v, %v", calls, err)
		}
		if calls, _, _ := s.ListCalls(ctx, CallFilter{Account: "globex", Tag: "vip"}); len(calls) != 0 {
			t.Errorf("old call's tag seen from globex")
		}
	})
}

func TestTokensNamedReadOnly(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		before := time.Now().Add(-time.Second)
		rwSecret, rw, err := s.NewToken(ctx, "acme", "deploy", false)
		if err != nil {
			t.Fatal(err)
		}
		roSecret, ro, err := s.NewToken(ctx, "acme", "wallboard", true)
		if err != nil {
			t.Fatal(err)
		}
		adminSecret, admin, err := s.NewToken(ctx, "", "root", false)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := s.CreateToken(ctx, "globex")
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{rwSecret, roSecret, adminSecret, plain}
		if rw.ID != hashToken(rwSecret)[:12] || len(rw.ID) != 12 || rw.Account != "acme" || rw.Name != "deploy" || rw.ReadOnly {
			t.Errorf("NewToken rw: %+v", rw)
		}
		if !ro.ReadOnly || ro.Name != "wallboard" || admin.Account != "" {
			t.Errorf("NewToken ro %+v, admin %+v", ro, admin)
		}
		if rw.Created.Before(before) || rw.Created.After(time.Now()) || rw.Created.Location() != time.UTC {
			t.Errorf("created %v", rw.Created)
		}
		for _, sec := range secrets {
			if strings.Contains(sec, rw.ID) || strings.Contains(sec, ro.ID) {
				t.Errorf("the public id is part of a secret")
			}
		}

		for _, c := range []struct {
			secret string
			want   Token
		}{{rwSecret, rw}, {roSecret, ro}, {adminSecret, admin}} {
			got, err := s.Authenticate(ctx, c.secret)
			if err != nil || got != c.want {
				t.Errorf("Authenticate = %+v, %v; want %+v", got, err, c.want)
			}
		}
		if a, isAdmin, err := s.CheckToken(ctx, roSecret); err != nil || a != "acme" || isAdmin {
			t.Errorf("CheckToken(read-only) = %q, %v, %v", a, isAdmin, err)
		}
		if a, isAdmin, err := s.CheckToken(ctx, adminSecret); err != nil || a != "" || !isAdmin {
			t.Errorf("CheckToken(admin) = %q, %v, %v", a, isAdmin, err)
		}
		globex, err := s.Authenticate(ctx, plain)
		if err != nil || globex.Name != "" || globex.ReadOnly || globex.Account != "globex" {
			t.Errorf("CreateToken's token: %+v, %v", globex, err)
		}
		for _, bad := range []string{"", "nope", rwSecret[1:], rw.ID, hashToken(rwSecret)} {
			if _, err := s.Authenticate(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("Authenticate(%q): %v, want ErrNotFound", bad, err)
			}
		}

		// Lists, oldest first.
		ids := func(ts []Token) []string {
			var out []string
			for _, t := range ts {
				out = append(out, t.Name+"@"+t.Account)
			}
			return out
		}
		all, err := s.Tokens(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(all), []string{"deploy@acme", "wallboard@acme", "root@", "@globex"}; !sameSet(got, want) {
			t.Errorf("Tokens(\"\") = %v, want %v", got, want)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Created.Before(all[i-1].Created) {
				t.Errorf("Tokens not oldest first: %+v", all)
			}
		}
		acme, err := s.Tokens(ctx, "acme")
		if err != nil || len(acme) != 2 || !(acme[0] == rw && acme[1] == ro || acme[0] == ro && acme[1] == rw && ro.Created.Equal(rw.Created)) {
			t.Errorf("Tokens(acme) = %+v, %v; want %+v, %+v", acme, err, rw, ro)
		}
		if none, err := s.Tokens(ctx, "initech"); err != nil || len(none) != 0 {
			t.Errorf("Tokens(initech) = %+v, %v", none, err)
		}

		// Revoking by id: the secret stops working, the others keep.
		if err := s.RevokeToken(ctx, ro.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, roSecret); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoked token: %v, want ErrNotFound", err)
		}
		if _, _, err := s.CheckToken(ctx, roSecret); !errors.Is(err, ErrNotFound) {
			t.Errorf("CheckToken of a revoked token: %v", err)
		}
		if _, err := s.Authenticate(ctx, rwSecret); err != nil {
			t.Errorf("another token was revoked too: %v", err)
		}
		for _, id := range []string{ro.ID, "", "nope", rw.ID[:11], hashToken(rwSecret), strings.ToUpper(rw.ID) + "x"} {
			if err := s.RevokeToken(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("RevokeToken(%q): %v, want ErrNotFound", id, err)
			}
		}
		if acme, _ := s.Tokens(ctx, "acme"); len(acme) != 1 || acme[0] != rw {
			t.Errorf("Tokens(acme) after revoking: %+v", acme)
		}

		// Only the hash is stored: no column of any row holds a secret.
		rows, err := s.db.QueryContext(ctx, `SELECT * FROM api_tokens`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			n++
			for i, v := range vals {
				text := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					text = string(b)
				}
				for _, sec := range secrets {
					if strings.Contains(text, sec) {
						t.Errorf("column %s holds a token secret", cols[i])
					}
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("%d token rows, want 3", n)
		}
		t.Logf("api_tokens columns: %v", cols)
	})
}

// sameSet reports whether a and b hold the same strings, in any order
// (tokens made within the same microsecond have no order among them).
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestListCallsAPIFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		add := func(account, id string, minute int, mod func(*CallRecord)) {
			c := testCall(account, id, t0.Add(time.Duration(minute)*time.Minute))
			c.Recording = ""
			if mod != nil {
				mod(c)
			}
			if err := s.InsertCall(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		add("acme", "a", 0, func(c *CallRecord) { c.Caller = "+34600111222"; c.AnsweredBy = "user:alice"; c.Recording = "rec/a.wav" })
		add("acme", "b", 1, func(c *CallRecord) { c.Caller = "+34601000000"; c.AnsweredBy = "user:bob" })
		add("acme", "c", 2, func(c *CallRecord) {
			c.Caller = "+34600999999"
			c.Outcome = "routed"
			c.Voicemail, c.VoicemailUser = "vm/alice/c.wav", "alice"
		})
		add("acme", "d", 3, func(c *CallRecord) {
			c.Caller = "+3460"
			c.Outcome = "routed"
			c.Voicemail, c.VoicemailUser = "vm/bob/d.wav", "bob"
			c.Recording = "rec/d.wav"
		})
		add("acme", "e", 4, func(c *CallRecord) { c.Caller = "+346"; c.AnsweredBy = "user:alice" })
		// LIKE metacharacters and other odd callers.
		add("acme", "pct", 5, func(c *CallRecord) { c.Caller = "50%off" })
		add("acme", "pct2", 6, func(c *CallRecord) { c.Caller = "50%" })
		add("acme", "five0x", 7, func(c *CallRecord) { c.Caller = "500ff" })
		add("acme", "under", 8, func(c *CallRecord) { c.Caller = "a_b" })
		add("acme", "axb", 9, func(c *CallRecord) { c.Caller = "axb" })
		add("acme", "back", 10, func(c *CallRecord) { c.Caller = `a\_b` })
		add("acme", "upper", 11, func(c *CallRecord) { c.Caller = "ANONYMOUS" })
		add("acme", "anon", 12, func(c *CallRecord) { c.Caller = "anonymous" })
		add("acme", "max", 13, func(c *CallRecord) { c.Caller = "z\U0010FFFF!" })
		add("acme", "utf", 14, func(c *CallRecord) { c.Caller = "ñu" })
		add("acme", "utf2", 15, func(c *CallRecord) { c.Caller = "ño" })
		// Another account's calls never show.
		add("globex", "g", 16, func(c *CallRecord) {
			c.Caller = "+34600111222"
			c.AnsweredBy = "user:alice"
			c.Voicemail, c.VoicemailUser = "vm/alice/g.wav", "alice"
			c.Recording = "rec/g.wav"
		})

		yes, no := true, false
		cases := []struct {
			name string
			f    CallFilter
			want []string
		}{
			{"prefix +3460", CallFilter{CallerPrefix: "+3460"}, []string{"d", "c", "b", "a"}},
			{"prefix +34600", CallFilter{CallerPrefix: "+34600"}, []string{"c", "a"}},
			{"prefix is the whole caller", CallFilter{CallerPrefix: "+346"}, []string{"e", "d", "c", "b", "a"}},
			{"prefix longer than callers", CallFilter{CallerPrefix: "+346001112223"}, nil},
			{"prefix % literal", CallFilter{CallerPrefix: "50%"}, []string{"pct2", "pct"}},
			{"prefix % not a wildcard", CallFilter{CallerPrefix: "5%"}, nil},
			{"prefix _ literal", CallFilter{CallerPrefix: "a_"}, []string{"under"}},
			{"prefix _ not a wildcard", CallFilter{CallerPrefix: "a_b"}, []string{"under"}},
			{"prefix backslash literal", CallFilter{CallerPrefix: `a\`}, []string{"back"}},
			{"prefix is case-sensitive", CallFilter{CallerPrefix: "anon"}, []string{"anon"}},
			{"prefix at the last code point", CallFilter{CallerPrefix: "z\U0010FFFF"}, []string{"max"}},
			{"prefix non-ASCII", CallFilter{CallerPrefix: "ñ"}, []string{"utf2", "utf"}},
			{"prefix non-ASCII two", CallFilter{CallerPrefix: "ñu"}, []string{"utf"}},
			{"exact caller and prefix", CallFilter{Caller: "+34600111222", CallerPrefix: "+3460"}, []string{"a"}},
			{"answered by", CallFilter{AnsweredBy: "user:alice"}, []string{"e", "a"}},
			{"answered by is exact", CallFilter{AnsweredBy: "user:ali"}, nil},
			{"has recording", CallFilter{HasRecording: &yes}, []string{"d", "a"}},
			{"has voicemail", CallFilter{HasVoicemail: &yes}, []string{"d", "c"}},
			{"voicemail user", CallFilter{VoicemailUser: "alice"}, []string{"c"}},
			{"voicemail user bob", CallFilter{VoicemailUser: "bob"}, []string{"d"}},
			{"voicemail user none", CallFilter{VoicemailUser: "carol"}, nil},
			{"prefix and answered by", CallFilter{CallerPrefix: "+3460", AnsweredBy: "user:alice"}, []string{"a"}},
			{"prefix, voicemail, recording", CallFilter{CallerPrefix: "+346", HasVoicemail: &yes, HasRecording: &yes}, []string{"d"}},
			{"prefix, no voicemail, no recording", CallFilter{CallerPrefix: "+346", HasVoicemail: &no, HasRecording: &no}, []string{"e", "b"}},
			{"outcome and voicemail", CallFilter{Outcome: "routed", HasVoicemail: &yes}, []string{"d", "c"}},
			{"tag, prefix, time", CallFilter{Tag: "spain", CallerPrefix: "+34", From: t0.Add(time.Minute), To: t0.Add(4 * time.Minute)}, []string{"d", "c", "b"}},
			{"number and answered by", CallFilter{Number: "+34910000000", AnsweredBy: "user:bob"}, []string{"b"}},
		}
		all := []string{"utf2", "utf", "max", "anon", "upper", "back", "axb", "under", "five0x", "pct2", "pct", "e", "d", "c", "b", "a"}
		var noRec, noVM []string
		for _, id := range all {
			if id != "a" && id != "d" {
				noRec = append(noRec, id)
			}
			if id != "c" && id != "d" {
				noVM = append(noVM, id)
			}
		}
		cases = append(cases,
			struct {
				name string
				f    CallFilter
				want []string
			}{"no recording", CallFilter{HasRecording: &no}, noRec},
			struct {
				name string
				f    CallFilter
				want []string
			}{"no voicemail", CallFilter{HasVoicemail: &no}, noVM})
		// Both plans of a caller prefix: by the caller index (few
		// matches) and by the log with a filter (many).
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
			// Pages of two across both plans.
			var ids []string
			for f := (CallFilter{Account: "acme", CallerPrefix: "+346", Limit: 2}); ; {
				calls, next, err := s.ListCalls(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range calls {
					ids = append(ids, c.ID)
				}
				if next == "" {
					break
				}
				f.Cursor = next
			}
			if want := []string{"e", "d", "c", "b", "a"}; !reflect.DeepEqual(ids, want) {
				t.Errorf("prefix pages (probe %d): %v, want %v", probe, ids, want)
			}
		}
		if _, _, err := s.ListCalls(ctx, CallFilter{Account: "acme", CallerPrefix: "\xff"}); err == nil {
			t.Error("a prefix that is not UTF-8 was accepted")
		}
		// The voicemail user is written and read back.
		c, err := s.GetCall(ctx, "acme", "c")
		if err != nil || c.VoicemailUser != "alice" || c.Voicemail != "vm/alice/c.wav" || c.VoicemailHeard {
			t.Errorf("GetCall(c) = %+v, %v", c, err)
		}
	})
}

func TestPrefixRange(t *testing.T) {
	for _, c := range []struct{ prefix, lo, hi string }{
		{"+3460", "+3460", "+3461"},
		{"a", "a", "b"},
		{"50%", "50%", "50&"},
		{"a\u007f", "a\u007f", "a\u0080"},
		{"\ud7ff", "\ud7ff", "\ue000"},
		{"z\U0010FFFF", "z\U0010FFFF", "{"},
		{"\U0010FFFF\U0010FFFF", "\U0010FFFF\U0010FFFF", ""},
	} {
		lo, hi, err := prefixRange(c.prefix)
		if err != nil || lo != c.lo || hi != c.hi {
			t.Errorf("prefixRange(%q) = %q, %q, %v; want %q, %q", c.prefix, lo, hi, err, c.lo, c.hi)
		}
	}
}

func TestVoicemailHeard(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		// Written at start, without a voicemail yet.
		c := testCall("acme", "vm-1", start)
		c.Outcome, c.Recording = "routed", ""
		if err := s.InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := s.SetVoicemailHeard(ctx, "acme", "vm-1", true); !errors.Is(err, ErrNotFound) {
			t.Errorf("heard on a call without a voicemail: %v, want ErrNotFound", err)
		}
		// Written again at the end, with the voicemail.
		c.End = start.Add(time.Minute)
		c.Voicemail, c.VoicemailUser = "voicemail/alice/vm-1.wav", "alice"
		if err := s.InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := s.SetVoicemailHeard(ctx, "acme", "vm-1", true); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetCall(ctx, "acme", "vm-1"); !got.VoicemailHeard {
			t.Error("heard not set")
		}
		// A later write of the call's record (VoicemailHeard false) keeps it.
		c.HangupCause = "caller hung up"
		if err := s.InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		w := s.NewCallWriter(CallWriterOptions{})
		if err := w.InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		w.Close()
		got, err := s.GetCall(ctx, "acme", "vm-1")
		if err != nil || !got.VoicemailHeard || got.HangupCause != "caller hung up" || got.VoicemailUser != "alice" {
			t.Errorf("after re-inserts: %+v, %v", got, err)
		}
		// Marking it unheard again works; another account or call is not found.
		if err := s.SetVoicemailHeard(ctx, "acme", "vm-1", false); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetCall(ctx, "acme", "vm-1"); got.VoicemailHeard {
			t.Error("still heard")
		}
		for _, bad := range [][2]string{{"globex", "vm-1"}, {"acme", "nope"}} {
			if err := s.SetVoicemailHeard(ctx, bad[0], bad[1], true); !errors.Is(err, ErrNotFound) {
				t.Errorf("SetVoicemailHeard(%s, %s): %v, want ErrNotFound", bad[0], bad[1], err)
			}
		}
		// A record that arrives heard (an import) is stored heard.
		d := testCall("acme", "vm-2", start.Add(time.Hour))
		d.Voicemail, d.VoicemailUser, d.VoicemailHeard = "voicemail/bob/vm-2.wav", "bob", true
		if err := s.InsertCall(ctx, d); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetCall(ctx, "acme", "vm-2"); err != nil || !reflect.DeepEqual(got, d) {
			t.Errorf("GetCall(vm-2):\n got %+v\nwant %+v", got, d)
		}
	})
}

func TestEachCall(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		const n = 2*eachCallPage + 17
		var batch []*CallRecord
		var want, wantMobile []string
		for i := range n {
			// Pairs share a start, so that pages break ties by id.
			c := testCall("acme", fmt.Sprintf("call-%05d", i), t0.Add(time.Duration(i/2)*time.Second))
			c.Trace = nil
			if i%3 == 0 {
				c.Caller = "+34600000000"
				wantMobile = append(wantMobile, c.ID)
			}
			batch = append(batch, c)
			want = append(want, c.ID)
		}
		if err := s.InsertCalls(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertCall(ctx, testCall("globex", "other", t0)); err != nil {
			t.Fatal(err)
		}
		reverse := func(ids []string) []string {
			out := make([]string, len(ids))
			for i, id := range ids {
				out[len(ids)-1-i] = id
			}
			return out
		}
		collect := func(f CallFilter) []string {
			t.Helper()
			var got []string
			err := s.EachCall(ctx, f, func(c *CallRecord) error {
				// fn may use the store meanwhile (one connection on SQLite
				// in memory would deadlock otherwise).
				if len(got)%500 == 0 {
					if _, err := s.GetCall(ctx, "acme", c.ID); err != nil {
						return err
					}
				}
				got = append(got, c.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		if got := collect(CallFilter{Account: "acme", Limit: 5}); !reflect.DeepEqual(got, reverse(want)) {
			t.Errorf("EachCall: %d records, first %v; want %d", len(got), got[:min(3, len(got))], len(want))
		}
		if got := collect(CallFilter{Account: "acme", CallerPrefix: "+346000"}); !reflect.DeepEqual(got, reverse(wantMobile)) {
			t.Errorf("EachCall by caller prefix: %d records, want %d", len(got), len(wantMobile))
		}
		if got := collect(CallFilter{Account: "acme", Tag: "spain"}); !reflect.DeepEqual(got, reverse(want)) {
			t.Errorf("EachCall by tag: %d records, want %d", len(got), len(want))
		}
		// fn's error stops it and comes back as is.
		stop := errors.New("stop")
		seen := 0
		err := s.EachCall(ctx, CallFilter{Account: "acme"}, func(*CallRecord) error {
			seen++
			if seen == eachCallPage+3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || seen != eachCallPage+3 {
			t.Errorf("EachCall stopped after %d with %v", seen, err)
		}
		if err := s.EachCall(ctx, CallFilter{}, func(*CallRecord) error { return nil }); err == nil {
			t.Error("EachCall without an account succeeded")
		}
		if err := s.EachCall(ctx, CallFilter{Account: "acme", Cursor: "bad"}, func(*CallRecord) error { return nil }); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("bad cursor: %v", err)
		}
		if got := collect(CallFilter{Account: "nobody"}); len(got) != 0 {
			t.Errorf("EachCall of an account with no calls: %v", got)
		}
	})
}

// jsonDocument encodes a document as storeConfig does.
func jsonDocument(doc *config.Document) (string, error) {
	b, err := json.Marshal(doc)
	return string(b), err
}
