package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard/switchboard/internal/config"
)

// Every test runs against SQLite and PostgreSQL. PostgreSQL is required:
// when it is unreachable the tests fail, unless SWITCHBOARD_SKIP_POSTGRES=1.
const defaultTestPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var (
	adminOnce sync.Once
	adminDB   *sql.DB
	adminErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if adminDB != nil {
		adminDB.Close()
	}
	os.Exit(code)
}

func postgresBaseURL() string {
	if u := os.Getenv("SWITCHBOARD_TEST_POSTGRES"); u != "" {
		return u
	}
	return defaultTestPostgres
}

// postgresURL creates a fresh schema for the test, dropped at cleanup, and
// returns a URL whose connections use it.
func postgresURL(t *testing.T) string {
	t.Helper()
	if os.Getenv("SWITCHBOARD_SKIP_POSTGRES") == "1" {
		t.Skip("SWITCHBOARD_SKIP_POSTGRES=1: PostgreSQL tests skipped")
	}
	base := postgresBaseURL()
	adminOnce.Do(func() {
		adminDB, adminErr = sql.Open("pgx", base)
		if adminErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		adminErr = adminDB.PingContext(ctx)
	})
	if adminErr != nil {
		t.Fatalf("PostgreSQL at %s is unreachable: %v\n"+
			"start it, point SWITCHBOARD_TEST_POSTGRES at one, or set SWITCHBOARD_SKIP_POSTGRES=1 to skip these tests",
			redactURL(base), adminErr)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "sbtest_" + hex.EncodeToString(b)
	if _, err := adminDB.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := adminDB.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SWITCHBOARD_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// eachBackend runs f as a subtest on a new SQLite file and on a new
// PostgreSQL schema.
func eachBackend(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, "sqlite:"+filepath.Join(t.TempDir(), "data", "switchboard.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		f(t, postgresURL(t))
	})
}

// eachStore is eachBackend with the store opened.
func eachStore(t *testing.T, f func(t *testing.T, s *Store)) {
	eachBackend(t, func(t *testing.T, url string) { f(t, openStore(t, url)) })
}

func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(testContext(t), url)
	if err != nil {
		t.Fatalf("Open(%s): %v", redactURL(url), err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func loadAcme(t *testing.T) *config.Document {
	t.Helper()
	doc, err := config.LoadFile("../../examples/acme.yaml")
	if err != nil {
		t.Fatalf("load acme.yaml: %v", err)
	}
	return doc
}

func TestOpenCreatesSQLiteFileAndDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := testContext(t)
	s, err := Open(ctx, "sqlite:./nested/deeper/sb.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dialect() != DialectSQLite {
		t.Errorf("Dialect() = %q", s.Dialect())
	}
	fi, err := os.Stat(filepath.Join(dir, "nested", "deeper", "sb.db"))
	if err != nil {
		t.Fatalf("database file not created: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %v, want 0600", perm)
	}
	var mode string
	var fk, busy int
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || fk != 1 || busy <= 0 {
		t.Errorf("journal_mode=%s foreign_keys=%d busy_timeout=%d, want wal, 1, >0", mode, fk, busy)
	}
	t.Logf("created %s: journal_mode=%s foreign_keys=%d busy_timeout=%dms", "nested/deeper/sb.db", mode, fk, busy)
}

func TestOpenMemory(t *testing.T) {
	s := openStore(t, "sqlite::memory:")
	ctx := testContext(t)
	if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LoadConfig(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	for _, u := range []string{"mysql://root:hunter2@localhost/db", "switchboard.db", "sqlite:"} {
		_, err := Open(context.Background(), u)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
		t.Logf("Open(%q): %v", u, err)
	}
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		ctx := testContext(t)
		s, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		for range 2 {
			s, err = Open(ctx, url)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			s.Close()
		}
		s = openStore(t, url)
		if _, v, err := s.LoadConfig(ctx, "acme"); err != nil || v != 1 {
			t.Fatalf("after reopen: version %d, %v", v, err)
		}
		ms, err := loadMigrations()
		if err != nil {
			t.Fatal(err)
		}
		var n, max int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		if n != len(ms) || max != ms[len(ms)-1].version {
			t.Errorf("schema_migrations has %d rows up to %d, want %d up to %d", n, max, len(ms), ms[len(ms)-1].version)
		}
	})
}

func TestApplyLoadRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		doc := loadAcme(t)
		want := loadAcme(t)
		v, err := s.ApplyConfig(ctx, doc)
		if err != nil {
			t.Fatal(err)
		}
		if v != 1 {
			t.Errorf("first apply: version %d, want 1", v)
		}
		got, gv, err := s.LoadConfig(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if gv != 1 {
			t.Errorf("LoadConfig version %d, want 1", gv)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip differs:\n got %+v\nwant %+v", got, want)
		}
		accounts, err := s.Accounts(ctx)
		if err != nil || !reflect.DeepEqual(accounts, []string{"acme"}) {
			t.Errorf("Accounts() = %v, %v", accounts, err)
		}
		versions, err := s.ConfigVersions(ctx)
		if err != nil || !reflect.DeepEqual(versions, map[string]int64{"acme": 1}) {
			t.Errorf("ConfigVersions() = %v, %v", versions, err)
		}
		if _, _, err := s.LoadConfig(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LoadConfig(nobody): %v, want ErrNotFound", err)
		}
	})
}

func TestApplySecondVersionReplacesEverything(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
			t.Fatal(err)
		}
		second := &config.Document{
			Account: "acme",
			Users:   map[string]config.User{"zed": {Extension: "199", Password: "zzz"}},
			Extensions: map[string]config.Extension{
				"only": {Type: config.TypeIndividual, Destination: "user:zed", Timeout: config.Duration(5 * time.Second)},
			},
			Numbers: map[string]config.Number{"+34910000099": {Extension: "only"}},
		}
		want := *second
		v, err := s.ApplyConfig(ctx, second)
		if err != nil {
			t.Fatal(err)
		}
		if v != 2 {
			t.Errorf("second apply: version %d, want 2", v)
		}
		got, gv, err := s.LoadConfig(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if gv != 2 || !reflect.DeepEqual(got, &want) {
			t.Errorf("after second apply: version %d, doc %+v; want 2, %+v", gv, got, &want)
		}
		other := &config.Document{Account: "globex"}
		if v, err := s.ApplyConfig(ctx, other); err != nil || v != 1 {
			t.Errorf("apply globex: %d, %v", v, err)
		}
		versions, _ := s.ConfigVersions(ctx)
		if !reflect.DeepEqual(versions, map[string]int64{"acme": 2, "globex": 1}) {
			t.Errorf("ConfigVersions() = %v", versions)
		}
	})
}

func TestApplyKeepsRedactedSecrets(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
			t.Fatal(err)
		}
		redacted := loadAcme(t).Redact()
		if redacted.Users["alice"].Password != config.Redacted {
			t.Fatal("Redact left alice's password")
		}
		if _, err := s.ApplyConfig(ctx, redacted); err != nil {
			t.Fatal(err)
		}
		got, v, err := s.LoadConfig(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if want := loadAcme(t); v != 2 || !reflect.DeepEqual(got, want) {
			t.Errorf("secrets not kept: version %d, alice %q, carrier %q", v, got.Users["alice"].Password, got.Trunks["carrier"].Password)
		}
		if redacted.Users["alice"].Password != "s3cret" {
			t.Errorf("the applied document was not filled in: alice %q", redacted.Users["alice"].Password)
		}

		// A redacted secret with nothing stored is refused, and nothing changes.
		bad := loadAcme(t).Redact()
		bad.Users["newbie"] = config.User{Extension: "150", Password: config.Redacted}
		_, err = s.ApplyConfig(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "users.newbie.password") {
			t.Fatalf("apply with an unknown redacted secret: %v", err)
		}
		t.Logf("refused: %v", err)
		if _, v, _ := s.LoadConfig(ctx, "acme"); v != 2 {
			t.Errorf("version %d after a refused apply, want 2", v)
		}
	})
}

func TestApplyNotifiesOnPostgres(t *testing.T) {
	url := postgresURL(t)
	s := openStore(t, url)
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+ConfigChannel); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	if n.Channel != ConfigChannel || n.Payload != "acme" {
		t.Errorf("notification %s %q, want %s \"acme\"", n.Channel, n.Payload, ConfigChannel)
	}
}

func TestUpdateConfig(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		if _, err := s.UpdateConfig(ctx, "acme", func(*config.Document) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("update of an unknown account: %v, want ErrNotFound", err)
		}
		if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if _, err := s.UpdateConfig(ctx, "acme", func(d *config.Document) error {
			d.Users = nil
			return boom
		}); !errors.Is(err, boom) {
			t.Errorf("failed edit: %v, want boom", err)
		}
		if got, v, _ := s.LoadConfig(ctx, "acme"); v != 1 || !reflect.DeepEqual(got, loadAcme(t)) {
			t.Errorf("a failed edit changed the config (version %d)", v)
		}

		// Concurrent edits are serialized: none is lost.
		const editors = 10
		var wg sync.WaitGroup
		errs := make(chan error, editors)
		for i := range editors {
			wg.Go(func() {
				_, err := s.UpdateConfig(ctx, "acme", func(d *config.Document) error {
					d.Users[fmt.Sprintf("u%d", i)] = config.User{Extension: fmt.Sprintf("%d", 500+i)}
					return nil
				})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		got, v, err := s.LoadConfig(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if v != 1+editors {
			t.Errorf("version %d after %d edits, want %d", v, editors, 1+editors)
		}
		for i := range editors {
			if _, ok := got.Users[fmt.Sprintf("u%d", i)]; !ok {
				t.Errorf("edit %d lost", i)
			}
		}
		if got.Users["alice"].Password != "s3cret" {
			t.Errorf("secret lost by an edit")
		}
	})
}

func TestRotationSequence(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		if v, err := s.PeekRotation(ctx, "acme", "support"); err != nil || v != 0 {
			t.Fatalf("Peek of a new counter: %d, %v", v, err)
		}
		for want := uint64(0); want < 3; want++ {
			for range 2 {
				if v, err := s.PeekRotation(ctx, "acme", "support"); err != nil || v != want {
					t.Fatalf("Peek = %d, %v; want %d", v, err, want)
				}
			}
			if v, err := s.NextRotation(ctx, "acme", "support"); err != nil || v != want {
				t.Fatalf("Next = %d, %v; want %d", v, err, want)
			}
		}
		// Counters are per account and extension.
		if v, _ := s.NextRotation(ctx, "acme", "sales"); v != 0 {
			t.Errorf("acme/sales started at %d", v)
		}
		if v, _ := s.NextRotation(ctx, "globex", "support"); v != 0 {
			t.Errorf("globex/support started at %d", v)
		}
		if v, _ := s.PeekRotation(ctx, "acme", "support"); v != 3 {
			t.Errorf("acme/support at %d, want 3", v)
		}
	})
}

func TestRotationConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		const (
			workers = 8
			each    = 1000
		)
		// Each worker has a Store of its own, as nodes sharing the
		// database would.
		stores := make([]*Store, workers)
		for i := range stores {
			stores[i] = openStore(t, url)
		}
		ctx := testContext(t)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			seen  = make(map[uint64]int, workers*each)
			start = time.Now()
		)
		for w := range workers {
			wg.Go(func() {
				got := make([]uint64, 0, each)
				for range each {
					v, err := stores[w].NextRotation(ctx, "acme", "support")
					if err != nil {
						t.Error(err)
						return
					}
					got = append(got, v)
				}
				mu.Lock()
				for _, v := range got {
					seen[v]++
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for v := range uint64(workers * each) {
			if seen[v] != 1 {
				t.Errorf("value %d handed out %d times", v, seen[v])
			}
		}
		if len(seen) != workers*each {
			t.Errorf("%d distinct values, want %d", len(seen), workers*each)
		}
		if v, err := stores[0].PeekRotation(ctx, "acme", "support"); err != nil || v != workers*each {
			t.Errorf("Peek after the run = %d, %v; want %d", v, err, workers*each)
		}
		t.Logf("%d workers x %d: values 0..%d each handed out once in %v", workers, each, workers*each-1, time.Since(start).Round(time.Millisecond))
	})
}

func testCall(account, id string, start time.Time) *CallRecord {
	return &CallRecord{
		ID: id, Account: account, Number: "+34910000000", Caller: "+442071234567",
		CallerName: "MOBILE Bob", Start: start, Outcome: "answered",
		Tags: []string{"spain"}, Trace: []string{"rule 3 cnam-prefix", "route support"},
		Recording: "/rec/call.wav", RecordingLength: 61500 * time.Millisecond, RecordingBytes: 1968044,
	}
}

func TestCallRecords(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		start := time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.UTC)
		c := testCall("acme", "call-1", start)
		if err := s.InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetCall(ctx, "acme", "call-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("GetCall:\n got %+v\nwant %+v", got, c)
		}
		if !got.Answer.IsZero() || !got.End.IsZero() {
			t.Errorf("null times read back as %v, %v", got.Answer, got.End)
		}

		// The record is written again when the call ends.
		c.Answer = start.Add(3 * time.Second)
		c.End = start.Add(63 * time.Second)
		c.Duration = 60 * time.Second
		c.AnsweredBy = "user:alice"
		c.HangupCause = "caller hung up"
		c.Tags = []string{"spain", "mobile"}
		c.Recording = "recordings/call-1.wav"
		c.Voicemail = "voicemail/alice/1.wav"
		if err := s.InsertCall(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetCall(ctx, "acme", "call-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("GetCall after update:\n got %+v\nwant %+v", got, c)
		}

		// Another account sees nothing and cannot take the id over.
		if _, err := s.GetCall(ctx, "globex", "call-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetCall from another account: %v, want ErrNotFound", err)
		}
		if _, err := s.GetCall(ctx, "acme", "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetCall(nope): %v, want ErrNotFound", err)
		}
		if err := s.InsertCall(ctx, testCall("globex", "call-1", start)); err == nil {
			t.Error("another account overwrote call-1")
		}
		if got, _ := s.GetCall(ctx, "acme", "call-1"); got == nil || got.Account != "acme" {
			t.Errorf("call-1 after the refused overwrite: %+v", got)
		}
		if err := s.InsertCall(ctx, &CallRecord{ID: "x", Account: "acme"}); err == nil {
			t.Error("a call without a start was accepted")
		}
	})
}

func TestListCallsFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		add := func(account, id string, minute int, mod func(*CallRecord)) {
			c := testCall(account, id, t0.Add(time.Duration(minute)*time.Minute))
			if mod != nil {
				mod(c)
			}
			if err := s.InsertCall(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		add("acme", "a", 0, nil)
		add("acme", "b", 10, func(c *CallRecord) { c.Number = "+34910000001"; c.Tags = nil })
		add("acme", "c", 20, func(c *CallRecord) { c.Caller = "anonymous"; c.Outcome = "rejected" })
		add("acme", "d", 30, func(c *CallRecord) { c.Tags = []string{"mobile", "vip", "mobile"} })
		add("globex", "e", 40, nil)

		cases := []struct {
			name string
			f    CallFilter
			want []string
		}{
			{"all", CallFilter{}, []string{"d", "c", "b", "a"}},
			{"from", CallFilter{From: t0.Add(10 * time.Minute)}, []string{"d", "c", "b"}},
			{"to is exclusive", CallFilter{To: t0.Add(20 * time.Minute)}, []string{"b", "a"}},
			{"range", CallFilter{From: t0.Add(5 * time.Minute), To: t0.Add(25 * time.Minute)}, []string{"c", "b"}},
			{"number", CallFilter{Number: "+34910000001"}, []string{"b"}},
			{"caller", CallFilter{Caller: "anonymous"}, []string{"c"}},
			{"outcome", CallFilter{Outcome: "answered"}, []string{"d", "b", "a"}},
			{"tag", CallFilter{Tag: "spain"}, []string{"c", "a"}},
			{"tag of many", CallFilter{Tag: "vip"}, []string{"d"}},
			{"tag and outcome", CallFilter{Tag: "spain", Outcome: "rejected"}, []string{"c"}},
			{"nothing", CallFilter{Number: "+10000000000"}, nil},
		}
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
				t.Errorf("%s: got %v (next %q), want %v", tc.name, ids, next, tc.want)
			}
		}
		calls, _, err := s.ListCalls(ctx, CallFilter{Account: "globex"})
		if err != nil || len(calls) != 1 || calls[0].ID != "e" {
			t.Errorf("globex: %+v, %v", calls, err)
		}
		if _, _, err := s.ListCalls(ctx, CallFilter{}); err == nil {
			t.Error("ListCalls without an account succeeded")
		}
	})
}

func TestListCallsPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		var want []string
		// 25 calls, three to a start time, so the cursor must break ties by id.
		for i := range 25 {
			c := testCall("acme", fmt.Sprintf("call-%02d", i), t0.Add(time.Duration(i/3)*time.Second))
			if err := s.InsertCall(ctx, c); err != nil {
				t.Fatal(err)
			}
			want = append(want, c.ID)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(want)))
		var (
			got    []string
			cursor string
			pages  int
		)
		for {
			calls, next, err := s.ListCalls(ctx, CallFilter{Account: "acme", Limit: 7, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range calls {
				got = append(got, c.ID)
			}
			if next == "" {
				break
			}
			if len(calls) != 7 {
				t.Errorf("page %d has %d calls and a next cursor", pages, len(calls))
			}
			// A call added meanwhile, newer than everything, does not
			// disturb the pages that follow.
			if pages == 1 {
				if err := s.InsertCall(ctx, testCall("acme", "late", t0.Add(time.Hour))); err != nil {
					t.Fatal(err)
				}
			}
			cursor = next
		}
		if pages != 4 || !reflect.DeepEqual(got, want) {
			t.Errorf("%d pages: %v\nwant 4 pages: %v", pages, got, want)
		}
		if _, _, err := s.ListCalls(ctx, CallFilter{Account: "acme", Cursor: "not a cursor"}); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
		}
		calls, _, err := s.ListCalls(ctx, CallFilter{Account: "acme"})
		if err != nil || len(calls) != 26 {
			t.Errorf("default limit: %d calls, %v", len(calls), err)
		}
	})
}

func TestContacts(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		desk := Contact{Account: "acme", User: "alice", URI: "sip:alice@10.0.0.5:5060", Source: "10.0.0.5:5060",
			Transport: "udp", UserAgent: "Desk/1.0", InstanceID: "<urn:uuid:1>", Expires: now.Add(time.Hour),
			Path: []string{"<sip:127.0.0.9;lr>", "<sip:10.1.1.1:5070;lr>"}, NAT: true}
		mobile := Contact{Account: "acme", User: "alice", URI: "sip:alice@10.0.0.6:5062;transport=tcp", Source: "10.0.0.6:5062",
			Transport: "tcp", Expires: now.Add(time.Minute)}
		old := Contact{Account: "acme", User: "alice", URI: "sip:alice@10.0.0.7", Expires: now.Add(-time.Second)}
		bob := Contact{Account: "acme", User: "bob", URI: "sip:bob@10.0.0.8", Expires: now.Add(time.Hour)}
		other := Contact{Account: "globex", User: "alice", URI: "sip:alice@10.0.0.9", Expires: now.Add(time.Hour)}
		for _, c := range []Contact{desk, mobile, old, bob, other} {
			if err := s.PutContact(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Contacts(ctx, "acme", "alice", now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []Contact{desk, mobile}; !reflect.DeepEqual(got, want) {
			t.Errorf("Contacts:\n got %+v\nwant %+v", got, want)
		}

		// Re-registering refreshes the binding instead of adding one.
		mobile.Expires = now.Add(2 * time.Hour)
		mobile.UserAgent = "Mobile/2.0"
		if err := s.PutContact(ctx, mobile); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Contacts(ctx, "acme", "alice", now)
		if want := []Contact{mobile, desk}; !reflect.DeepEqual(got, want) {
			t.Errorf("after refresh:\n got %+v\nwant %+v", got, want)
		}
		// Later, only the refreshed one is left.
		got, _ = s.Contacts(ctx, "acme", "alice", now.Add(90*time.Minute))
		if want := []Contact{mobile}; !reflect.DeepEqual(got, want) {
			t.Errorf("at +90m:\n got %+v\nwant %+v", got, want)
		}

		if err := s.DeleteContact(ctx, "acme", "alice", desk.URI); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteContact(ctx, "acme", "alice", desk.URI); err != nil {
			t.Errorf("deleting twice: %v", err)
		}
		got, _ = s.Contacts(ctx, "acme", "alice", now)
		if want := []Contact{mobile}; !reflect.DeepEqual(got, want) {
			t.Errorf("after delete:\n got %+v\nwant %+v", got, want)
		}

		n, err := s.PurgeExpired(ctx, now)
		if err != nil || n != 1 {
			t.Errorf("PurgeExpired(now) = %d, %v; want 1 (the old binding)", n, err)
		}
		n, err = s.PurgeExpired(ctx, now.Add(3*time.Hour))
		if err != nil || n != 3 {
			t.Errorf("PurgeExpired(+3h) = %d, %v; want 3", n, err)
		}
		if got, _ := s.Contacts(ctx, "globex", "alice", now); len(got) != 0 {
			t.Errorf("globex contacts survived the purge: %+v", got)
		}
		if err := s.PutContact(ctx, Contact{Account: "acme", User: "alice"}); err == nil {
			t.Error("a contact without a URI was accepted")
		}
	})
}

func TestReputation(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		if l, err := s.Reputation(ctx, "acme", "+34600000001"); err != nil || l != config.LevelNone {
			t.Errorf("unknown caller: %v, %v", l, err)
		}
		steps := []config.Level{config.LevelLow, config.LevelHigh, config.LevelMedium}
		for _, l := range steps {
			if err := s.SetReputation(ctx, "acme", "+34600000001", l); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Reputation(ctx, "acme", "+34600000001"); err != nil || got != l {
				t.Errorf("after setting %v: %v, %v", l, got, err)
			}
		}
		if l, _ := s.Reputation(ctx, "globex", "+34600000001"); l != config.LevelNone {
			t.Errorf("reputation leaked to globex: %v", l)
		}
		if err := s.SetReputation(ctx, "acme", "anonymous", config.LevelHigh); err != nil {
			t.Fatal(err)
		}
		list, err := s.Reputations(ctx, "acme")
		if want := map[string]config.Level{"+34600000001": config.LevelMedium, "anonymous": config.LevelHigh}; err != nil || !reflect.DeepEqual(list, want) {
			t.Errorf("Reputations = %v, %v; want %v", list, err, want)
		}
		if err := s.SetReputation(ctx, "acme", "+34600000001", config.LevelNone); err != nil {
			t.Fatal(err)
		}
		if l, _ := s.Reputation(ctx, "acme", "+34600000001"); l != config.LevelNone {
			t.Errorf("after clearing: %v", l)
		}
		if err := s.SetReputation(ctx, "acme", "x", config.Level(9)); err == nil {
			t.Error("level 9 accepted")
		}
	})
}

func TestTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		tok, err := s.CreateToken(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		admin, err := s.CreateToken(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 || tok == admin {
			t.Errorf("tokens %q, %q: want two different 43-character tokens", tok, admin)
		}
		if a, isAdmin, err := s.CheckToken(ctx, tok); err != nil || a != "acme" || isAdmin {
			t.Errorf("CheckToken(account token) = %q, %v, %v", a, isAdmin, err)
		}
		if a, isAdmin, err := s.CheckToken(ctx, admin); err != nil || a != "" || !isAdmin {
			t.Errorf("CheckToken(admin token) = %q, %v, %v", a, isAdmin, err)
		}
		for _, bad := range []string{"", "nope", tok + "x", strings.ToUpper(tok)} {
			if _, _, err := s.CheckToken(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("CheckToken(%q): %v, want ErrNotFound", bad, err)
			}
		}
		// Only the hash is stored.
		rows, err := s.db.QueryContext(ctx, `SELECT token_hash, account FROM api_tokens`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var h, a string
			if err := rows.Scan(&h, &a); err != nil {
				t.Fatal(err)
			}
			n++
			if h == tok || h == admin || strings.Contains(h, tok) || strings.Contains(h, admin) {
				t.Errorf("token stored in plain text: %q", h)
			}
			if len(h) != 64 {
				t.Errorf("stored hash %q is not a hex SHA-256", h)
			}
		}
		if n != 2 {
			t.Errorf("%d token rows, want 2", n)
		}
		if h := hashToken(tok); h == tok {
			t.Error("hashToken is the identity")
		}
	})
}

func TestWatchConfig(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		s := openStore(t, url)
		other := openStore(t, url) // another node
		ctx := testContext(t)
		if _, err := s.ApplyConfig(ctx, loadAcme(t)); err != nil {
			t.Fatal(err)
		}
		// On PostgreSQL the poll is an hour apart: changes must come by NOTIFY.
		interval := 20 * time.Millisecond
		if s.Dialect() == DialectPostgres {
			interval = time.Hour
		}
		type event struct {
			account string
			version int64
		}
		events := make(chan event, 10)
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- s.WatchConfig(wctx, interval, func(a string, v int64) { events <- event{a, v} })
		}()
		expect := func(want event) {
			t.Helper()
			select {
			case got := <-events:
				if got != want {
					t.Errorf("change %+v, want %+v", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no change reported, want %+v", want)
			}
		}
		expect(event{"acme", 1})
		if _, err := other.ApplyConfig(ctx, &config.Document{Account: "globex"}); err != nil {
			t.Fatal(err)
		}
		expect(event{"globex", 1})
		start := time.Now()
		if _, err := other.UpdateConfig(ctx, "acme", func(d *config.Document) error { d.Domain = "acme.test"; return nil }); err != nil {
			t.Fatal(err)
		}
		expect(event{"acme", 2})
		t.Logf("a change by another node was reported after %v", time.Since(start).Round(time.Millisecond))
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("WatchConfig returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("WatchConfig did not return after cancel")
		}
		select {
		case e := <-events:
			t.Errorf("unexpected change %+v", e)
		default:
		}
	})
}

// TestCallWriterStartCall: the record of a call starting is in the
// database when StartCall returns, before any Close, so a kill -9 right
// after cannot lose it; several calls starting at once share a commit.
func TestCallWriterStartCall(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		w := s.NewCallWriter(CallWriterOptions{})
		defer w.Close()
		start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("s-%d", i)
				rec := testCall("acme", id, start)
				rec.End, rec.Answer = time.Time{}, time.Time{}
				if err := w.StartCall(ctx, rec); err != nil {
					t.Error(err)
					return
				}
				got, err := s.GetCall(ctx, "acme", id)
				if err != nil {
					t.Errorf("%s right after StartCall: %v", id, err)
				} else if !got.End.IsZero() {
					t.Errorf("%s: end %v, want an open record", id, got.End)
				}
			}()
		}
		wg.Wait()
	})
}

// TestCallWriterBatches: records queued from many goroutines are all
// written once Close returns, and a bad record does not lose its batch.
func TestCallWriterBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		w := s.NewCallWriter(CallWriterOptions{})
		start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 250 {
					if err := w.InsertCall(ctx, testCall("acme", fmt.Sprintf("c-%d-%d", g, i), start.Add(time.Duration(i)*time.Second))); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if err := w.InsertCall(ctx, &CallRecord{ID: "bad"}); err != nil { // no account: refused when written
			t.Fatal(err)
		}
		w.Close()
		n := 0
		for cursor := ""; ; {
			recs, next, err := s.ListCalls(ctx, CallFilter{Account: "acme", Limit: MaxCallLimit, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			n += len(recs)
			if next == "" {
				break
			}
			cursor = next
		}
		if n != 1000 {
			t.Fatalf("%d records written, want 1000", n)
		}
	})
}
