package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// NextRotation returns the extension's rotating counter and advances it by
// one, atomically: the first call returns 0, the next 1, and so on. Nodes
// sharing a database never get the same value. It is one statement, so on
// SQLite it only waits for the write lock, never fails for it.
func (s *Store) NextRotation(ctx context.Context, account, extension string) (uint64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `
		INSERT INTO rotations (account, extension, value) VALUES ($1, $2, 1)
		ON CONFLICT (account, extension) DO UPDATE SET value = rotations.value + 1
		RETURNING value - 1`,
		account, extension).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("advance rotation of %s/%s: %w", account, extension, err)
	}
	return uint64(v), nil
}

// PeekRotation returns the value NextRotation would return, without
// advancing the counter: 0 for a counter never advanced.
func (s *Store) PeekRotation(ctx context.Context, account, extension string) (uint64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx,
		`SELECT value FROM rotations WHERE account = $1 AND extension = $2`,
		account, extension).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read rotation of %s/%s: %w", account, extension, err)
	}
	return uint64(v), nil
}
