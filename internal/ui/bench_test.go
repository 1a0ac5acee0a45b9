package ui_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node/nodetest"
)

// Sizes of BenchmarkPages' account (issue 11: the console loads in under
// 300 ms with 10,000 numbers and 1,000,000 call records).
const (
	benchNumbers = 10_000
	benchCalls   = 1_000_000
	benchDays    = 90
	// pace is the least time from one page load to the next: a page may
	// make several API calls, and the token's API rate limit is 20 a second.
	pace = 250 * time.Millisecond
)

// BenchmarkPages loads each page of the console over loopback HTTP, signed
// in, from a node whose SQLite database holds one account of 10,000
// numbers (a rule each, two for every tenth) and 1,000,000 call records
// over 90 days. The seed is written once, before the sub-benchmarks, so
// their iterations time page loads only; each reports its p50 and p99.
//
//	go test -run '^$' -bench BenchmarkPages -benchtime 20x ./internal/ui
func BenchmarkPages(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(doc)
	for i := range benchNumbers {
		if i%10 == 0 {
			fmt.Fprintf(&sb, "  \"+3492%07d\": { extension: support, tags: [n%d], rules: [{ prefix: \"34666*\", action: reject-busy }, { prefix: \"34777*\", weight: 5, action: route, extension: \"user:bob\" }] }\n", i, i%7)
		} else {
			fmt.Fprintf(&sb, "  \"+3492%07d\": { extension: support, rules: [{ prefix: \"34666*\", action: reject-busy }] }\n", i)
		}
	}
	path := filepath.Join(b.TempDir(), "switchboard.db")
	srv := nodetest.Run(b, sb.String(), nodetest.Options{DB: "sqlite:" + path})
	t0 := time.Now()
	callID := seedCalls(b, path)
	b.Logf("seeded %d calls in %s", benchCalls, time.Since(t0).Round(time.Millisecond))

	secret, _, err := srv.Store.NewToken(context.Background(), "acme", "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	var last time.Time
	get := func(tb testing.TB, p string) string {
		// The console's API calls share its token's rate limit (20/s).
		time.Sleep(time.Until(last.Add(pace)))
		defer func() { last = time.Now() }()
		res, err := c.Get(srv.HTTPURL + p)
		if err != nil {
			tb.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			tb.Fatalf("GET %s: %d", p, res.StatusCode)
		}
		return string(body)
	}
	m := csrfRE.FindStringSubmatch(get(b, "/signin"))
	if m == nil {
		b.Fatal("no CSRF token on /signin")
	}
	res, err := c.PostForm(srv.HTTPURL+"/signin", url.Values{"csrf": {m[1]}, "account": {"acme"}, "token": {secret}})
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()

	// A page deep in the log, 100,000 calls in: the API's cursor, walked
	// 500 at a time with a token of its own (its own rate limit).
	deep := "/calls?cursor=" + deepCursor(b, srv, 200)

	pages := []struct{ name, path string }{
		{"dashboard", "/"},
		{"numbers", "/numbers"},
		{"numbers-search", "/numbers?q=0004242"},
		{"number", "/numbers/%2B34920004240"},
		{"extensions", "/extensions"},
		{"group", "/extensions/support"},
		{"users", "/users"},
		{"locations", "/locations"},
		{"activity", "/calls"},
		{"activity-filtered", "/calls?number=%2B34920000042&outcome=rejected"},
		{"activity-tag", "/calls?tag=vip"},
		{"activity-deep", deep},
		{"call", "/calls/" + callID},
		{"missed", "/missed"},
		{"messages", "/messages"},
		{"history", "/history"},
		{"voicemail", "/voicemail"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			get(b, p.path) // warm
			var took []time.Duration
			for b.Loop() {
				b.StopTimer()
				time.Sleep(time.Until(last.Add(pace)))
				b.StartTimer()
				t := time.Now()
				get(b, p.path)
				took = append(took, time.Since(t))
			}
			slices.Sort(took)
			ms := func(q float64) float64 {
				return float64(took[int(q*float64(len(took)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
		})
	}
}

// deepCursor is the activity log's cursor after pages pages of 500 calls.
func deepCursor(b *testing.B, srv *nodetest.Server, pages int) string {
	b.Helper()
	secret, _, err := srv.Store.NewToken(context.Background(), "acme", "bench-walk", true)
	if err != nil {
		b.Fatal(err)
	}
	cursor := ""
	for range pages {
		time.Sleep(60 * time.Millisecond) // under 20 requests a second
		u := srv.HTTPURL + "/api/v1/acme/calls?limit=500"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var out struct {
			Next string `json:"next"`
		}
		err = json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || out.Next == "" {
			b.Fatalf("walking the log: %d %v", res.StatusCode, err)
		}
		cursor = out.Next
	}
	return url.QueryEscape(cursor)
}

// seedCalls writes benchCalls call records of acme straight into the
// database at path, in one transaction of multi-row INSERTs, and returns
// the id of one of them. Every 7th call is missed (unanswered, with a
// missed_calls row), every 13th rejected, every 11th tagged vip, every
// 97th recorded and every 101st left a voicemail.
func seedCalls(b *testing.B, path string) string {
	b.Helper()
	// The seed's own connection: no fsync, and a cache of 256 MiB so that
	// the indexes' pages stay in memory until the commit.
	db, err := sql.Open("sqlite", path+"?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)&_pragma=cache_size(-262144)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	calls := newBatch(b, tx, `INSERT INTO calls (id, account, number, caller, caller_name, start_us, answer_us, end_us, duration_us,
		outcome, answered_by, hangup_cause, tags, trace, recording, voicemail, recording_us, recording_bytes,
		voicemail_user, voicemail_heard, extension, direction) VALUES `,
		"(?,'acme',?,?,'',?,?,?,?,?,?,?,?,'[]',?,?,?,?,?,0,'support','inbound')")
	tags := newBatch(b, tx, `INSERT INTO call_tags (call_id, tag, account, start_us) VALUES `, "(?,?,'acme',?)")
	missed := newBatch(b, tx, `INSERT INTO missed_calls (call_id, account, number, extension, caller, caller_name, start_us) VALUES `,
		"(?,'acme',?,'support',?,'',?)")
	end := time.Now().Add(-time.Hour).UnixMicro()
	step := int64(benchDays*24*time.Hour/time.Microsecond) / benchCalls
	for i := range benchCalls {
		id := fmt.Sprintf("bench-%07d", i)
		start := end - int64(benchCalls-i)*step
		number := fmt.Sprintf("+3492%07d", i%benchNumbers)
		caller := fmt.Sprintf("+346%08d", (i*7919)%50_000)
		outcome, answeredBy, cause := "routed", "user:alice", "caller_bye"
		var answer, dur any = start + 3_000_000, int64(60_000_000)
		recording, voicemail, vmUser := "", "", ""
		var recUS, recBytes int64
		switch {
		case i%7 == 0: // missed
			answeredBy, cause, answer, dur = "", "no_answer", nil, int64(0)
			missed.add(id, number, caller, start)
		case i%13 == 0:
			outcome, answeredBy, cause, answer, dur = "rejected", "", "rejected", nil, int64(0)
		case i%101 == 0:
			outcome, answeredBy, voicemail, vmUser = "voicemail", "voicemail:alice", id+".wav", "alice"
		case i%97 == 0:
			recording, recUS, recBytes = id+".wav", 60_000_000, 960_000
		}
		tagJSON := `["main"]`
		tags.add(id, "main", start)
		if i%11 == 0 {
			tagJSON = `["main","vip"]`
			tags.add(id, "vip", start)
		}
		calls.add(id, number, caller, start, answer, start+65_000_000, dur,
			outcome, answeredBy, cause, tagJSON, recording, voicemail, recUS, recBytes, vmUser)
	}
	calls.flush()
	tags.flush()
	missed.flush()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("bench-%07d", benchCalls-3)
}

// batch is a multi-row INSERT: rows are added one at a time and written
// batchRows at a time through one prepared statement.
type batch struct {
	b          *testing.B
	tx         *sql.Tx
	head, row  string
	stmt       *sql.Stmt
	args       []any
	rows, cols int
}

// batchRows rows a statement: under SQLite's 32,766 parameters with 16 a row.
const batchRows = 500

func newBatch(b *testing.B, tx *sql.Tx, head, row string) *batch {
	return &batch{b: b, tx: tx, head: head, row: row, cols: strings.Count(row, "?")}
}

func (t *batch) add(vals ...any) {
	t.args = append(t.args, vals...)
	if t.rows++; t.rows == batchRows {
		if t.stmt == nil {
			var err error
			if t.stmt, err = t.tx.Prepare(t.sql(batchRows)); err != nil {
				t.b.Fatal(err)
			}
		}
		if _, err := t.stmt.Exec(t.args...); err != nil {
			t.b.Fatal(err)
		}
		t.args, t.rows = t.args[:0], 0
	}
}

func (t *batch) flush() {
	if t.rows == 0 {
		return
	}
	if _, err := t.tx.Exec(t.sql(t.rows), t.args...); err != nil {
		t.b.Fatal(err)
	}
	t.args, t.rows = t.args[:0], 0
}

func (t *batch) sql(rows int) string {
	return t.head + strings.TrimSuffix(strings.Repeat(t.row+",", rows), ",")
}
