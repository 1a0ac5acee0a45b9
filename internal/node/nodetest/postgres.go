package nodetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// DefaultPostgres is the PostgreSQL of the test machines; set
// SWITCHBOARD_TEST_POSTGRES to use another.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var (
	adminOnce sync.Once
	adminDB   *sql.DB
	adminErr  error
)

// PostgresURL creates a fresh schema for the test on the test PostgreSQL,
// dropped when the test ends, and returns a URL whose connections use it.
// The test fails when PostgreSQL is unreachable: it is required.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SWITCHBOARD_TEST_POSTGRES")
	if base == "" {
		base = DefaultPostgres
	}
	adminOnce.Do(func() {
		if adminDB, adminErr = sql.Open("pgx", base); adminErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		adminErr = adminDB.PingContext(ctx)
	})
	if adminErr != nil {
		t.Fatalf("PostgreSQL is unreachable (SWITCHBOARD_TEST_POSTGRES): %v", adminErr)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sbnode_" + hex.EncodeToString(b)
	if _, err := adminDB.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	// Registered before Run's cleanup, so it runs after the node stopped.
	t.Cleanup(func() {
		if _, err := adminDB.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SWITCHBOARD_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// EachDB runs f as a subtest on a fresh SQLite database and on a fresh
// PostgreSQL schema.
func EachDB(t *testing.T, f func(t *testing.T, db string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "sqlite:"+filepath.Join(t.TempDir(), "switchboard.db")) })
	t.Run("postgres", func(t *testing.T) { f(t, PostgresURL(t)) })
}
