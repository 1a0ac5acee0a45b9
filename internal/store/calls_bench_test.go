package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkInsertCallsBatch writes call records 100 to a transaction, as the
// CallWriter does under load.
func BenchmarkInsertCallsBatch(b *testing.B) {
	ctx := context.Background()
	st, err := Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "x.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	n := 0
	for b.Loop() {
		batch := make([]*CallRecord, 100)
		for i := range batch {
			n++
			batch[i] = &CallRecord{ID: fmt.Sprint("id-", n), Account: "bench", Number: "+34910000000", Caller: "+3491111", Start: time.Now(), End: time.Now(), Outcome: "routed", Trace: []string{"INVITE from trunk carrier", "number +34910000000", "answered by +34600000003"}}
		}
		if err := st.InsertCalls(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallJournal is the database's share of a call's webhook events:
// per op, one finished call through the CallWriter, alone ("record") and
// with the three events of a short answered call (ringing, answered, and
// completed in the record's transaction: "record+3events"). The difference
// is what an account's webhook costs a call, whatever its receiver does.
//
//	go test -run '^$' -bench BenchmarkCallJournal -benchtime 20000x ./internal/store
func BenchmarkCallJournal(b *testing.B) {
	body := []byte(`{"id":"` + uuid.NewString() + `","type":"call.completed","created":"2026-12-03T10:00:00Z","account":"bench",` +
		`"data":{"id":"` + uuid.NewString() + `","number":"+34910000000","caller":"+34911111111","caller_name":"","start":"2026-12-03T10:00:00Z",` +
		`"answer":"2026-12-03T10:00:01Z","end":"2026-12-03T10:00:02Z","duration_seconds":1,"outcome":"routed","answered_by":"+34600000003",` +
		`"hangup_cause":"caller_bye","tags":[],"direction":"inbound"}}`)
	event := func(typ string) Event {
		return Event{ID: uuid.NewString(), Account: "bench", Type: typ, Created: time.Now(), Body: body}
	}
	for _, events := range []int{0, 3} {
		name := "record"
		if events > 0 {
			name = "record+3events"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st, err := Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "x.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			// Room for everything: the time is the writer's, to the last commit.
			o := CallWriterOptions{QueueSize: 4*b.N + 1}
			if events > 0 {
				o.Events = func(*CallRecord) []Event { return []Event{event("call.completed")} }
			}
			w := st.NewCallWriter(o)
			b.ResetTimer()
			for n := range b.N {
				if events > 0 {
					w.Enqueue(event("call.ringing"))
					w.Enqueue(event("call.answered"))
				}
				rec := &CallRecord{ID: fmt.Sprint("id-", n), Account: "bench", Number: "+34910000000", Caller: "+34911111111",
					Start: time.Now(), End: time.Now(), Outcome: "routed", AnsweredBy: "+34600000003", Direction: DirectionInbound,
					Trace: []string{"INVITE from trunk carrier", "number +34910000000", "answered by +34600000003"}}
				if err := w.InsertCall(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
			w.Close() // the writer's work is the cost
			b.StopTimer()
			if w.Dropped() != 0 {
				b.Fatalf("%d events dropped", w.Dropped())
			}
		})
	}
}

// The activity-log benchmark (issue: "with 1,000,000 call records on SQLite
// and on PostgreSQL, a filtered first page <= 20 ms p50 and a cursor page
// deep in the range <= 20 ms p50"):
//
//	go test -run '^$' -bench BenchmarkActivityLog1M -benchtime 200x ./internal/store
//
// The records are seeded once per database and kept for later runs: an
// SQLite file in os.TempDir() and the PostgreSQL schema bench_activity,
// both named by the schema version and activitySeed, so that a new
// migration or a change to the data seeds again.
const (
	activityRecords = 1_000_000
	activityAccount = "acme"
	// activitySeed names the generated data: change it with seedActivity.
	activitySeed = "activity-v1"
)

// activityQueries are the pages measured; the shares are of the seeded
// records. deep pages are the 1,000th page of 50 of their filter.
var activityQueries = []struct {
	name string
	f    CallFilter
	deep bool
}{
	{name: "first/all", f: CallFilter{}},
	{name: "first/number", f: CallFilter{Number: activityNumbers[5]}},                              // 6.4 %
	{name: "first/caller_prefix", f: CallFilter{CallerPrefix: "+3460"}},                            // 4.3 %
	{name: "first/caller_prefix_rare", f: CallFilter{CallerPrefix: "+34912"}},                      // 0.26 %
	{name: "first/caller_prefix_rarer", f: CallFilter{CallerPrefix: "+442012"}},                    // 0.02 %
	{name: "first/caller_prefix_anonymous", f: CallFilter{CallerPrefix: "anonymous"}},              // 5 %, one caller
	{name: "first/tag", f: CallFilter{Tag: "vip"}},                                                 // 1 %
	{name: "first/outcome", f: CallFilter{Outcome: "rejected"}},                                    // 6 %
	{name: "first/answered_by", f: CallFilter{AnsweredBy: "user:u07"}},                             // 2.4 %
	{name: "first/voicemail_user", f: CallFilter{VoicemailUser: "u07"}},                            // 0.2 %
	{name: "first/number+outcome", f: CallFilter{Number: activityNumbers[5], Outcome: "rejected"}}, // 0.4 %
	{name: "first/tag+caller_prefix", f: CallFilter{Tag: "vip", CallerPrefix: "+3460"}},            // 0.04 %
	{name: "deep/all", f: CallFilter{}, deep: true},
	{name: "deep/number", f: CallFilter{Number: activityNumbers[0]}, deep: true},  // 12 %
	{name: "deep/caller_prefix", f: CallFilter{CallerPrefix: "+346"}, deep: true}, // 43 %
	{name: "deep/tag", f: CallFilter{Tag: "international"}, deep: true},           // 10 %
	{name: "deep/outcome", f: CallFilter{Outcome: "forwarded"}, deep: true},       // 8 %
}

func BenchmarkActivityLog1M(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds 1,000,000 call records")
	}
	for _, backend := range []string{DialectSQLite, DialectPostgres} {
		b.Run(backend, func(b *testing.B) {
			st := openActivityStore(b, backend)
			defer st.Close()
			ctx := context.Background()
			for _, q := range activityQueries {
				b.Run(q.name, func(b *testing.B) {
					f := q.f
					f.Account = activityAccount
					f.Limit = 50
					if q.deep {
						f.Cursor = activityCursor(b, st, f, 999*50)
					}
					times := make([]time.Duration, 0, 1000)
					var got int
					for b.Loop() {
						t0 := time.Now()
						calls, _, err := st.ListCalls(ctx, f)
						times = append(times, time.Since(t0))
						if err != nil {
							b.Fatal(err)
						}
						got = len(calls)
					}
					if got == 0 {
						b.Fatalf("%s: empty page", q.name)
					}
					slices.Sort(times)
					ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
					b.ReportMetric(ms(times[len(times)/2]), "p50-ms")
					b.ReportMetric(ms(times[len(times)*95/100]), "p95-ms")
				})
			}
		})
	}
}

// activityCursor returns the cursor after the first skip records of f,
// walking the pages as a client would.
func activityCursor(b *testing.B, st *Store, f CallFilter, skip int) string {
	ctx := context.Background()
	f.Cursor = ""
	for skip > 0 {
		f.Limit = min(skip, MaxCallLimit)
		calls, next, err := st.ListCalls(ctx, f)
		if err != nil {
			b.Fatal(err)
		}
		if next == "" || len(calls) != f.Limit {
			b.Fatalf("the filter has fewer than %d records", skip)
		}
		skip -= len(calls)
		f.Cursor = next
	}
	return f.Cursor
}

// openActivityStore opens the seeded database of the backend, seeding it
// first if it is not there yet.
func openActivityStore(b *testing.B, backend string) *Store {
	ctx := context.Background()
	ms, err := loadMigrations()
	if err != nil {
		b.Fatal(err)
	}
	// The data depends on the schema: key it by the migrations' text.
	h := sha256.New()
	for _, m := range ms {
		h.Write([]byte(m.sql))
	}
	key := fmt.Sprintf("%s-%x", activitySeed, h.Sum(nil)[:4])
	var url string
	switch backend {
	case DialectSQLite:
		path := filepath.Join(os.TempDir(), "switchboard-bench-"+key+".db")
		if !activitySQLiteReady(path, key) {
			// Older seeds are a gigabyte each: remove them.
			old, _ := filepath.Glob(filepath.Join(os.TempDir(), "switchboard-bench-activity-*"))
			for _, p := range old {
				os.Remove(p)
			}
		}
		url = "sqlite:" + path
	case DialectPostgres:
		if os.Getenv("SWITCHBOARD_SKIP_POSTGRES") == "1" {
			b.Skip("SWITCHBOARD_SKIP_POSTGRES=1")
		}
		admin, err := sql.Open("pgx", postgresBaseURL())
		if err != nil {
			b.Fatal(err)
		}
		defer admin.Close()
		var seed string
		err = admin.QueryRowContext(ctx, `SELECT seed FROM bench_activity.bench_seed`).Scan(&seed)
		if err != nil || seed != key {
			if _, err := admin.ExecContext(ctx, `DROP SCHEMA IF EXISTS bench_activity CASCADE`); err != nil {
				b.Fatal(err)
			}
			if _, err := admin.ExecContext(ctx, `CREATE SCHEMA bench_activity`); err != nil {
				b.Fatal(err)
			}
		}
		u, err := neturl.Parse(postgresBaseURL())
		if err != nil {
			b.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", "bench_activity")
		u.RawQuery = q.Encode()
		url = u.String()
	}
	st, err := Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	var seed string
	if err := st.db.QueryRowContext(ctx, `SELECT seed FROM bench_seed`).Scan(&seed); err == nil && seed == key {
		return st
	}
	start := time.Now()
	if err := seedActivity(ctx, st, key); err != nil {
		st.Close()
		b.Fatal(err)
	}
	b.Logf("%s: seeded %d call records in %v", backend, activityRecords, time.Since(start).Round(time.Second))
	return st
}

func activitySQLiteReady(path, key string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	db, err := sql.Open("sqlite", path+"?mode=ro")
	if err != nil {
		return false
	}
	defer db.Close()
	var seed string
	return db.QueryRow(`SELECT seed FROM bench_seed`).Scan(&seed) == nil && seed == key
}

// The account's numbers; the first ones get most calls.
var activityNumbers = func() []string {
	n := make([]string, 40)
	for i := range n {
		n[i] = fmt.Sprintf("+349100%05d", 100+i*37)
	}
	return n
}()

// seedActivity writes activityRecords realistic call records over a year,
// in start order as the nodes would, with multi-row INSERTs of 500
// records in transactions of 50,000. The secondary indexes of calls and
// call_tags are dropped meanwhile and built again after (sorting once is
// much faster than 1,000,000 random insertions). PostgreSQL then gets the
// VACUUM ANALYZE its autovacuum would run after such a load; SQLite gets no
// ANALYZE, as in production.
func seedActivity(ctx context.Context, st *Store, key string) error {
	conn, err := st.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	indexQuery := `SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('calls', 'call_tags') AND sql IS NOT NULL`
	if st.dialect == DialectPostgres {
		indexQuery = `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()
			AND tablename IN ('calls', 'call_tags') AND indexname NOT LIKE '%_pkey'`
	} else if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -262144`); err != nil {
		return err
	}
	var indexes []string
	rows, err := conn.QueryContext(ctx, indexQuery)
	if err != nil {
		return err
	}
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			rows.Close()
			return err
		}
		indexes = append(indexes, def)
	}
	rows.Close()
	for _, def := range indexes {
		// CREATE [UNIQUE] INDEX name ON ...
		f := strings.Fields(def)
		name := f[2]
		if strings.EqualFold(f[1], "unique") {
			name = f[3]
		}
		if _, err := conn.ExecContext(ctx, `DROP INDEX `+name); err != nil {
			return err
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	const (
		perInsert = 500
		perTx     = 50_000
	)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	span := 365 * 24 * time.Hour
	step := span / activityRecords
	var (
		callRows [][]any
		tagRows  [][]any
	)
	flush := func(tx *sql.Tx) error {
		if err := insertRows(ctx, tx, "calls", callColumnList, callRows, perInsert); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, "call_tags", []string{"call_id", "tag", "account", "start_us"}, tagRows, 1000); err != nil {
			return err
		}
		callRows, tagRows = callRows[:0], tagRows[:0]
		return nil
	}
	for done := 0; done < activityRecords; {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for i := 0; i < perTx && done < activityRecords; i++ {
			start := t0.Add(time.Duration(done)*step + time.Duration(rng.Int64N(int64(step))))
			c := activityRecord(rng, start)
			done++
			tags, _ := json.Marshal(nonNil(c.Tags))
			trace, _ := json.Marshal(nonNil(c.Trace))
			callRows = append(callRows, []any{c.ID, c.Account, c.Number, c.Caller, c.CallerName,
				micros(c.Start), micros(c.Answer), micros(c.End), c.Duration.Microseconds(),
				c.Outcome, c.AnsweredBy, c.HangupCause, string(tags), string(trace), c.Recording, c.Voicemail,
				c.RecordingLength.Microseconds(), c.RecordingBytes, c.VoicemailUser, boolInt(c.VoicemailHeard)})
			for _, t := range c.Tags {
				tagRows = append(tagRows, []any{c.ID, t, c.Account, c.Start.UnixMicro()})
			}
			if len(callRows) == perInsert {
				if err := flush(tx); err != nil {
					tx.Rollback()
					return err
				}
			}
		}
		if err := flush(tx); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	for _, def := range indexes {
		if _, err := conn.ExecContext(ctx, def); err != nil {
			return fmt.Errorf("%s: %w", def, err)
		}
	}
	if st.dialect == DialectPostgres {
		if _, err := conn.ExecContext(ctx, `VACUUM ANALYZE calls, call_tags`); err != nil {
			return err
		}
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS bench_seed (seed TEXT NOT NULL)`,
		`DELETE FROM bench_seed`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, `INSERT INTO bench_seed (seed) VALUES ($1)`, key)
	return err
}

// insertRows inserts rows into table, n to a statement.
func insertRows(ctx context.Context, tx *sql.Tx, table string, cols []string, rows [][]any, n int) error {
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	for len(rows) > 0 {
		k := min(n, len(rows))
		st, ok := stmts[k]
		if !ok {
			var q strings.Builder
			fmt.Fprintf(&q, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
			p := 0
			for r := range k {
				if r > 0 {
					q.WriteString(", ")
				}
				q.WriteByte('(')
				for c := range cols {
					if c > 0 {
						q.WriteString(", ")
					}
					p++
					fmt.Fprintf(&q, "$%d", p)
				}
				q.WriteByte(')')
			}
			var err error
			if st, err = tx.PrepareContext(ctx, q.String()); err != nil {
				return err
			}
			stmts[k] = st
		}
		args := make([]any, 0, k*len(cols))
		for _, r := range rows[:k] {
			args = append(args, r...)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		rows = rows[k:]
	}
	return nil
}

// activityRecord makes one call record as a small company's switchboard
// would write it: 65 % Spanish mobiles, 20 % landlines, 10 % from abroad,
// 5 % withheld; most calls routed and answered by one of 30 users, a few
// forwarded, rejected or unanswered (then often a voicemail).
func activityRecord(rng *rand.Rand, start time.Time) *CallRecord {
	var id [16]byte
	for i := range id {
		id[i] = byte(rng.Uint32())
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	c := &CallRecord{
		ID:      uuid.UUID(id).String(),
		Account: activityAccount,
		Start:   start,
	}
	// Numbers: a Zipf-like share, the main number a fifth of the calls.
	for {
		i := int(rng.ExpFloat64() * 8)
		if i < len(activityNumbers) {
			c.Number = activityNumbers[i]
			break
		}
	}
	var tags []string
	switch p := rng.IntN(100); {
	case p < 65:
		c.Caller = fmt.Sprintf("+346%08d", rng.IntN(100_000_000))
		if rng.IntN(3) == 0 {
			c.Caller = fmt.Sprintf("+347%08d", rng.IntN(100_000_000))
		}
		c.CallerName = "MOBILE"
		tags = append(tags, "spain", "mobile")
	case p < 85:
		c.Caller = fmt.Sprintf("+349%d%07d", 1+rng.IntN(8), rng.IntN(10_000_000))
		c.CallerName = []string{"", "Talleres Ruiz", "Farmacia Sol", "Gestoria Martin"}[rng.IntN(4)]
		tags = append(tags, "spain")
	case p < 95:
		c.Caller = []string{"+4420", "+447", "+331", "+4930", "+1212"}[rng.IntN(5)] + fmt.Sprintf("%08d", rng.IntN(100_000_000))
		tags = append(tags, "international")
	default:
		c.Caller = "anonymous"
	}
	hour := start.Hour()
	if hour < 8 || hour >= 19 || start.Weekday() == time.Saturday || start.Weekday() == time.Sunday {
		tags = append(tags, "after-hours")
	}
	if rng.IntN(100) == 0 {
		tags = append(tags, "vip")
	}
	if c.Caller == "anonymous" && rng.IntN(2) == 0 {
		tags = append(tags, "spam-suspect")
	}
	c.Tags = tags
	user := fmt.Sprintf("u%02d", rng.IntN(30))
	c.Trace = []string{"INVITE from trunk carrier", "number " + c.Number, "rule 2 caller-prefix +34 tag spain", "route ext support"}
	switch p := rng.IntN(100); {
	case p < 6:
		c.Outcome, c.HangupCause = "rejected", "rejected"
		c.Trace = append(c.Trace[:3], "rule 1 reputation high: reject")
	case p < 14:
		c.Outcome = "forwarded"
		c.AnsweredBy = fmt.Sprintf("+34600%06d", rng.IntN(20))
		c.Answer = start.Add(time.Duration(3+rng.IntN(20)) * time.Second)
	case p < 16:
		c.Outcome, c.HangupCause = "not_found", "not_found"
	default:
		c.Outcome = "routed"
		if rng.IntN(100) < 85 {
			c.AnsweredBy = "user:" + user
			c.Answer = start.Add(time.Duration(2+rng.IntN(25)) * time.Second)
			c.Trace = append(c.Trace, "answered by user:"+user)
		} else if rng.IntN(2) == 0 {
			c.Voicemail = "voicemail/" + user + "/" + c.ID + ".wav"
			c.VoicemailUser = user
			c.VoicemailHeard = rng.IntN(4) != 0
			c.Trace = append(c.Trace, "voicemail of "+user)
		}
	}
	talk := time.Duration(10+rng.IntN(600)) * time.Second
	if !c.Answer.IsZero() {
		c.End = c.Answer.Add(talk)
		c.Duration = talk
		if rng.IntN(10) < 4 {
			c.Recording = "recordings/" + start.Format("2006/01/02") + "/" + c.ID + ".wav"
			c.RecordingLength = talk
			c.RecordingBytes = 44 + int64(talk/time.Millisecond)*32
		}
		if c.HangupCause == "" {
			c.HangupCause = []string{"caller hung up", "callee hung up"}[rng.IntN(2)]
		}
	} else {
		c.End = start.Add(time.Duration(1+rng.IntN(30)) * time.Second)
		if c.HangupCause == "" {
			c.HangupCause = "caller hung up"
		}
	}
	return c
}
