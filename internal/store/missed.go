package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Missed reports whether the call is one of the missed-call ledger's: it
// reached an extension or a user (Extension) and nobody answered it — a
// member of a group answering, a transfer or a pickup from a park orbit are
// answers; a call a rule rejected never reached anyone; a voicemail left is
// a voicemail, not a missed call (one where the caller hung up before
// leaving a message is missed). Only a finished record (End set) is.
func (c *CallRecord) Missed() bool {
	if c.End.IsZero() || c.Extension == "" || c.AnsweredBy != "" || c.Voicemail != "" {
		return false
	}
	return c.Outcome == "routed" || c.Outcome == "forwarded"
}

// MissedCall is an entry of the ledger.
type MissedCall struct {
	CallID     string
	Account    string
	Number     string
	Extension  string
	Caller     string
	CallerName string
	Start      time.Time
	// Resolved is when it was dealt with (zero: open), and ResolvedBy how:
	// "call:ID", the later answered call between the same two parties, or
	// "owner" (ResolveMissed).
	Resolved   time.Time
	ResolvedBy string
}

// ResolvedByOwner is MissedCall.ResolvedBy for an entry an owner marked done.
const ResolvedByOwner = "owner"

// MissedFilter selects entries of the ledger.
type MissedFilter struct {
	Account   string
	Number    string // exactly
	Extension string // exactly, as the record has it ("support", "user:alice")
	CallID    string // the one entry of this call
	// Open selects the open entries (true) or the resolved ones (false);
	// nil: both.
	Open   *bool
	Limit  int    // page size: DefaultCallLimit if 0, at most MaxCallLimit
	Cursor string // the nextCursor of the previous page
}

// noteMissed keeps the ledger in step with a finished record, in its
// transaction: a missed call gets its entry; an answered one resolves the
// open entries between the same two parties that started before it —
// an inbound or internal call those of its caller to its number, an
// outbound call (the business calling back) every entry of the number it
// dialled, whichever of the account's numbers that caller had called.
func noteMissed(ctx context.Context, x *txStmts, c *CallRecord) error {
	if c.End.IsZero() {
		return nil
	}
	if c.Missed() {
		_, err := x.ExecContext(ctx, `
			INSERT INTO missed_calls (call_id, account, number, extension, caller, caller_name, start_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (call_id) DO NOTHING`,
			c.ID, c.Account, c.Number, c.Extension, c.Caller, c.CallerName, c.Start.UnixMicro())
		return err
	}
	if c.AnsweredBy == "" {
		return nil
	}
	var err error
	by, at := "call:"+c.ID, c.End.UnixMicro()
	switch c.Direction {
	case DirectionOutbound:
		_, err = x.ExecContext(ctx, `
			UPDATE missed_calls SET resolved_us = $1, resolved_by = $2
			WHERE account = $3 AND caller = $4 AND resolved_us IS NULL AND start_us < $5`,
			at, by, c.Account, c.Number, c.Start.UnixMicro())
	default:
		if c.Caller == "" || c.Caller == "anonymous" {
			return nil // a withheld caller is no party to match
		}
		_, err = x.ExecContext(ctx, `
			UPDATE missed_calls SET resolved_us = $1, resolved_by = $2
			WHERE account = $3 AND caller = $4 AND number = $5 AND resolved_us IS NULL AND start_us < $6`,
			at, by, c.Account, c.Caller, c.Number, c.Start.UnixMicro())
	}
	return err
}

// Missed lists the account's missed calls that match f, newest first, one
// page at a time (nextCursor as ListCalls's).
func (s *Store) Missed(ctx context.Context, f MissedFilter) (list []MissedCall, nextCursor string, err error) {
	if f.Account == "" {
		return nil, "", errors.New("list missed calls: account is required")
	}
	limit := pageSize(f.Limit)
	var w conds
	w.add("account = ?", f.Account)
	if f.Number != "" {
		w.add("number = ?", f.Number)
	}
	if f.Extension != "" {
		w.add("extension = ?", f.Extension)
	}
	if f.CallID != "" {
		w.add("call_id = ?", f.CallID)
	}
	if f.Open != nil {
		if *f.Open {
			w.add("resolved_us IS NULL")
		} else {
			w.add("resolved_us IS NOT NULL")
		}
	}
	if f.Cursor != "" {
		start, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		w.add("start_us <= ? AND (start_us < ? OR call_id < ?)", start, start, id)
	}
	limitArg := w.arg(limit + 1)
	rows, err := s.db.QueryContext(ctx, `
		SELECT call_id, account, number, extension, caller, caller_name, start_us, resolved_us, resolved_by
		FROM missed_calls WHERE `+w.sql()+`
		ORDER BY start_us DESC, call_id DESC LIMIT `+limitArg, w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list missed calls: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m        MissedCall
			start    int64
			resolved sql.NullInt64
		)
		if err := rows.Scan(&m.CallID, &m.Account, &m.Number, &m.Extension, &m.Caller, &m.CallerName,
			&start, &resolved, &m.ResolvedBy); err != nil {
			return nil, "", fmt.Errorf("list missed calls: %w", err)
		}
		m.Start, m.Resolved = time.UnixMicro(start), fromMicros(resolved)
		list = append(list, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list missed calls: %w", err)
	}
	if len(list) > limit {
		list = list[:limit]
		last := list[limit-1]
		nextCursor = encodeCursor(last.Start.UnixMicro(), last.CallID)
	}
	return list, nextCursor, nil
}

// ResolveMissed marks the account's missed call done by its owner at at.
// An entry resolved already stays as it was; ErrNotFound when the call is
// not in the account's ledger.
func (s *Store) ResolveMissed(ctx context.Context, account, callID string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `
		UPDATE missed_calls SET resolved_us = $1, resolved_by = $2
		WHERE account = $3 AND call_id = $4 AND resolved_us IS NULL`,
		at.UnixMicro(), ResolvedByOwner, account, callID)
	if err != nil {
		return fmt.Errorf("resolve missed call %s: %w", callID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("resolve missed call %s: %w", callID, err)
	} else if n > 0 {
		return nil
	}
	var one int
	err = s.db.QueryRowContext(ctx, `SELECT 1 FROM missed_calls WHERE account = $1 AND call_id = $2`,
		account, callID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("resolve missed call %s: %w", callID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("resolve missed call %s: %w", callID, err)
	}
	return nil
}
