package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// ApplyConfig replaces the account's whole configuration with doc in one
// transaction and returns the new version (1 for a new account). Secrets
// that doc leaves as config.Redacted are filled in, in doc itself, from the
// stored document; a redacted secret with nothing stored to keep is an
// error. The caller validates doc first. On PostgreSQL the change is
// announced on ConfigChannel with the account name as payload.
func (s *Store) ApplyConfig(ctx context.Context, doc *config.Document) (version int64, err error) {
	if doc == nil || doc.Account == "" {
		return 0, errors.New("apply config: document has no account")
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		old, _, err := s.loadConfig(ctx, tx, doc.Account, true)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := keepSecrets(doc, old); err != nil {
			return err
		}
		version, err = s.storeConfig(ctx, tx, doc)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("apply config of %s: %w", doc.Account, err)
	}
	return version, nil
}

// UpdateConfig is a read-modify-write of the account's configuration in one
// transaction, for API edits: edit receives the stored document (secrets
// included) and changes it in place; if edit returns an error nothing is
// written and the error is returned as is. It returns the new version, or
// ErrNotFound for an unknown account. Concurrent edits are serialized, so
// none is lost.
func (s *Store) UpdateConfig(ctx context.Context, account string, edit func(*config.Document) error) (version int64, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		doc, _, err := s.loadConfig(ctx, tx, account, true)
		if err != nil {
			return fmt.Errorf("update config of %s: %w", account, err)
		}
		if err := edit(doc); err != nil {
			return err
		}
		if doc.Account != account {
			return fmt.Errorf("update config of %s: the account name cannot be changed", account)
		}
		version, err = s.storeConfig(ctx, tx, doc)
		if err != nil {
			return fmt.Errorf("update config of %s: %w", account, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// storeConfig writes doc as its account's new version and announces it.
func (s *Store) storeConfig(ctx context.Context, tx *sql.Tx, doc *config.Document) (version int64, err error) {
	body, err := json.Marshal(doc)
	if err != nil {
		return 0, fmt.Errorf("encode config: %w", err)
	}
	err = tx.QueryRowContext(ctx, `
		INSERT INTO account_configs (account, version, document, updated_us)
		VALUES ($1, 1, $2, $3)
		ON CONFLICT (account) DO UPDATE
		SET version = account_configs.version + 1,
		    document = excluded.document,
		    updated_us = excluded.updated_us
		RETURNING version`,
		doc.Account, string(body), time.Now().UnixMicro()).Scan(&version)
	if err != nil {
		return 0, fmt.Errorf("store config: %w", err)
	}
	return version, s.notifyConfig(ctx, tx, doc.Account)
}

// keepSecrets fills doc's redacted secrets from old, and refuses a redacted
// secret that has no stored value to keep: storing the placeholder itself
// would make "<redacted>" a password.
func keepSecrets(doc, old *config.Document) error {
	var missing []string
	for name, u := range doc.Users {
		if u.Password == config.Redacted && (old == nil || old.Users[name].Password == "") {
			missing = append(missing, "users."+name+".password")
		}
	}
	for name, t := range doc.Trunks {
		if t.Password == config.Redacted && (old == nil || old.Trunks[name].Password == "") {
			missing = append(missing, "trunks."+name+".password")
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%s: secret is %s but no stored secret to keep", strings.Join(missing, ", "), config.Redacted)
	}
	doc.KeepSecrets(old)
	return nil
}

// notifyConfig tells every node listening on PostgreSQL that the account's
// configuration changed; the notification is delivered on commit.
func (s *Store) notifyConfig(ctx context.Context, tx *sql.Tx, account string) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, ConfigChannel, account); err != nil {
		return fmt.Errorf("notify config change: %w", err)
	}
	return nil
}

// LoadConfig returns the account's stored configuration, secrets included,
// and its version. It returns ErrNotFound for an unknown account.
func (s *Store) LoadConfig(ctx context.Context, account string) (*config.Document, int64, error) {
	doc, version, err := s.loadConfig(ctx, s.db, account, false)
	if err != nil {
		return nil, 0, fmt.Errorf("load config of %s: %w", account, err)
	}
	return doc, version, nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// loadConfig reads one account's document. forUpdate locks the row on
// PostgreSQL until the transaction ends (SQLite's transactions already hold
// the write lock).
func (s *Store) loadConfig(ctx context.Context, q querier, account string, forUpdate bool) (*config.Document, int64, error) {
	query := `SELECT document, version FROM account_configs WHERE account = $1`
	if forUpdate && s.dialect == DialectPostgres {
		query += ` FOR UPDATE`
	}
	var (
		body    string
		version int64
	)
	switch err := q.QueryRowContext(ctx, query, account).Scan(&body, &version); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, 0, ErrNotFound
	case err != nil:
		return nil, 0, err
	}
	var doc config.Document
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, 0, fmt.Errorf("decode stored config: %w", err)
	}
	return &doc, version, nil
}

// Accounts lists the accounts that have a configuration, sorted by name.
func (s *Store) Accounts(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT account FROM account_configs ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var accounts []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		accounts = append(accounts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return accounts, nil
}

// ConfigVersions returns every account's configuration version, so that a
// node can poll for changes where there is no NOTIFY (SQLite).
func (s *Store) ConfigVersions(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT account, version FROM account_configs`)
	if err != nil {
		return nil, fmt.Errorf("config versions: %w", err)
	}
	defer rows.Close()
	versions := make(map[string]int64)
	for rows.Next() {
		var (
			a string
			v int64
		)
		if err := rows.Scan(&a, &v); err != nil {
			return nil, fmt.Errorf("config versions: %w", err)
		}
		versions[a] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("config versions: %w", err)
	}
	return versions, nil
}
