// Package store keeps Switchboard's state in a SQL database: the accounts'
// configuration documents, rotating counters, call records, registered
// contacts, the reputation list and API tokens (SPEC §8).
//
// The same schema, migrations and SQL ($1-style placeholders) serve the
// embedded SQLite database (modernc.org/sqlite, no cgo) and PostgreSQL
// (pgx through database/sql), so that any number of nodes can share one
// PostgreSQL database. Times are stored as BIGINT Unix microseconds, lists
// as JSON text; the schema is in migrations/.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// DefaultURL is the database used when none is given: an SQLite file beside
// the working directory.
const DefaultURL = "sqlite:./switchboard-data/switchboard.db"

// Dialects returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// ConfigChannel is the PostgreSQL NOTIFY channel on which ApplyConfig
// announces the account whose configuration changed.
const ConfigChannel = "switchboard_config"

// busyTimeout is how long an SQLite connection waits for another writer
// before it gives up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is a handle on the database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect string
}

// Open connects to the database named by url and applies any pending
// migrations. Accepted forms:
//
//	sqlite:PATH             a file (PATH relative to the working directory or
//	                        absolute), created with its directory on first use
//	sqlite::memory:         a private in-memory database (tests)
//	postgres://... or postgresql://...
func Open(ctx context.Context, url string) (*Store, error) {
	var (
		s   *Store
		err error
	)
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		s, err = openSQLite(strings.TrimPrefix(url, "sqlite:"))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		s, err = openPostgres(url)
	default:
		return nil, fmt.Errorf("unsupported database url %q: use sqlite:PATH or postgres://user@host/db", redactURL(url))
	}
	if err != nil {
		return nil, err
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to %s: %w", redactURL(url), err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(path string) (*Store, error) {
	// sqlite:///abs/path is read as /abs/path, sqlite://rel as rel.
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return nil, fmt.Errorf("sqlite url has no path: use sqlite:PATH")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite path %q must not contain '?'", path)
	}
	memory := path == ":memory:"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
		// The database holds SIP passwords: create it readable by its
		// owner only (SQLite gives the -wal and -shm files the same mode).
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create database file: %w", err)
		}
		f.Close()
	}
	// Every transaction starts with BEGIN IMMEDIATE so that a
	// read-modify-write never has to upgrade its lock (which fails with
	// SQLITE_BUSY without waiting); busy_timeout makes writers queue.
	dsn := fmt.Sprintf("%s?_txlock=immediate&_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)",
		path, busyTimeout.Milliseconds())
	if !memory {
		dsn += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if memory {
		// Each connection to :memory: is a database of its own: keep one.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	}
	return &Store{db: db, dialect: DialectSQLite}, nil
}

func openPostgres(url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redactURL(url), err)
	}
	return &Store{db: db, dialect: DialectPostgres}, nil
}

// redactURL hides a password in a database URL for error messages.
func redactURL(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return url
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return url
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// inTx runs fn in a transaction and commits it if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// micros encodes a time for a BIGINT column; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros decodes a BIGINT column written by micros.
func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// conds collects the conditions of a WHERE clause joined by AND, each ? in
// them numbered as the next $N placeholder.
type conds struct {
	where []string
	args  []any
}

func (c *conds) add(cond string, vals ...any) {
	for _, v := range vals {
		cond = strings.Replace(cond, "?", c.arg(v), 1)
	}
	c.where = append(c.where, cond)
}

// arg adds a value and returns its placeholder.
func (c *conds) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

func (c *conds) sql() string { return strings.Join(c.where, " AND ") }
