package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// SetReputation puts a caller on the account's reputation list at level;
// LevelNone takes the caller off it.
func (s *Store) SetReputation(ctx context.Context, account, caller string, level config.Level) error {
	if level > config.LevelHigh {
		return fmt.Errorf("set reputation of %s: invalid level %d", caller, level)
	}
	var err error
	if level == config.LevelNone {
		_, err = s.db.ExecContext(ctx,
			`DELETE FROM reputation WHERE account = $1 AND caller = $2`, account, caller)
	} else {
		_, err = s.db.ExecContext(ctx, `
			INSERT INTO reputation (account, caller, level, updated_us) VALUES ($1, $2, $3, $4)
			ON CONFLICT (account, caller) DO UPDATE SET level = excluded.level, updated_us = excluded.updated_us`,
			account, caller, level.String(), time.Now().UnixMicro())
	}
	if err != nil {
		return fmt.Errorf("set reputation of %s: %w", caller, err)
	}
	return nil
}

// Reputation returns the caller's level on the account's list, LevelNone if
// the caller is not on it.
func (s *Store) Reputation(ctx context.Context, account, caller string) (config.Level, error) {
	var name string
	err := s.db.QueryRowContext(ctx,
		`SELECT level FROM reputation WHERE account = $1 AND caller = $2`, account, caller).Scan(&name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return config.LevelNone, nil
	case err != nil:
		return config.LevelNone, fmt.Errorf("reputation of %s: %w", caller, err)
	}
	level, err := config.ParseLevel(name)
	if err != nil {
		return config.LevelNone, fmt.Errorf("reputation of %s: stored level: %w", caller, err)
	}
	return level, nil
}

// Reputations returns the account's whole reputation list: caller -> level.
func (s *Store) Reputations(ctx context.Context, account string) (map[string]config.Level, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT caller, level FROM reputation WHERE account = $1`, account)
	if err != nil {
		return nil, fmt.Errorf("reputation list of %s: %w", account, err)
	}
	defer rows.Close()
	list := make(map[string]config.Level)
	for rows.Next() {
		var caller, name string
		if err := rows.Scan(&caller, &name); err != nil {
			return nil, fmt.Errorf("reputation list of %s: %w", account, err)
		}
		level, err := config.ParseLevel(name)
		if err != nil {
			return nil, fmt.Errorf("reputation list of %s: stored level of %s: %w", account, caller, err)
		}
		list[caller] = level
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reputation list of %s: %w", account, err)
	}
	return list, nil
}
