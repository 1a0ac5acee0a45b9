package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Contact is one registered device of a user (a REGISTER binding).
type Contact struct {
	Account    string
	User       string
	URI        string // the Contact URI
	Source     string // where the REGISTER came from, host:port
	Transport  string // udp, tcp, tls
	UserAgent  string
	InstanceID string // +sip.instance, if the device sent one
	Expires    time.Time
	Path       []string // the REGISTER's Path (RFC 3327)
	NAT        bool     // the REGISTER showed the device behind NAT
	Client     string   // the IP address the REGISTER is accounted to (behind a trusted proxy, the one it names)
}

// PutContact adds or refreshes a binding, keyed by account, user and URI.
func (s *Store) PutContact(ctx context.Context, c Contact) error {
	if c.Account == "" || c.User == "" || c.URI == "" || c.Expires.IsZero() {
		return errors.New("put contact: account, user, uri and expires are required")
	}
	path, err := json.Marshal(nonNil(c.Path))
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `
		INSERT INTO contacts (account, username, uri, source, transport, user_agent, instance_id, expires_us, path, nat, client)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (account, username, uri) DO UPDATE SET
			source = excluded.source, transport = excluded.transport,
			user_agent = excluded.user_agent, instance_id = excluded.instance_id,
			expires_us = excluded.expires_us, path = excluded.path, nat = excluded.nat, client = excluded.client`,
		c.Account, c.User, c.URI, c.Source, c.Transport, c.UserAgent, c.InstanceID, c.Expires.UnixMicro(),
		string(path), boolInt(c.NAT), c.Client)
	if err != nil {
		return fmt.Errorf("put contact %s of %s/%s: %w", c.URI, c.Account, c.User, err)
	}
	return nil
}

// DeleteContact removes a binding; removing one that is not there is not an
// error.
func (s *Store) DeleteContact(ctx context.Context, account, user, uri string) error {
	_, err := s.db.ExecContext(ctx,
		`DELETE FROM contacts WHERE account = $1 AND username = $2 AND uri = $3`, account, user, uri)
	if err != nil {
		return fmt.Errorf("delete contact %s of %s/%s: %w", uri, account, user, err)
	}
	return nil
}

// Contacts returns the user's bindings that have not expired at now, the
// longest-lived first.
func (s *Store) Contacts(ctx context.Context, account, user string, now time.Time) ([]Contact, error) {
	cs, err := s.contacts(ctx, `account = $1 AND username = $2 AND expires_us > $3`, account, user, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("contacts of %s/%s: %w", account, user, err)
	}
	return cs, nil
}

// Registrations returns every binding of the account's users that has not
// expired at now, by user, the longest-lived first.
func (s *Store) Registrations(ctx context.Context, account string, now time.Time) ([]Contact, error) {
	cs, err := s.contacts(ctx, `account = $1 AND expires_us > $2`, account, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("registrations of %s: %w", account, err)
	}
	return cs, nil
}

func (s *Store) contacts(ctx context.Context, where string, args ...any) ([]Contact, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT account, username, uri, source, transport, user_agent, instance_id, expires_us, path, nat, client
		FROM contacts WHERE `+where+` ORDER BY username, expires_us DESC, uri`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cs []Contact
	for rows.Next() {
		var (
			c       Contact
			expires int64
			path    string
			nat     int64
		)
		if err := rows.Scan(&c.Account, &c.User, &c.URI, &c.Source, &c.Transport, &c.UserAgent, &c.InstanceID, &expires, &path, &nat, &c.Client); err != nil {
			return nil, err
		}
		if c.Path, err = decodeList(path); err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		c.NAT = nat != 0
		c.Expires = time.UnixMicro(expires).UTC()
		cs = append(cs, c)
	}
	return cs, rows.Err()
}

// RegisteredFrom reports whether any binding that has not expired at now
// came from the IP address client (Contact.Client).
func (s *Store) RegisteredFrom(ctx context.Context, client string, now time.Time) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM contacts WHERE client = $1 AND expires_us > $2 LIMIT 1`,
		client, now.UnixMicro()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("registrations from %s: %w", client, err)
	}
	return true, nil
}

// PurgeExpired deletes the bindings that have expired at now and returns
// how many there were.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM contacts WHERE expires_us <= $1`, now.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("purge expired contacts: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge expired contacts: %w", err)
	}
	return n, nil
}
