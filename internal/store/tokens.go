package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// CreateToken makes a new API token for the account ("" for an admin token)
// and returns it. Only its SHA-256 is stored: the token cannot be shown
// again.
func (s *Store) CreateToken(ctx context.Context, account string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO api_tokens (token_hash, account, created_us) VALUES ($1, $2, $3)`,
		hashToken(token), account, time.Now().UnixMicro())
	if err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return token, nil
}

// CheckToken returns the account a token is bound to, or admin for an admin
// token; ErrNotFound for an unknown token.
func (s *Store) CheckToken(ctx context.Context, token string) (account string, admin bool, err error) {
	if token == "" {
		return "", false, fmt.Errorf("check token: %w", ErrNotFound)
	}
	err = s.db.QueryRowContext(ctx,
		`SELECT account FROM api_tokens WHERE token_hash = $1`, hashToken(token)).Scan(&account)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return "", false, fmt.Errorf("check token: %w", err)
	}
	return account, account == "", nil
}

// hashToken is how a token is stored: the hex SHA-256 of its text. Tokens
// are 256 random bits, so a plain hash (no salt, no stretching) is enough.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
