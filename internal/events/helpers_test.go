package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// As in the store's tests: every test that touches the outbox runs on
// SQLite and on PostgreSQL (127.0.0.1:5432, database test, or
// SWITCHBOARD_TEST_POSTGRES), each in a schema of its own; with
// SWITCHBOARD_SKIP_POSTGRES=1 the PostgreSQL half is skipped.
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

func postgresURL(t *testing.T) string {
	t.Helper()
	if os.Getenv("SWITCHBOARD_SKIP_POSTGRES") == "1" {
		t.Skip("SWITCHBOARD_SKIP_POSTGRES=1: PostgreSQL tests skipped")
	}
	base := os.Getenv("SWITCHBOARD_TEST_POSTGRES")
	if base == "" {
		base = defaultTestPostgres
	}
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
		t.Fatalf("PostgreSQL is unreachable: %v (set SWITCHBOARD_SKIP_POSTGRES=1 to skip)", adminErr)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "sbevents_" + hex.EncodeToString(b)
	if _, err := adminDB.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := adminDB.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// eachBackend runs f on a new SQLite file and a new PostgreSQL schema; f
// gets the database URL, to open the store again as a restart would.
func eachBackend(t *testing.T, f func(t *testing.T, dbURL string)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, "sqlite:"+filepath.Join(t.TempDir(), "switchboard.db"))
	})
	t.Run("postgres", func(t *testing.T) { f(t, postgresURL(t)) })
}

func eachStore(t *testing.T, f func(t *testing.T, st *store.Store)) {
	eachBackend(t, func(t *testing.T, dbURL string) { f(t, openStore(t, dbURL)) })
}

func openStore(t *testing.T, dbURL string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// received is one request a receiver got.
type received struct {
	Account string
	Payload Payload
	Header  http.Header
	At      time.Time
}

// receiver is a webhook endpoint on 127.0.0.1: /{account} per account.
// Each request's signature is checked against the account's secrets in st.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	st  *store.Store

	mu       sync.Mutex
	got      []received
	badSig   int
	handlers map[string]http.HandlerFunc // an account's own answer (default 204)
	notify   chan struct{}
}

func newReceiver(t *testing.T, st *store.Store) *receiver {
	r := &receiver{t: t, st: st, handlers: map[string]http.HandlerFunc{}, notify: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	account := strings.TrimPrefix(req.URL.Path, "/")
	body, _ := io.ReadAll(req.Body)
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("receiver: body %q: %v", body, err)
	}
	sigOK := true
	if r.st != nil {
		cur, prev, err := r.st.WebhookSecrets(context.Background(), account)
		secrets := [][]byte{[]byte(cur)}
		if prev != "" {
			secrets = append(secrets, []byte(prev))
		}
		if err != nil || Verify(req.Header.Get(SignatureHeader), body, secrets, time.Now(), time.Minute) != nil {
			sigOK = false
		}
	}
	if req.Header.Get("Content-Type") != "application/json" || req.Header.Get(EventIDHeader) != p.ID {
		sigOK = false
	}
	r.mu.Lock()
	r.got = append(r.got, received{Account: account, Payload: p, Header: req.Header.Clone(), At: time.Now()})
	if !sigOK {
		r.badSig++
	}
	h := r.handlers[account]
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	if h != nil {
		h(w, req)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handle sets the account's answer.
func (r *receiver) handle(account string, h http.HandlerFunc) {
	r.mu.Lock()
	r.handlers[account] = h
	r.mu.Unlock()
}

func (r *receiver) url(account string) string { return r.srv.URL + "/" + account }

// webhook is a DispatcherOptions.Webhook giving every account its path.
func (r *receiver) webhook(account string) (string, bool) { return r.url(account), true }

// requests returns what the account's endpoint got so far.
func (r *receiver) requests(account string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for _, g := range r.got {
		if g.Account == account {
			out = append(out, g)
		}
	}
	return out
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// wait waits until cond holds, failing the test after timeout.
func (r *receiver) wait(timeout time.Duration, what string, cond func() bool) {
	r.t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			r.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-r.notify:
		case <-tick.C:
		}
	}
}

// checkSignatures fails the test if a request was not signed right.
func (r *receiver) checkSignatures() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.badSig > 0 {
		r.t.Errorf("%d requests without a valid signature, event id header or content type", r.badSig)
	}
}

// fastOptions are dispatcher options with short timers for tests.
func fastOptions(webhook func(string) (string, bool)) DispatcherOptions {
	return DispatcherOptions{
		Webhook:      webhook,
		AllowPrivate: true,
		Timeout:      time.Second,
		MinBackoff:   20 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
		LeaseTTL:     3 * time.Second,
		Log:          quietLog(),
	}
}

// start runs d until the test ends; the returned func stops it and waits.
func start(t *testing.T, d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("the dispatcher did not stop within 10 s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// queue writes n events of the account to the outbox, created in order.
func queue(t *testing.T, st *store.Store, account string, n int) []store.Event {
	t.Helper()
	evs := make([]store.Event, 0, n)
	base := time.Now()
	for i := range n {
		ev, err := NewEvent(account, TypeCallCompleted, base.Add(time.Duration(i)*time.Microsecond),
			map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	for rest := evs; len(rest) > 0; {
		k := min(len(rest), 1000)
		if err := st.InsertEvents(t.Context(), rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	return evs
}

// seqOf decodes the "n" of a queue'd event.
func seqOf(t *testing.T, p Payload) int {
	t.Helper()
	var d struct{ N int }
	if err := json.Unmarshal(p.Data, &d); err != nil {
		t.Fatalf("data %s: %v", p.Data, err)
	}
	return d.N
}

func ids(rs []received) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Payload.ID
	}
	return out
}
