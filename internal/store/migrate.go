package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrations are numbered files, migrations/NNNN_name.sql, applied in order;
// each applied one is recorded in schema_migrations. A migration, once
// released, is never edited: changes go into a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations, sorted by version.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "migrations/"), ".sql")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number", n)
		}
		body, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a number", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the pending migrations in one transaction. On PostgreSQL
// an advisory lock keeps nodes that start together from racing; on SQLite
// the transaction's immediate lock does the same.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	return s.applyMigrations(ctx, ms)
}

// applyMigrations applies those of ms (sorted) that the database lacks;
// tests use it to build a database at an older version.
func (s *Store) applyMigrations(ctx context.Context, ms []migration) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.dialect == DialectPostgres {
			// An arbitrary constant: "sb" in ASCII.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(29538)`); err != nil {
				return fmt.Errorf("lock migrations: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_us BIGINT NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if n := len(ms); n > 0 && current > ms[n-1].version {
			return fmt.Errorf("database schema version %d is newer than this program's (%d)", current, ms[n-1].version)
		}
		for _, m := range ms {
			if m.version <= current {
				continue
			}
			if _, err := tx.ExecContext(ctx, s.dialectSQL(m.sql)); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, name, applied_us) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// dialectSQL adapts a migration to the database. Migrations are written
// once for both, in PostgreSQL's spelling where the two differ: byte-order
// collation (COLLATE "C", SQLite's default COLLATE BINARY) and the position
// of a substring (strpos, SQLite's instr, with the same arguments).
func (s *Store) dialectSQL(query string) string {
	if s.dialect == DialectSQLite {
		return strings.NewReplacer(`COLLATE "C"`, `COLLATE BINARY`, `strpos(`, `instr(`).Replace(query)
	}
	return query
}
