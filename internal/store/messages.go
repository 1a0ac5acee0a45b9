package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Message and delivery states.
const (
	MessageQueued    = "queued"
	MessageDelivered = "delivered"
	MessageFailed    = "failed"
	// MessageRetired is a delivery's state only: it was for a binding
	// that no longer exists, and the user's current devices carry the
	// message on (AssignMessageDevices). It counts for nothing in the
	// message's state.
	MessageRetired = "retired"
)

// Message is one SMS in the message log (internal/sms).
type Message struct {
	ID      string
	Account string
	// Direction is DirectionInbound (from a trunk or the API),
	// DirectionOutbound (a user to an external number) or
	// DirectionInternal (a user to a user).
	Direction string
	// Number is the account's number the message was sent to (inbound) or
	// from (outbound); "" for an internal message.
	Number      string
	From        string // the sender as presented: a number, or a user's extension
	To          string // the recipient: our number, an external number, or the extension dialled
	Sender      string // the user who sent it (outbound, internal)
	ContentType string
	Body        string
	// State is MessageQueued while no delivery succeeded and some are
	// still being tried, MessageDelivered once one did, MessageFailed when
	// every one failed.
	State   string
	Created time.Time
	Updated time.Time
	// Dedup is what makes a retransmission the same message (the SIP
	// Call-ID and CSeq; "" for none). InsertMessage reads it; reads leave
	// it empty.
	Dedup string
	// Deliveries are filled in by Message only.
	Deliveries []MessageDelivery
}

// MessageDelivery is a message's delivery to one device of a user (Device
// "" until the user has one), or to a trunk (outbound).
type MessageDelivery struct {
	ID        string
	MessageID string
	Account   string
	User      string
	Device    string // the registered Contact URI
	Trunk     string // outbound: the trunk it leaves through
	State     string
	Attempts  int
	Next      time.Time // when the next attempt is due (queued)
	LastError string
	Created   time.Time
	Updated   time.Time
	// Claim identifies the taking of the delivery by TakeDueDeliveries;
	// RecordMessageAttempt settles only the claim that is still current.
	Claim int64
	// Log is every attempt, oldest first; filled in by Message only.
	Log []MessageAttempt
}

// ErrClaimLost is returned by RecordMessageAttempt for a delivery that is
// no longer the caller's to settle: its claim was taken over (a device
// registered and it became due again) or it was settled already.
var ErrClaimLost = errors.New("the delivery's claim was lost")

// MessageAttempt is one try of a delivery.
type MessageAttempt struct {
	At     time.Time
	Status int    // the SIP final response; 0 when there was none
	Error  string // "" for a 2xx
}

// MessageFilter selects messages of the log.
type MessageFilter struct {
	Account   string
	Number    string // exactly
	User      string // sent by or delivered to this user
	Direction string
	State     string
	From, To  time.Time // created in [From, To)
	Limit     int       // page size: DefaultCallLimit if 0, at most MaxCallLimit
	Cursor    string
}

const messageColumns = `id, account, direction, number, from_addr, to_addr, sender, content_type, body, state, created_us, updated_us`

const deliveryColumns = `id, message_id, account, user_name, device, trunk, state, attempts, next_us, last_error, created_us, updated_us`

func scanMessage(r scanner) (Message, error) {
	var (
		m                Message
		created, updated int64
	)
	err := r.Scan(&m.ID, &m.Account, &m.Direction, &m.Number, &m.From, &m.To, &m.Sender, &m.ContentType, &m.Body,
		&m.State, &created, &updated)
	m.Created, m.Updated = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return m, err
}

func scanDelivery(r scanner) (MessageDelivery, error) {
	var (
		d                      MessageDelivery
		next, created, updated int64
	)
	err := r.Scan(&d.ID, &d.MessageID, &d.Account, &d.User, &d.Device, &d.Trunk, &d.State, &d.Attempts, &next,
		&d.LastError, &created, &updated)
	d.Next, d.Created, d.Updated = time.UnixMicro(next).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return d, err
}

// InsertMessage stores a new message with its deliveries and the webhook
// events of its arrival, in one transaction. A message whose dedup key
// (the SIP Call-ID and CSeq; "" for none) the account already has is not
// stored again: m is then filled in with the stored one and created is
// false.
func (s *Store) InsertMessage(ctx context.Context, m *Message, ds []MessageDelivery, evs []Event) (created bool, err error) {
	var dedup any
	if key := m.dedupKey(); key != "" {
		dedup = key
	}
	var seqs []int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO messages (`+messageColumns+`, dedup)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (account, dedup) DO NOTHING`,
			m.ID, m.Account, m.Direction, m.Number, m.From, m.To, m.Sender, m.ContentType, m.Body, m.State,
			m.Created.UnixMicro(), m.Created.UnixMicro(), dedup)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			got, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
				WHERE account = $1 AND dedup = $2`, m.Account, dedup))
			if err != nil {
				return err
			}
			*m = got
			return nil
		}
		created = true
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `INSERT INTO message_deliveries (`+deliveryColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				d.ID, m.ID, m.Account, d.User, d.Device, d.Trunk, MessageQueued, 0, d.Next.UnixMicro(), "",
				m.Created.UnixMicro(), m.Created.UnixMicro()); err != nil {
				return err
			}
		}
		if len(evs) > 0 {
			seqs, err = insertEvents(ctx, &txStmts{tx: tx}, evs)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("insert message: %w", err)
	}
	if created {
		m.Updated = m.Created
		queuedEvents(evs, seqs)
	}
	return created, nil
}

func (m *Message) dedupKey() string { return m.Dedup }

// Message returns one of the account's messages with its deliveries and
// their attempts; ErrNotFound if the account has no such message.
func (s *Store) Message(ctx context.Context, account, id string) (*Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE account = $1 AND id = $2`, account, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM message_deliveries
		WHERE message_id = $1 ORDER BY created_us, user_name, device, id`, id)
	if err != nil {
		return nil, fmt.Errorf("message %s deliveries: %w", id, err)
	}
	defer rows.Close()
	index := map[string]int{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("message %s deliveries: %w", id, err)
		}
		index[d.ID] = len(m.Deliveries)
		m.Deliveries = append(m.Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("message %s deliveries: %w", id, err)
	}
	rows.Close()
	arows, err := s.db.QueryContext(ctx, `SELECT a.delivery_id, a.at_us, a.status, a.error
		FROM message_attempts a JOIN message_deliveries d ON d.id = a.delivery_id
		WHERE d.message_id = $1 ORDER BY a.delivery_id, a.n`, id)
	if err != nil {
		return nil, fmt.Errorf("message %s attempts: %w", id, err)
	}
	defer arows.Close()
	for arows.Next() {
		var (
			did string
			at  int64
			a   MessageAttempt
		)
		if err := arows.Scan(&did, &at, &a.Status, &a.Error); err != nil {
			return nil, fmt.Errorf("message %s attempts: %w", id, err)
		}
		a.At = time.UnixMicro(at).UTC()
		if i, ok := index[did]; ok {
			m.Deliveries[i].Log = append(m.Deliveries[i].Log, a)
		}
	}
	return &m, arows.Err()
}

// Messages lists the account's messages that match f, newest first, one
// page at a time (nextCursor as ListCalls's).
func (s *Store) Messages(ctx context.Context, f MessageFilter) (list []Message, nextCursor string, err error) {
	if f.Account == "" {
		return nil, "", errors.New("list messages: account is required")
	}
	limit := pageSize(f.Limit)
	var w conds
	w.add("account = ?", f.Account)
	if f.Number != "" {
		w.add("number = ?", f.Number)
	}
	if f.User != "" {
		w.add("(sender = ? OR EXISTS (SELECT 1 FROM message_deliveries d WHERE d.message_id = messages.id AND d.user_name = ?))",
			f.User, f.User)
	}
	if f.Direction != "" {
		w.add("direction = ?", f.Direction)
	}
	if f.State != "" {
		w.add("state = ?", f.State)
	}
	if !f.From.IsZero() {
		w.add("created_us >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		w.add("created_us < ?", f.To.UnixMicro())
	}
	if f.Cursor != "" {
		start, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		w.add("created_us <= ? AND (created_us < ? OR id < ?)", start, start, id)
	}
	limitArg := w.arg(limit + 1)
	rows, err := s.db.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE `+w.sql()+`
		ORDER BY created_us DESC, id DESC LIMIT `+limitArg, w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list messages: %w", err)
		}
		list = append(list, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	if len(list) > limit {
		list = list[:limit]
		last := list[limit-1]
		nextCursor = encodeCursor(last.Created.UnixMicro(), last.ID)
	}
	return list, nextCursor, nil
}

// DueMessage is a delivery taken for an attempt, with its message.
type DueMessage struct {
	Delivery MessageDelivery
	Message  Message
}

// TakeDueDeliveries claims up to limit queued deliveries due at now for
// lease: each is moved ahead by lease first (a conditional update, so two
// nodes never take the same one), and is due again then unless
// RecordMessageAttempt settles it before.
func (s *Store) TakeDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]DueMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.id, d.next_us FROM message_deliveries d
		WHERE d.state = 'queued' AND d.next_us <= $1 ORDER BY d.next_us LIMIT $2`, now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	type cand struct {
		id   string
		next int64
	}
	var cands []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.id, &c.next); err != nil {
			rows.Close()
			return nil, fmt.Errorf("due deliveries: %w", err)
		}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	until := now.Add(lease).UnixMicro()
	var out []DueMessage
	for _, c := range cands {
		// The delivery as claimed, in the same statement: a registration
		// may hand it to a device right after, and then it is due again
		// for whoever takes it next, not this claim's.
		d, err := scanDelivery(s.db.QueryRowContext(ctx, `UPDATE message_deliveries SET next_us = $1, claimed_us = $1
			WHERE id = $2 AND state = 'queued' AND next_us = $3 RETURNING `+deliveryColumns, until, c.id, c.next))
		if errors.Is(err, sql.ErrNoRows) {
			continue // another node took it
		}
		if err != nil {
			return out, fmt.Errorf("claim delivery: %w", err)
		}
		m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`, d.MessageID))
		if err != nil {
			return out, fmt.Errorf("claimed delivery's message: %w", err)
		}
		d.Claim = until
		out = append(out, DueMessage{Delivery: d, Message: m})
	}
	return out, nil
}

// RecordMessageAttempt logs an attempt of a delivery taken with claim
// (MessageDelivery.Claim) and settles it: state
// (MessageQueued with next, the time of the next try; MessageDelivered;
// MessageFailed). When the message's state changes with it, the message is
// updated and the events that events returns for the message in its new
// state are queued in the same transaction. It returns the message and
// whether its state changed; ErrClaimLost, recording nothing, when the
// claim is no longer current.
func (s *Store) RecordMessageAttempt(ctx context.Context, deliveryID string, claim int64, a MessageAttempt, state string, next time.Time,
	events func(*Message) []Event) (*Message, bool, error) {
	var (
		m       Message
		changed bool
		evs     []Event
		seqs    []int64
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Deliveries of one message settle one at a time: each must count
		// the others' outcomes, so that the message's state changes (and
		// its event is made) exactly once. SQLite's transactions are
		// serial already; PostgreSQL locks the message's row.
		if s.dialect == DialectPostgres {
			var id string
			if err := tx.QueryRowContext(ctx, `SELECT id FROM messages WHERE id =
				(SELECT message_id FROM message_deliveries WHERE id = $1) FOR UPDATE`, deliveryID).Scan(&id); err != nil {
				return err
			}
		}
		var messageID string
		var attempts int
		err := tx.QueryRowContext(ctx, `UPDATE message_deliveries SET state = $1, attempts = attempts + 1,
			next_us = $2, claimed_us = 0, last_error = $3, updated_us = $4
			WHERE id = $5 AND state = 'queued' AND claimed_us = $6
			RETURNING message_id, attempts`,
			state, next.UnixMicro(), a.Error, a.At.UnixMicro(), deliveryID, claim).Scan(&messageID, &attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrClaimLost
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO message_attempts (delivery_id, n, at_us, status, error)
			VALUES ($1, $2, $3, $4, $5)`, deliveryID, attempts, a.At.UnixMicro(), a.Status, a.Error); err != nil {
			return err
		}
		if m, changed, err = settleMessage(ctx, tx, messageID, a.At); err != nil || !changed || events == nil {
			return err
		}
		if evs = events(&m); len(evs) > 0 {
			seqs, err = insertEvents(ctx, &txStmts{tx: tx}, evs)
		}
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("record message attempt: %w", err)
	}
	queuedEvents(evs, seqs)
	return &m, changed, nil
}

// settleMessage derives a message's state from its deliveries' and stores
// it when it changed.
func settleMessage(ctx context.Context, tx *sql.Tx, id string, at time.Time) (Message, bool, error) {
	m, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`, id))
	if err != nil {
		return m, false, err
	}
	var total, delivered, queued int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN state <> 'retired' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0)
		FROM message_deliveries WHERE message_id = $1`, id).Scan(&total, &delivered, &queued); err != nil {
		return m, false, err
	}
	state := m.State
	switch {
	case delivered > 0:
		state = MessageDelivered
	case queued > 0:
		state = MessageQueued
	case total > 0:
		state = MessageFailed
	}
	if state == m.State {
		return m, false, nil
	}
	m.State, m.Updated = state, at.UTC()
	_, err = tx.ExecContext(ctx, `UPDATE messages SET state = $1, updated_us = $2 WHERE id = $3`, state, at.UnixMicro(), id)
	return m, true, err
}

// AssignMessageDevices gives a user's queued messages to the devices the
// user has registered now, so that each message reaches each of them once.
// For every message the user still has a queued delivery of, a device
// without a delivery of it gets one: the delivery that waited for a device
// if there is one, else a delivery to a binding that no longer exists (the
// same phone, most likely, back under another Contact: it keeps its
// Call-ID and attempts), else, when a binding that no longer exists was
// delivered the message already, none (that phone has it), else a new one.
// Deliveries still queued for bindings that no longer exist (or waiting for
// a device) after that are retired: the message goes on to the current
// devices. Deliveries are taken over even while a node is trying them (that
// attempt's outcome is then dropped, ErrClaimLost). Every other queued
// delivery of the user that no node is trying at this moment becomes due at
// now. When retiring changes a message's state, events returns the events
// of its new state, queued in the same transaction. With no devices it
// changes nothing. It returns how many deliveries are due.
func (s *Store) AssignMessageDevices(ctx context.Context, account, user string, devices []string, newID func() string, now time.Time,
	events func(*Message) []Event) (int, error) {
	if len(devices) == 0 {
		return 0, nil
	}
	due := 0
	var (
		evs  []Event
		seqs []int64
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		evs, seqs, due = nil, nil, 0
		// One assignment per user at a time, or two nodes that both saw
		// a delivery waiting would both hand it over (and make it due
		// twice) or both add one for a device. SQLite's transactions are
		// serial already.
		if s.dialect == DialectPostgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "sms:"+account+"/"+user); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM message_deliveries
			WHERE account = $1 AND user_name = $2 AND trunk = '' AND message_id IN (
				SELECT message_id FROM message_deliveries WHERE account = $1 AND user_name = $2 AND state = 'queued')
			ORDER BY message_id, created_us, id`, account, user)
		if err != nil {
			return err
		}
		byMessage := map[string][]MessageDelivery{}
		var order []string
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if _, ok := byMessage[d.MessageID]; !ok {
				order = append(order, d.MessageID)
			}
			byMessage[d.MessageID] = append(byMessage[d.MessageID], d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		current := map[string]bool{}
		for _, dev := range devices {
			current[dev] = true
		}
		nowUS := now.UnixMicro()
		for _, mid := range order {
			has := map[string]bool{}
			// What may stand for a current device that has no delivery,
			// in the order it is taken: waiting, stale and queued, stale
			// and delivered.
			var waiting, staleQueued []string
			staleDelivered := 0
			for _, d := range byMessage[mid] {
				switch {
				case current[d.Device]:
					has[d.Device] = true
				case d.State == MessageQueued && d.Device == "":
					waiting = append(waiting, d.ID)
				case d.State == MessageQueued:
					staleQueued = append(staleQueued, d.ID)
				case d.State == MessageDelivered && d.Device != "":
					staleDelivered++
				}
			}
			spare := append(waiting, staleQueued...)
			for _, dev := range devices {
				if has[dev] {
					continue
				}
				has[dev] = true
				switch {
				case len(spare) > 0:
					res, err := tx.ExecContext(ctx, `UPDATE message_deliveries SET device = $1, next_us = $2, claimed_us = 0,
						updated_us = $2 WHERE id = $3 AND state = 'queued'`, dev, nowUS, spare[0])
					if err != nil {
						return err
					}
					spare = spare[1:]
					if n, _ := res.RowsAffected(); n > 0 {
						due++
					}
				case staleDelivered > 0:
					staleDelivered--
				default:
					if _, err := tx.ExecContext(ctx, `INSERT INTO message_deliveries (`+deliveryColumns+`)
						VALUES ($1, $2, $3, $4, $5, '', $6, 0, $7, '', $8, $8)`,
						newID(), mid, account, user, dev, MessageQueued, nowUS, nowUS); err != nil {
						return err
					}
					due++
				}
			}
			if len(spare) == 0 {
				continue
			}
			for _, id := range spare {
				if _, err := tx.ExecContext(ctx, `UPDATE message_deliveries SET state = $1, next_us = $2, claimed_us = 0,
					last_error = $3, updated_us = $2 WHERE id = $4 AND state = 'queued'`,
					MessageRetired, nowUS, "retired: the device's binding no longer exists; the user's current devices have the message", id); err != nil {
					return err
				}
			}
			m, changed, err := settleMessage(ctx, tx, mid, now)
			if err != nil {
				return err
			}
			if changed && events != nil {
				evs = append(evs, events(&m)...)
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE message_deliveries SET next_us = $1
			WHERE account = $2 AND user_name = $3 AND trunk = '' AND state = 'queued' AND claimed_us < $1 AND next_us > $1`,
			nowUS, account, user)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		due += int(n)
		if len(evs) > 0 {
			seqs, err = insertEvents(ctx, &txStmts{tx: tx}, evs)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("assign messages to devices of %s/%s: %w", account, user, err)
	}
	queuedEvents(evs, seqs)
	return due, nil
}
