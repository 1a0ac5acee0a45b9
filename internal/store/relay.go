package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// LiveChannel is the PostgreSQL channel on which nodes relay their live
// events (the SSE streams) to each other.
const LiveChannel = "switchboard_live"

// MaxNotifyPayload is the largest payload PostgreSQL's NOTIFY takes
// (8000 bytes by default), less a margin.
const MaxNotifyPayload = 7900

// Shared reports whether other nodes can share this database (PostgreSQL):
// on SQLite a node is alone.
func (s *Store) Shared() bool { return s.dialect == DialectPostgres }

// NotifyLive sends payload to every node listening with ListenLive.
func (s *Store) NotifyLive(ctx context.Context, payload string) error {
	if !s.Shared() {
		return nil
	}
	_, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, LiveChannel, payload)
	return err
}

// ListenLive calls fn with every payload sent by NotifyLive, from any node
// (this one included), until ctx ends or the connection fails. On SQLite it
// just waits for ctx.
func (s *Store) ListenLive(ctx context.Context, fn func(payload string)) error {
	return s.listen(ctx, LiveChannel, fn)
}

// listen calls fn with every payload NOTIFYed on channel, until ctx ends or
// the connection fails. On SQLite it just waits for ctx.
func (s *Store) listen(ctx context.Context, channel string, fn func(payload string)) error {
	if !s.Shared() {
		<-ctx.Done()
		return ctx.Err()
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", driverConn)
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+channel); err != nil {
			return err
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pc.Exec(uctx, "UNLISTEN "+channel)
		}()
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			fn(n.Payload)
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("listen %s: %w", channel, err)
	}
	return err
}
