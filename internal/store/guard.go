package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// GuardChannel is the PostgreSQL channel on which PutLockout announces a
// lockout to every node.
const GuardChannel = "switchboard_guard"

// AddAuthFailure records a failed authentication from source at at and
// returns how many failures source has had after since, this one included,
// on every node sharing the database.
func (s *Store) AddAuthFailure(ctx context.Context, source string, at, since time.Time) (int, error) {
	n, err := s.insertCount(ctx,
		`INSERT INTO auth_failures (source, at_us) VALUES ($1, $2)`,
		`SELECT count(*) FROM auth_failures WHERE source = $1 AND at_us > $3`,
		source, at.UnixMicro(), since.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("auth failure: %w", err)
	}
	return n, nil
}

// PutLockout locks source out until until (an existing later lockout
// stays), forgets its failures so far (they are spent on this lockout),
// and announces it on GuardChannel.
func (s *Store) PutLockout(ctx context.Context, source string, until time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO lockouts (source, until_us) VALUES ($1, $2)
			ON CONFLICT (source) DO UPDATE SET until_us = excluded.until_us
			WHERE lockouts.until_us < excluded.until_us`, source, until.UnixMicro()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_failures WHERE source = $1`, source); err != nil {
			return err
		}
		if s.Shared() {
			// Sent on commit, so a node that hears it can already read it.
			_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, GuardChannel, lockoutPayload(source, until))
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put lockout: %w", err)
	}
	return nil
}

// Lockouts returns the lockouts in force at now: source -> until.
func (s *Store) Lockouts(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT source, until_us FROM lockouts WHERE until_us > $1`, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("lockouts: %w", err)
	}
	defer rows.Close()
	locks := make(map[string]time.Time)
	for rows.Next() {
		var (
			source string
			until  int64
		)
		if err := rows.Scan(&source, &until); err != nil {
			return nil, fmt.Errorf("lockouts: %w", err)
		}
		locks[source] = time.UnixMicro(until)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lockouts: %w", err)
	}
	return locks, nil
}

// ListenLockouts calls fn with every lockout PutLockout announces, from any
// node (this one included), until ctx ends or the connection fails. On
// SQLite it just waits for ctx: a node is alone there.
func (s *Store) ListenLockouts(ctx context.Context, fn func(source string, until time.Time)) error {
	return s.listen(ctx, GuardChannel, func(payload string) {
		if source, until, ok := parseLockoutPayload(payload); ok {
			fn(source, until)
		}
	})
}

// lockoutPayload is "UNTIL_US SOURCE".
func lockoutPayload(source string, until time.Time) string {
	return strconv.FormatInt(until.UnixMicro(), 10) + " " + source
}

func parseLockoutPayload(p string) (string, time.Time, bool) {
	us, source, ok := strings.Cut(p, " ")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || source == "" {
		return "", time.Time{}, false
	}
	return source, time.UnixMicro(n), true
}

// ObserveCall records a call from caller to account at at and returns how
// many calls the caller placed to the account after since, this one
// included, on every node; the count saturates at limit.
func (s *Store) ObserveCall(ctx context.Context, account, caller string, at, since time.Time, limit int) (int, error) {
	n, err := s.insertCount(ctx,
		`INSERT INTO flood_calls (account, caller, at_us) VALUES ($1, $2, $3)`,
		`SELECT count(*) FROM (SELECT 1 FROM flood_calls
			WHERE account = $1 AND caller = $2 AND at_us > $4 LIMIT $5) AS f`,
		account, caller, at.UnixMicro(), since.UnixMicro(), limit)
	if err != nil {
		return 0, fmt.Errorf("observe call: %w", err)
	}
	return min(n, limit), nil
}

// CountCalls returns how many calls the caller placed to the account after
// since, on every node, saturating at limit.
func (s *Store) CountCalls(ctx context.Context, account, caller string, since time.Time, limit int) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM flood_calls
		WHERE account = $1 AND caller = $2 AND at_us > $3 LIMIT $4) AS f`,
		account, caller, since.UnixMicro(), limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count calls: %w", err)
	}
	return n, nil
}

// SweepGuard deletes the failures and calls from before before and the
// lockouts that ended by now.
func (s *Store) SweepGuard(ctx context.Context, before, now time.Time) error {
	for _, q := range []struct {
		query string
		arg   int64
	}{
		{`DELETE FROM auth_failures WHERE at_us <= $1`, before.UnixMicro()},
		{`DELETE FROM flood_calls WHERE at_us <= $1`, before.UnixMicro()},
		{`DELETE FROM lockouts WHERE until_us <= $1`, now.UnixMicro()},
	} {
		if _, err := s.db.ExecContext(ctx, q.query, q.arg); err != nil {
			return fmt.Errorf("sweep guard: %w", err)
		}
	}
	return nil
}

// insertCount runs insert and then count, whose rows include the inserted
// one, with args shared by both (each uses those it names). On PostgreSQL
// it is one statement, one round trip: a count in a statement does not see
// the rows its own WITH inserts, so the new row is added to it there. On
// SQLite (one node, no data-modifying WITH) it is a transaction.
func (s *Store) insertCount(ctx context.Context, insert, count string, args ...any) (int, error) {
	var n int
	if s.Shared() {
		err := s.db.QueryRowContext(ctx, `WITH ins AS (`+insert+`) SELECT (`+count+`) + 1`, args...).Scan(&n)
		return n, err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insert, sqliteArgs(insert, args)...); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, count, sqliteArgs(count, args)...).Scan(&n)
	})
	return n, err
}

// sqliteArgs returns args for a query that names only some of them: SQLite
// refuses more arguments than the query has placeholders, but numbered
// ones ($3) keep their number, so the unnamed ones are passed as NULL up
// to the highest one named.
func sqliteArgs(query string, args []any) []any {
	hi := 0
	for i := range args {
		if strings.Contains(query, "$"+strconv.Itoa(i+1)) {
			hi = i + 1
		}
	}
	return args[:hi]
}
