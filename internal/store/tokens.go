package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Token describes an API token; the token itself (the secret) is never
// stored, only its SHA-256.
type Token struct {
	// ID is the token's public id: the first 12 hex digits of the stored
	// hash. It names the token in lists and for revoking, and reveals
	// nothing of the secret.
	ID       string
	Account  string // "" for an admin token
	Name     string // "" when none was given: show the ID
	ReadOnly bool
	Created  time.Time
}

// tokenIDLen is the length of Token.ID.
const tokenIDLen = 12

// CreateToken makes a new API token for the account ("" for an admin token)
// and returns it. Only its SHA-256 is stored: the token cannot be shown
// again. It is NewToken without a name, read-write.
func (s *Store) CreateToken(ctx context.Context, account string) (string, error) {
	secret, _, err := s.NewToken(ctx, account, "", false)
	return secret, err
}

// NewToken makes a new API token for the account ("" for an admin token)
// with a name and a read-only flag. It returns the secret, which only the
// caller ever sees (the database keeps its SHA-256), and the token's
// description.
func (s *Store) NewToken(ctx context.Context, account, name string, readOnly bool) (secret string, t Token, err error) {
	now := time.Now().UnixMicro()
	// A second try only if two tokens' ids collide (48 bits: improbable).
	for attempt := 0; ; attempt++ {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", Token{}, fmt.Errorf("create token: %w", err)
		}
		secret = base64.RawURLEncoding.EncodeToString(b)
		hash := hashToken(secret)
		_, err = s.db.ExecContext(ctx,
			`INSERT INTO api_tokens (token_hash, account, created_us, name, read_only) VALUES ($1, $2, $3, $4, $5)`,
			hash, account, now, name, boolInt(readOnly))
		if err == nil {
			return secret, Token{ID: hash[:tokenIDLen], Account: account, Name: name, ReadOnly: readOnly,
				Created: time.UnixMicro(now).UTC()}, nil
		}
		if attempt > 0 || !s.tokenIDTaken(ctx, hash[:tokenIDLen]) {
			return "", Token{}, fmt.Errorf("create token: %w", err)
		}
	}
}

func (s *Store) tokenIDTaken(ctx context.Context, id string) bool {
	var n int
	err := s.db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM api_tokens WHERE substr(token_hash, 1, 12) = $1`, id).Scan(&n)
	return err == nil && n > 0
}

// Authenticate returns the token whose secret this is; ErrNotFound for an
// unknown or revoked one.
func (s *Store) Authenticate(ctx context.Context, secret string) (Token, error) {
	if secret == "" {
		return Token{}, fmt.Errorf("check token: %w", ErrNotFound)
	}
	// The lookup is by the secret's SHA-256, so its timing says nothing
	// usable about the secret; the stored hash is compared again in
	// constant time so that no collation or index quirk of a database can
	// let a near match through.
	hash := hashToken(secret)
	var stored string
	row := s.db.QueryRowContext(ctx,
		`SELECT token_hash, `+tokenColumns+` FROM api_tokens WHERE token_hash = $1`, hash)
	t, err := scanToken(withFirst{row, &stored})
	if err == nil && subtle.ConstantTimeCompare([]byte(stored), []byte(hash)) != 1 {
		err = sql.ErrNoRows
	}
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("check token: %w", err)
	}
	return t, nil
}

// withFirst scans one column before those of its scanner's caller.
type withFirst struct {
	r     scanner
	first any
}

func (w withFirst) Scan(dest ...any) error { return w.r.Scan(append([]any{w.first}, dest...)...) }

// CheckToken returns the account a token is bound to, or admin for an admin
// token; ErrNotFound for an unknown token.
func (s *Store) CheckToken(ctx context.Context, token string) (account string, admin bool, err error) {
	t, err := s.Authenticate(ctx, token)
	if err != nil {
		return "", false, err
	}
	return t.Account, t.Account == "", nil
}

// Tokens lists the account's tokens, or every token (admin ones included)
// for account "", oldest first.
func (s *Store) Tokens(ctx context.Context, account string) ([]Token, error) {
	query := `SELECT ` + tokenColumns + ` FROM api_tokens`
	var args []any
	if account != "" {
		query += ` WHERE account = $1`
		args = append(args, account)
	}
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY created_us, token_hash`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var tokens []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return tokens, nil
}

// RevokeToken deletes the token with this public id: its secret stops
// working at once. ErrNotFound when no token has that id.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	if len(id) != tokenIDLen {
		return fmt.Errorf("revoke token %q: %w", id, ErrNotFound)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM api_tokens WHERE substr(token_hash, 1, 12) = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("revoke token %s: %w", id, ErrNotFound)
	}
	return nil
}

const tokenColumns = `substr(token_hash, 1, 12), account, name, read_only, created_us`

func scanToken(r scanner) (Token, error) {
	var (
		t        Token
		readOnly int64
		created  sql.NullInt64
	)
	if err := r.Scan(&t.ID, &t.Account, &t.Name, &readOnly, &created); err != nil {
		return Token{}, err
	}
	t.ReadOnly = readOnly != 0
	t.Created = fromMicros(created)
	return t, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// hashToken is how a token is stored: the hex SHA-256 of its text. Tokens
// are 256 random bits, so a plain hash (no salt, no stretching) is enough.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
