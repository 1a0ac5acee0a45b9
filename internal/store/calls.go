package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CallRecord is what happened to one call (SPEC §4). Zero times are stored
// as NULL; times are kept to the microsecond and read back in UTC.
type CallRecord struct {
	ID          string
	Account     string
	Number      string // the called number (N)
	Caller      string // the caller (C), "anonymous" when withheld
	CallerName  string
	Start       time.Time
	Answer      time.Time
	End         time.Time
	Duration    time.Duration
	Outcome     string
	AnsweredBy  string
	HangupCause string
	Tags        []string
	Trace       []string
	Recording   string // the recording's path or key, if any
	// RecordingLength and RecordingBytes describe the recording file.
	RecordingLength time.Duration
	RecordingBytes  int64
	Voicemail       string // the voicemail's path or key, if any
	VoicemailUser   string // the user the voicemail is for
	// VoicemailHeard is set by SetVoicemailHeard. InsertCall writes it for
	// a new record and can set it, but never clears it: the call's own
	// writes (at start and at end) do not undo a "heard" set meanwhile.
	VoicemailHeard bool
	// Quality is the media quality of each party of the call's answered
	// legs, in the order they were measured; MOS is the lowest of their
	// MOS (0: none was estimated).
	Quality []LegQuality
	MOS     float64
	// Extension is the extension (or "user:NAME") the routing decision sent
	// the call to; "" when it went elsewhere (an external number, a prompt,
	// an IVR, a park orbit) or was refused.
	Extension string
	// Direction is DirectionInbound (from a trunk), DirectionOutbound (a
	// user dialling an external number) or DirectionInternal (a user
	// dialling inside the account).
	Direction string
	// Node is the node that handled the call (a node's --node-id).
	Node string
}

// Directions of a call record.
const (
	DirectionInbound  = "inbound"
	DirectionOutbound = "outbound"
	DirectionInternal = "internal"
)

// LegQuality is what the media of one party looked like over a call, as
// Switchboard measured it: what it sent to the party and received from it,
// the loss and interarrival jitter of what it received (RFC 3550), the
// round trip from the party's RTCP reports and the estimated MOS.
type LegQuality struct {
	Leg             string // "caller", or the member who answered ("user:alice")
	PacketsSent     uint64
	PacketsReceived uint64
	Lost            int64
	LossRatio       float64
	Jitter          time.Duration // kept to the microsecond
	RTT             time.Duration // kept to the microsecond; 0 when !RTTKnown
	RTTKnown        bool
	MOS             float64 // 1-4.5; 0: not estimated (nothing was received)
}

// legQualityJSON is a LegQuality as the quality column holds it.
type legQualityJSON struct {
	Leg             string   `json:"leg"`
	PacketsSent     uint64   `json:"packets_sent"`
	PacketsReceived uint64   `json:"packets_received"`
	Lost            int64    `json:"lost"`
	LossRatio       float64  `json:"loss_ratio"`
	JitterMS        float64  `json:"jitter_ms"`
	RTTMS           *float64 `json:"rtt_ms"`
	MOS             float64  `json:"mos"`
}

// ms is d in milliseconds to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fromMS is a duration of ms milliseconds, to the microsecond.
func fromMS(ms float64) time.Duration {
	return time.Duration(math.Round(ms*1000)) * time.Microsecond
}

func encodeQuality(q []LegQuality) (string, error) {
	l := make([]legQualityJSON, 0, len(q))
	for _, e := range q {
		j := legQualityJSON{Leg: e.Leg, PacketsSent: e.PacketsSent, PacketsReceived: e.PacketsReceived, Lost: e.Lost,
			LossRatio: e.LossRatio, JitterMS: ms(e.Jitter), MOS: e.MOS}
		if e.RTTKnown {
			rtt := ms(e.RTT)
			j.RTTMS = &rtt
		}
		l = append(l, j)
	}
	b, err := json.Marshal(l)
	return string(b), err
}

func decodeQuality(s string) ([]LegQuality, error) {
	var l []legQualityJSON
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	q := make([]LegQuality, 0, len(l))
	for _, j := range l {
		e := LegQuality{Leg: j.Leg, PacketsSent: j.PacketsSent, PacketsReceived: j.PacketsReceived, Lost: j.Lost,
			LossRatio: j.LossRatio, Jitter: fromMS(j.JitterMS), MOS: j.MOS}
		if j.RTTMS != nil {
			e.RTT, e.RTTKnown = fromMS(*j.RTTMS), true
		}
		q = append(q, e)
	}
	return q, nil
}

// Page sizes of ListCalls.
const (
	DefaultCallLimit = 50
	MaxCallLimit     = 1000
)

// InsertCall writes a call record, replacing the one with the same ID (a
// record is written when the call starts and again when it ends). ID,
// Account and Start are required; an ID already used by another account is
// refused.
func (s *Store) InsertCall(ctx context.Context, c *CallRecord) error {
	return s.InsertCalls(ctx, []*CallRecord{c})
}

// StartCall is InsertCall: a Store writes before it returns.
func (s *Store) StartCall(ctx context.Context, c *CallRecord) error { return s.InsertCall(ctx, c) }

// InsertCalls writes several call records in one transaction (see
// InsertCall): either all are written or none.
func (s *Store) InsertCalls(ctx context.Context, calls []*CallRecord) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertCalls(ctx, &txStmts{tx: tx}, calls) })
}

func insertCalls(ctx context.Context, x *txStmts, calls []*CallRecord) error {
	for _, c := range calls {
		if err := insertCall(ctx, x, c); err != nil {
			return fmt.Errorf("insert call %s: %w", c.ID, err)
		}
	}
	return nil
}

// txStmts runs statements in one transaction and prepares each query once:
// a batch of call records would otherwise have SQLite parse the same
// INSERT for every record (a tenth of the CPU of a call under load).
// Statements prepared on a transaction close with it.
type txStmts struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (x *txStmts) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, ok := x.stmts[query]
	if !ok {
		var err error
		if st, err = x.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		if x.stmts == nil {
			x.stmts = map[string]*sql.Stmt{}
		}
		x.stmts[query] = st
	}
	return st.ExecContext(ctx, args...)
}

func insertCall(ctx context.Context, tx *txStmts, c *CallRecord) error {
	if c.ID == "" || c.Account == "" || c.Start.IsZero() {
		return errors.New("id, account and start are required")
	}
	tags, err := json.Marshal(nonNil(c.Tags))
	if err != nil {
		return err
	}
	trace, err := json.Marshal(nonNil(c.Trace))
	if err != nil {
		return err
	}
	quality, err := encodeQuality(c.Quality)
	if err != nil {
		return err
	}
	var mos sql.NullFloat64
	if c.MOS > 0 && !math.IsNaN(c.MOS) {
		mos = sql.NullFloat64{Float64: c.MOS, Valid: true}
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO calls (id, account, number, caller, caller_name, start_us, answer_us, end_us,
			duration_us, outcome, answered_by, hangup_cause, tags, trace, recording, voicemail,
			recording_us, recording_bytes, voicemail_user, voicemail_heard, quality, mos, extension, direction, node)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
		ON CONFLICT (id) DO UPDATE SET
			number = excluded.number, caller = excluded.caller, caller_name = excluded.caller_name,
			start_us = excluded.start_us, answer_us = excluded.answer_us, end_us = excluded.end_us,
			duration_us = excluded.duration_us, outcome = excluded.outcome,
			answered_by = excluded.answered_by, hangup_cause = excluded.hangup_cause,
			tags = excluded.tags, trace = excluded.trace,
			recording = excluded.recording, voicemail = excluded.voicemail,
			recording_us = excluded.recording_us, recording_bytes = excluded.recording_bytes,
			voicemail_user = excluded.voicemail_user,
			quality = excluded.quality, mos = excluded.mos,
			extension = excluded.extension, direction = excluded.direction, node = excluded.node,
			voicemail_heard = CASE WHEN excluded.voicemail_heard <> 0 THEN 1 ELSE calls.voicemail_heard END
		WHERE calls.account = excluded.account`,
		c.ID, c.Account, c.Number, c.Caller, c.CallerName,
		micros(c.Start), micros(c.Answer), micros(c.End), c.Duration.Microseconds(),
		c.Outcome, c.AnsweredBy, c.HangupCause, string(tags), string(trace), c.Recording, c.Voicemail,
		c.RecordingLength.Microseconds(), c.RecordingBytes, c.VoicemailUser, boolInt(c.VoicemailHeard), quality, mos,
		c.Extension, c.Direction, c.Node)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errors.New("the id belongs to another account's call")
	}
	if err := writeCallTags(ctx, tx, c); err != nil {
		return err
	}
	return noteMissed(ctx, tx, c)
}

// writeCallTags replaces the call's rows in call_tags.
func writeCallTags(ctx context.Context, tx *txStmts, c *CallRecord) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM call_tags WHERE call_id = $1`, c.ID); err != nil {
		return err
	}
	seen := make(map[string]bool, len(c.Tags))
	for _, tag := range c.Tags {
		if seen[tag] {
			continue
		}
		seen[tag] = true
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO call_tags (call_id, tag, account, start_us) VALUES ($1, $2, $3, $4)`,
			c.ID, tag, c.Account, c.Start.UnixMicro()); err != nil {
			return err
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// callColumnList and then laterColumnList are what scanCall reads, in
// their order. (The benchmark's seed writes callColumnList alone: its
// records have no quality, extension or direction.)
var (
	callColumnList = []string{"id", "account", "number", "caller", "caller_name", "start_us", "answer_us", "end_us",
		"duration_us", "outcome", "answered_by", "hangup_cause", "tags", "trace", "recording", "voicemail",
		"recording_us", "recording_bytes", "voicemail_user", "voicemail_heard"}
	laterColumnList = []string{"quality", "mos", "extension", "direction", "node"}
)

var (
	callColumns = strings.Join(append(slices.Clone(callColumnList), laterColumnList...), ", ")
	// cCallColumns names them on the alias c (SELECT ... FROM calls c).
	cCallColumns = "c." + strings.Join(append(slices.Clone(callColumnList), laterColumnList...), ", c.")
)

// GetCall returns one call record of the account; ErrNotFound if there is
// none, including when the ID is another account's.
func (s *Store) GetCall(ctx context.Context, account, id string) (*CallRecord, error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT `+callColumns+` FROM calls WHERE account = $1 AND id = $2`, account, id)
	c, err := scanCall(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get call %s: %w", id, err)
	}
	return c, nil
}

// CallFilter selects call records for ListCalls and EachCall. Empty fields
// match everything; Account is required.
type CallFilter struct {
	Account string
	From    time.Time // calls that started at or after From
	To      time.Time // calls that started before To
	Number  string    // the called number, exactly
	Caller  string    // the caller, exactly
	// CallerPrefix selects the calls whose caller starts with it, byte for
	// byte ("+3460"; '%' and '_' are plain characters).
	CallerPrefix string
	Outcome      string
	AnsweredBy   string // exactly, e.g. "user:alice"
	Tag          string // calls that carry this tag
	HasRecording *bool  // nil: either; true: calls with a recording; false: without
	HasVoicemail *bool  // nil: either; true: calls with a voicemail; false: without
	// VoicemailUser selects the calls with a voicemail for this user.
	VoicemailUser string
	// VoicemailHeard selects voicemails marked heard (true) or not (false).
	VoicemailHeard *bool
	// MOSBelow selects the calls whose lowest leg MOS is below it (0: no
	// filter); calls without a MOS never match.
	MOSBelow float64
	// Ended keeps only the calls that have ended: a call's record is
	// written when it starts, and the activity log shows it once it has
	// ended (the calls in progress are the live list).
	Ended  bool
	Limit  int    // page size: DefaultCallLimit if 0, at most MaxCallLimit
	Cursor string // the nextCursor of the previous page, "" for the first
}

// ListCalls returns the account's call records that match f, newest first,
// one page at a time. nextCursor is "" on the last page, otherwise it is
// passed as f.Cursor to get the next page; pages are stable while records
// are being added.
func (s *Store) ListCalls(ctx context.Context, f CallFilter) (calls []CallRecord, nextCursor string, err error) {
	calls, nextCursor, err = s.listCalls(ctx, f, pageSize(f.Limit))
	if err != nil {
		return nil, "", fmt.Errorf("list calls: %w", err)
	}
	return calls, nextCursor, nil
}

// pageSize is a requested page size within the limits of ListCalls.
func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return DefaultCallLimit
	case limit > MaxCallLimit:
		return MaxCallLimit
	}
	return limit
}

// eachCallPage is the page size of EachCall.
const eachCallPage = 1000

// EachCall calls fn for every record that matches f, newest first, with no
// page limit (f.Limit is ignored; f.Cursor, if set, is where it starts). It
// reads eachCallPage records at a time, so the whole set is never in
// memory, and no query is open while fn runs (fn may use the store). It
// stops at the first error of fn and returns it as is.
func (s *Store) EachCall(ctx context.Context, f CallFilter, fn func(*CallRecord) error) error {
	for {
		calls, next, err := s.listCalls(ctx, f, eachCallPage)
		if err != nil {
			return fmt.Errorf("each call: %w", err)
		}
		for i := range calls {
			if err := fn(&calls[i]); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		f.Cursor = next
	}
}

// callerPrefixProbe is how many matches of a caller prefix listCalls
// counts to choose its plan (see listCalls); a variable for tests.
var callerPrefixProbe = 10_000

// listCalls reads one page of limit records.
//
// Every filter with an index (number, caller, outcome, answered by,
// voicemail user, tag) reads its index in log order, so a page costs its
// own rows wherever it is. A caller prefix is a range of the caller index,
// not in log order, so the plan depends on how many calls match, which
// listCalls counts first (at most callerPrefixProbe, in the index alone):
// fewer, and their positions are read from the caller index and sorted,
// then only the page's rows fetched; more, and the log is read in order
// and filtered, which finds a page within about limit * calls/matches rows.
// Calls below a MOS (a range of the MOS index) are found the same way. The
// shape of each query leaves the planner no other choice, with or without
// statistics.
func (s *Store) listCalls(ctx context.Context, f CallFilter, limit int) (calls []CallRecord, nextCursor string, err error) {
	if f.Account == "" {
		return nil, "", errors.New("account is required")
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where = append(where, cond)
	}
	// Callers compare in byte order, the order of their index; written
	// as an expression, the comparison cannot use the index.
	caller, callerScan := "c.caller", "(c.caller || '')"
	if s.dialect == DialectPostgres {
		caller, callerScan = `c.caller COLLATE "C"`, `(c.caller || '') COLLATE "C"`
	}
	// With a tag, the log order is call_tags' (same start, same id).
	start, id := "c.start_us", "c.id"
	if f.Tag != "" {
		start, id = "t.start_us", "t.call_id"
	}
	var (
		cursorStart int64
		cursorID    string
	)
	if f.Cursor != "" {
		if cursorStart, cursorID, err = decodeCursor(f.Cursor); err != nil {
			return nil, "", err
		}
	}
	// span adds the time range and the cursor.
	span := func(start, id string) {
		if !f.From.IsZero() {
			add(start+" >= ?", f.From.UnixMicro())
		}
		if !f.To.IsZero() {
			add(start+" < ?", f.To.UnixMicro())
		}
		if f.Cursor != "" {
			// start <= ? bounds the index range on both databases; the
			// rest breaks the tie on start by id.
			add(start+" <= ? AND ("+start+" < ? OR "+id+" < ?)", cursorStart, cursorStart, cursorID)
		}
	}
	var lo, hi string
	if f.CallerPrefix != "" {
		if lo, hi, err = prefixRange(f.CallerPrefix); err != nil {
			return nil, "", err
		}
	}
	// few counts the matches of the conditions added so far, at most
	// callerPrefixProbe, and starts the conditions afresh.
	few := func() (bool, error) {
		var n int
		probe := `SELECT COUNT(*) FROM (SELECT 1 FROM calls c WHERE ` + strings.Join(where, " AND ") +
			` LIMIT ` + strconv.Itoa(callerPrefixProbe) + `) p`
		err := s.db.QueryRowContext(ctx, probe, args...).Scan(&n)
		where, args = nil, nil
		return n < callerPrefixProbe, err
	}
	byPrefix := false // the caller index finds the calls
	if f.CallerPrefix != "" && f.Tag == "" && f.Caller == "" {
		add("c.account = ?", f.Account)
		add(caller+" >= ?", lo)
		if hi != "" {
			add(caller+" < ?", hi)
		}
		span("c.start_us", "c.id")
		if byPrefix, err = few(); err != nil {
			return nil, "", err
		}
	}
	// The calls below a MOS are a range of the MOS index, not in log order
	// either: the same choice, by the same count. (Poor calls are usually
	// few; mos_below=4.5 is most answered calls.)
	byMOS := false // the MOS index finds the calls
	if f.MOSBelow > 0 && f.CallerPrefix == "" && f.Tag == "" && f.Caller == "" {
		add("c.account = ?", f.Account)
		add("c.mos < ?", f.MOSBelow)
		span("c.start_us", "c.id")
		if byMOS, err = few(); err != nil {
			return nil, "", err
		}
	}

	add("c.account = ?", f.Account)
	if f.Ended {
		add("c.end_us IS NOT NULL")
	}
	if f.Tag != "" {
		add("t.account = ? AND t.tag = ? AND c.id = t.call_id", f.Account, f.Tag)
	}
	span(start, id)
	// Of the equality filters with an index (number, caller, answered by,
	// outcome, usually in that order of selectivity) only the first given
	// is written so that it can use its index; the others are expressions
	// that filter its rows. Left a choice without statistics, SQLite may
	// read the outcome index instead: every rejected call of the account
	// to find a number's few.
	indexed := true
	eq := func(column, scan, v string) {
		if indexed {
			add(column+" = ?", v)
			indexed = false
			return
		}
		add(scan+" = ?", v)
	}
	if f.Number != "" {
		eq("c.number", "(c.number || '')", f.Number)
	}
	if f.Caller != "" {
		eq(caller, callerScan, f.Caller)
	}
	if f.CallerPrefix != "" {
		expr := callerScan
		if byPrefix {
			expr = caller
		}
		add(expr+" >= ?", lo)
		if hi != "" {
			add(expr+" < ?", hi)
		}
	}
	if f.AnsweredBy != "" {
		eq("c.answered_by", "(c.answered_by || '')", f.AnsweredBy)
	}
	if f.Outcome != "" {
		eq("c.outcome", "(c.outcome || '')", f.Outcome)
	}
	if f.HasRecording != nil {
		add(presence("c.recording", *f.HasRecording))
	}
	if f.HasVoicemail != nil {
		add(presence("c.voicemail", *f.HasVoicemail))
	}
	if f.VoicemailUser != "" {
		// voicemail <> '' as written here lets SQLite use the partial index.
		add("c.voicemail_user = ? AND c.voicemail <> ''", f.VoicemailUser)
	}
	if f.VoicemailHeard != nil {
		heard := 0
		if *f.VoicemailHeard {
			heard = 1
		}
		add("c.voicemail <> '' AND c.voicemail_heard = ?", heard)
	}
	if f.MOSBelow > 0 {
		// As an expression the comparison cannot use the MOS index: the
		// log is read in order and filtered.
		expr := "(c.mos + 0)"
		if byMOS {
			expr = "c.mos"
		}
		add(expr+" < ?", f.MOSBelow)
	}

	cond := strings.Join(where, " AND ")
	page := strconv.Itoa(limit + 1)
	var query string
	switch {
	case f.Tag != "":
		// CROSS JOIN fixes the join order on SQLite: call_tags first.
		query = `SELECT ` + cCallColumns + ` FROM call_tags t CROSS JOIN calls c WHERE ` + cond +
			` ORDER BY t.start_us DESC, t.call_id DESC LIMIT ` + page
	case byPrefix, byMOS:
		// A materialized CTE has no order to tempt the planner into
		// reading the log instead of the caller (or MOS) index.
		query = `WITH m AS MATERIALIZED (SELECT c.id, c.start_us FROM calls c WHERE ` + cond + `)
			SELECT ` + cCallColumns + ` FROM calls c
			WHERE c.id IN (SELECT id FROM m ORDER BY start_us DESC, id DESC LIMIT ` + page + `)
			ORDER BY c.start_us DESC, c.id DESC`
	default:
		query = `SELECT ` + cCallColumns + ` FROM calls c WHERE ` + cond +
			` ORDER BY c.start_us DESC, c.id DESC LIMIT ` + page
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(calls) > limit {
		calls = calls[:limit]
		last := calls[limit-1]
		nextCursor = encodeCursor(last.Start.UnixMicro(), last.ID)
	}
	return calls, nextCursor, nil
}

// presence is the condition that column is set (want) or empty.
func presence(column string, want bool) string {
	if want {
		return column + " <> ''"
	}
	return column + " = ''"
}

// prefixRange returns the range [lo, hi) of the strings that start with
// prefix, in byte order (which for UTF-8 is code point order): hi is the
// prefix with its last code point increased; "" when there is no upper
// bound.
func prefixRange(prefix string) (lo, hi string, err error) {
	if !utf8.ValidString(prefix) {
		return "", "", errors.New("caller prefix is not valid UTF-8")
	}
	if strings.ContainsRune(prefix, 0) {
		return "", "", errors.New("caller prefix contains a NUL")
	}
	r := []rune(prefix)
	for len(r) > 0 {
		last := r[len(r)-1]
		switch {
		case last == utf8.MaxRune:
			r = r[:len(r)-1]
			continue
		case last == 0xD7FF: // skip the surrogates, which UTF-8 cannot hold
			r[len(r)-1] = 0xE000
		default:
			r[len(r)-1] = last + 1
		}
		return prefix, string(r), nil
	}
	return prefix, "", nil
}

// SetVoicemailHeard marks the voicemail of the account's call as heard or
// not; ErrNotFound if the account has no such call with a voicemail.
func (s *Store) SetVoicemailHeard(ctx context.Context, account, callID string, heard bool) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE calls SET voicemail_heard = $1 WHERE account = $2 AND id = $3 AND voicemail <> ''`,
		boolInt(heard), account, callID)
	if err != nil {
		return fmt.Errorf("set voicemail heard of %s: %w", callID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set voicemail heard of %s: %w", callID, err)
	} else if n == 0 {
		return fmt.Errorf("set voicemail heard of %s: %w", callID, ErrNotFound)
	}
	return nil
}

// A cursor is the position of the last record of a page: its start and ID.
func encodeCursor(start int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(start, 10) + ":" + id))
}

func decodeCursor(cursor string) (start int64, id string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, "", ErrInvalidCursor
	}
	num, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" {
		return 0, "", ErrInvalidCursor
	}
	start, err = strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, "", ErrInvalidCursor
	}
	return start, id, nil
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

func scanCall(r scanner) (*CallRecord, error) {
	var (
		c                  CallRecord
		start, answer, end sql.NullInt64
		duration, recUS    int64
		heard              int64
		tags, trace        string
		quality            string
		mos                sql.NullFloat64
	)
	err := r.Scan(&c.ID, &c.Account, &c.Number, &c.Caller, &c.CallerName, &start, &answer, &end,
		&duration, &c.Outcome, &c.AnsweredBy, &c.HangupCause, &tags, &trace, &c.Recording, &c.Voicemail,
		&recUS, &c.RecordingBytes, &c.VoicemailUser, &heard, &quality, &mos, &c.Extension, &c.Direction, &c.Node)
	if err != nil {
		return nil, err
	}
	if mos.Valid {
		c.MOS = mos.Float64
	}
	if c.Quality, err = decodeQuality(quality); err != nil {
		return nil, fmt.Errorf("call %s quality: %w", c.ID, err)
	}
	c.VoicemailHeard = heard != 0
	c.Start, c.Answer, c.End = fromMicros(start), fromMicros(answer), fromMicros(end)
	c.Duration = time.Duration(duration) * time.Microsecond
	c.RecordingLength = time.Duration(recUS) * time.Microsecond
	if c.Tags, err = decodeList(tags); err != nil {
		return nil, fmt.Errorf("call %s tags: %w", c.ID, err)
	}
	if c.Trace, err = decodeList(trace); err != nil {
		return nil, fmt.Errorf("call %s trace: %w", c.ID, err)
	}
	return &c, nil
}

// decodeList reads a JSON list of strings; an empty list is nil.
func decodeList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}
