package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// WatchConfig reports configuration changes until ctx is done or the
// database fails. It first calls changed once for every account (the
// current versions), then again for each account whose version changes.
// It polls ConfigVersions every interval; on PostgreSQL it also LISTENs on
// ConfigChannel, so a change applied by any node is seen at once and the
// interval is only a safety net. changed runs on the caller's goroutine.
//
// It returns ctx's error, or a database error: callers run it in a loop,
// and since every start reports every account, nothing missed while it was
// down is lost.
func (s *Store) WatchConfig(ctx context.Context, interval time.Duration, changed func(account string, version int64)) error {
	if interval <= 0 {
		interval = time.Second
	}
	seen := make(map[string]int64)
	poll := func() error {
		versions, err := s.ConfigVersions(ctx)
		if err != nil {
			return err
		}
		accounts := make([]string, 0, len(versions))
		for a, v := range versions {
			if seen[a] != v {
				accounts = append(accounts, a)
			}
		}
		sort.Strings(accounts)
		for _, a := range accounts {
			seen[a] = versions[a]
			changed(a, versions[a])
		}
		return nil
	}
	if s.dialect == DialectPostgres {
		return s.listenConfig(ctx, interval, poll)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := poll(); err != nil {
			return fmt.Errorf("watch config: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// listenConfig runs poll after LISTEN (so that no change falls in between),
// then on every notification and at least every interval.
func (s *Store) listenConfig(ctx context.Context, interval time.Duration, poll func() error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", driverConn)
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+ConfigChannel); err != nil {
			return err
		}
		// The connection goes back to the pool: stop listening on it.
		defer func() {
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pc.Exec(uctx, "UNLISTEN "+ConfigChannel)
		}()
		for {
			if err := poll(); err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, interval)
			_, err := pc.WaitForNotification(wctx)
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
		}
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch config: %w", err)
	}
	return ctx.Err()
}
