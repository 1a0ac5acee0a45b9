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

// ConfigVersion is one stored version of an account's configuration.
type ConfigVersion struct {
	Account string
	Version int64
	Author  string // who wrote it: a token name, "cli", "api", ...
	Created time.Time
}

// Change says who writes a configuration and which version the write
// expects.
type Change struct {
	// Author is recorded with the version: a token name, "cli", "api", ...;
	// "" is "cli".
	Author string
	// IfVersion, when > 0, makes the write fail with ErrVersionMismatch
	// unless the stored version is this one. 0 means no check.
	IfVersion int64
}

func (ch Change) author() string {
	if ch.Author == "" {
		return "cli"
	}
	return ch.Author
}

// ApplyConfig replaces the account's whole configuration with doc in one
// transaction and returns the new version (1 for a new account). Secrets
// that doc leaves as config.Redacted are filled in, in doc itself, from the
// stored document; a redacted secret with nothing stored to keep is an
// error. The caller validates doc first. On PostgreSQL the change is
// announced on ConfigChannel with the account name as payload. It is
// PutConfig by the author "cli".
func (s *Store) ApplyConfig(ctx context.Context, doc *config.Document) (version int64, err error) {
	return s.PutConfig(ctx, doc, Change{Author: "cli"})
}

// PutConfig is ApplyConfig with an author, kept in the history, and an
// optional expected version: with ch.IfVersion > 0 it returns
// ErrVersionMismatch, and writes nothing, unless the stored version is
// ch.IfVersion (an unknown account has none, so it fails too). The check
// and the write are one transaction, with the account's row locked, so no
// concurrent write is lost.
func (s *Store) PutConfig(ctx context.Context, doc *config.Document, ch Change) (version int64, err error) {
	if doc == nil || doc.Account == "" {
		return 0, errors.New("apply config: document has no account")
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		old, oldVersion, err := s.loadConfig(ctx, tx, doc.Account, true)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if ch.IfVersion > 0 && oldVersion != ch.IfVersion {
			return versionMismatch(ch.IfVersion, oldVersion)
		}
		if err := keepSecrets(doc, old); err != nil {
			return err
		}
		version, err = s.storeConfig(ctx, tx, doc, ch.author())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("apply config of %s: %w", doc.Account, err)
	}
	return version, nil
}

func versionMismatch(want, stored int64) error {
	if stored == 0 {
		return fmt.Errorf("%w: version %d expected, the account has none", ErrVersionMismatch, want)
	}
	return fmt.Errorf("%w: version %d expected, %d stored", ErrVersionMismatch, want, stored)
}

// UpdateConfig is a read-modify-write of the account's configuration in one
// transaction, for API edits: edit receives the stored document (secrets
// included) and changes it in place; if edit returns an error nothing is
// written and the error is returned as is. It returns the new version, or
// ErrNotFound for an unknown account. Concurrent edits are serialized, so
// none is lost. It is EditConfig by the author "api".
func (s *Store) UpdateConfig(ctx context.Context, account string, edit func(*config.Document) error) (version int64, err error) {
	return s.EditConfig(ctx, account, Change{Author: "api"}, func(doc *config.Document, _ int64) error {
		return edit(doc)
	})
}

// EditConfig is UpdateConfig with an author and an optional expected
// version: edit receives the stored document (secrets included) and its
// version. With ch.IfVersion > 0 and another version stored it returns
// ErrVersionMismatch without calling edit. A secret that edit sets to
// config.Redacted keeps its stored value, as with ApplyConfig.
func (s *Store) EditConfig(ctx context.Context, account string, ch Change, edit func(doc *config.Document, version int64) error) (version int64, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		body, stored, err := s.loadConfigBody(ctx, tx, account, true)
		if err != nil {
			return fmt.Errorf("update config of %s: %w", account, err)
		}
		if ch.IfVersion > 0 && stored != ch.IfVersion {
			return fmt.Errorf("update config of %s: %w", account, versionMismatch(ch.IfVersion, stored))
		}
		doc, err := decodeConfig(body)
		if err != nil {
			return fmt.Errorf("update config of %s: %w", account, err)
		}
		if err := edit(doc, stored); err != nil {
			return err
		}
		if doc.Account != account {
			return fmt.Errorf("update config of %s: the account name cannot be changed", account)
		}
		if hasRedacted(doc) {
			// edit changed doc in place: the stored secrets come from a
			// second copy.
			old, err := decodeConfig(body)
			if err != nil {
				return fmt.Errorf("update config of %s: %w", account, err)
			}
			if err := keepSecrets(doc, old); err != nil {
				return fmt.Errorf("update config of %s: %w", account, err)
			}
		}
		version, err = s.storeConfig(ctx, tx, doc, ch.author())
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

// hasRedacted reports whether a secret of doc is config.Redacted.
func hasRedacted(doc *config.Document) bool {
	for _, u := range doc.Users {
		if u.Password == config.Redacted {
			return true
		}
	}
	for _, t := range doc.Trunks {
		if t.Password == config.Redacted {
			return true
		}
	}
	return false
}

// storeConfig writes doc as its account's new version, adds it to the
// history and announces it.
func (s *Store) storeConfig(ctx context.Context, tx *sql.Tx, doc *config.Document, author string) (version int64, err error) {
	body, err := json.Marshal(doc)
	if err != nil {
		return 0, fmt.Errorf("encode config: %w", err)
	}
	now := time.Now().UnixMicro()
	err = tx.QueryRowContext(ctx, `
		INSERT INTO account_configs (account, version, document, updated_us)
		VALUES ($1, 1, $2, $3)
		ON CONFLICT (account) DO UPDATE
		SET version = account_configs.version + 1,
		    document = excluded.document,
		    updated_us = excluded.updated_us
		RETURNING version`,
		doc.Account, string(body), now).Scan(&version)
	if err != nil {
		return 0, fmt.Errorf("store config: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO config_versions (account, version, document, author, created_us)
		VALUES ($1, $2, $3, $4, $5)`,
		doc.Account, version, string(body), author, now); err != nil {
		return 0, fmt.Errorf("store config history: %w", err)
	}
	return version, s.notifyConfig(ctx, tx, doc.Account)
}

// ConfigHistory lists the account's stored configuration versions, newest
// first; ErrNotFound for an unknown account. The history of an account
// configured before it was kept starts with the version current then.
func (s *Store) ConfigHistory(ctx context.Context, account string) ([]ConfigVersion, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT version, author, created_us FROM config_versions
		WHERE account = $1 ORDER BY version DESC`, account)
	if err != nil {
		return nil, fmt.Errorf("config history of %s: %w", account, err)
	}
	defer rows.Close()
	var versions []ConfigVersion
	for rows.Next() {
		v := ConfigVersion{Account: account}
		var created sql.NullInt64
		if err := rows.Scan(&v.Version, &v.Author, &created); err != nil {
			return nil, fmt.Errorf("config history of %s: %w", account, err)
		}
		v.Created = fromMicros(created)
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("config history of %s: %w", account, err)
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("config history of %s: %w", account, ErrNotFound)
	}
	return versions, nil
}

// ConfigAt returns one stored version of the account's configuration,
// secrets included; ErrNotFound for an unknown account or version.
func (s *Store) ConfigAt(ctx context.Context, account string, version int64) (*config.Document, ConfigVersion, error) {
	v := ConfigVersion{Account: account, Version: version}
	var (
		body    string
		created sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT document, author, created_us FROM config_versions
		WHERE account = $1 AND version = $2`, account, version).Scan(&body, &v.Author, &created)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, ConfigVersion{}, fmt.Errorf("config %s version %d: %w", account, version, err)
	}
	v.Created = fromMicros(created)
	doc, err := decodeConfig(body)
	if err != nil {
		return nil, ConfigVersion{}, fmt.Errorf("config %s version %d: %w", account, version, err)
	}
	return doc, v, nil
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
	body, version, err := s.loadConfigBody(ctx, q, account, forUpdate)
	if err != nil {
		return nil, 0, err
	}
	doc, err := decodeConfig(body)
	if err != nil {
		return nil, 0, err
	}
	return doc, version, nil
}

// loadConfigBody is loadConfig without decoding the document.
func (s *Store) loadConfigBody(ctx context.Context, q querier, account string, forUpdate bool) (string, int64, error) {
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
		return "", 0, ErrNotFound
	case err != nil:
		return "", 0, err
	}
	return body, version, nil
}

func decodeConfig(body string) (*config.Document, error) {
	var doc config.Document
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, fmt.Errorf("decode stored config: %w", err)
	}
	return &doc, nil
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
