package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
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

// InsertCalls writes several call records in one transaction (see
// InsertCall): either all are written or none.
func (s *Store) InsertCalls(ctx context.Context, calls []*CallRecord) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		x := &txStmts{tx: tx}
		for _, c := range calls {
			if err := insertCall(ctx, x, c); err != nil {
				return fmt.Errorf("insert call %s: %w", c.ID, err)
			}
		}
		return nil
	})
	return err
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
	res, err := tx.ExecContext(ctx, `
		INSERT INTO calls (id, account, number, caller, caller_name, start_us, answer_us, end_us,
			duration_us, outcome, answered_by, hangup_cause, tags, trace, recording, voicemail,
			recording_us, recording_bytes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		ON CONFLICT (id) DO UPDATE SET
			number = excluded.number, caller = excluded.caller, caller_name = excluded.caller_name,
			start_us = excluded.start_us, answer_us = excluded.answer_us, end_us = excluded.end_us,
			duration_us = excluded.duration_us, outcome = excluded.outcome,
			answered_by = excluded.answered_by, hangup_cause = excluded.hangup_cause,
			tags = excluded.tags, trace = excluded.trace,
			recording = excluded.recording, voicemail = excluded.voicemail,
			recording_us = excluded.recording_us, recording_bytes = excluded.recording_bytes
		WHERE calls.account = excluded.account`,
		c.ID, c.Account, c.Number, c.Caller, c.CallerName,
		micros(c.Start), micros(c.Answer), micros(c.End), c.Duration.Microseconds(),
		c.Outcome, c.AnsweredBy, c.HangupCause, string(tags), string(trace), c.Recording, c.Voicemail,
		c.RecordingLength.Microseconds(), c.RecordingBytes)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errors.New("the id belongs to another account's call")
	}
	return writeCallTags(ctx, tx, c.ID, c.Tags)
}

// writeCallTags replaces the call's rows in call_tags.
func writeCallTags(ctx context.Context, tx *txStmts, id string, tags []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM call_tags WHERE call_id = $1`, id); err != nil {
		return err
	}
	seen := make(map[string]bool, len(tags))
	for _, tag := range tags {
		if seen[tag] {
			continue
		}
		seen[tag] = true
		if _, err := tx.ExecContext(ctx, `INSERT INTO call_tags (call_id, tag) VALUES ($1, $2)`, id, tag); err != nil {
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

const callColumns = `id, account, number, caller, caller_name, start_us, answer_us, end_us,
	duration_us, outcome, answered_by, hangup_cause, tags, trace, recording, voicemail,
	recording_us, recording_bytes`

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

// CallFilter selects call records for ListCalls. Empty fields match
// everything; Account is required.
type CallFilter struct {
	Account string
	From    time.Time // calls that started at or after From
	To      time.Time // calls that started before To
	Number  string    // the called number, exactly
	Caller  string    // the caller, exactly
	Outcome string
	Tag     string // calls that carry this tag
	Limit   int    // page size: DefaultCallLimit if 0, at most MaxCallLimit
	Cursor  string // the nextCursor of the previous page, "" for the first
}

// ListCalls returns the account's call records that match f, newest first,
// one page at a time. nextCursor is "" on the last page, otherwise it is
// passed as f.Cursor to get the next page; pages are stable while records
// are being added.
func (s *Store) ListCalls(ctx context.Context, f CallFilter) (calls []CallRecord, nextCursor string, err error) {
	if f.Account == "" {
		return nil, "", errors.New("list calls: account is required")
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultCallLimit
	case limit > MaxCallLimit:
		limit = MaxCallLimit
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
	add("account = ?", f.Account)
	if !f.From.IsZero() {
		add("start_us >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		add("start_us < ?", f.To.UnixMicro())
	}
	if f.Number != "" {
		add("number = ?", f.Number)
	}
	if f.Caller != "" {
		add("caller = ?", f.Caller)
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if f.Tag != "" {
		add("EXISTS (SELECT 1 FROM call_tags t WHERE t.call_id = calls.id AND t.tag = ?)", f.Tag)
	}
	if f.Cursor != "" {
		start, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list calls: %w", err)
		}
		add("(start_us < ? OR (start_us = ? AND id < ?))", start, start, id)
	}
	query := `SELECT ` + callColumns + ` FROM calls WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY start_us DESC, id DESC LIMIT ` + strconv.Itoa(limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list calls: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list calls: %w", err)
		}
		calls = append(calls, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list calls: %w", err)
	}
	if len(calls) > limit {
		calls = calls[:limit]
		last := calls[limit-1]
		nextCursor = encodeCursor(last.Start.UnixMicro(), last.ID)
	}
	return calls, nextCursor, nil
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
		tags, trace        string
	)
	err := r.Scan(&c.ID, &c.Account, &c.Number, &c.Caller, &c.CallerName, &start, &answer, &end,
		&duration, &c.Outcome, &c.AnsweredBy, &c.HangupCause, &tags, &trace, &c.Recording, &c.Voicemail,
		&recUS, &c.RecordingBytes)
	if err != nil {
		return nil, err
	}
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
