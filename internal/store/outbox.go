package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The webhook outbox (migration 0005): events wait in webhook_events until
// the dispatcher (internal/events) delivers them or gives up. An account's
// events are numbered in the transaction that inserts them (webhook_queues
// holds the last number), and only the lowest-numbered queued event of an
// account is ever due: one account's events go out in order, and a failing
// account holds back only its own.

// States of an Event.
const (
	EventQueued    = "queued"    // waiting to be delivered (or retried)
	EventDelivered = "delivered" // a receiver answered 2xx
	EventFailed    = "failed"    // given up: deadline passed or no webhook URL
)

// Event is one webhook event in the outbox.
type Event struct {
	ID      string // unique (a UUID); receivers de-duplicate by it
	Account string
	Type    string // "call.completed", ...
	Created time.Time
	Body    []byte // the JSON that is POSTed, byte for byte

	// Seq is the event's place in its account's order, given by
	// InsertEvents (and again by Replay).
	Seq      int64
	State    string // EventQueued, EventDelivered or EventFailed
	Attempts int    // delivery attempts so far
	Tries    int    // attempts since it was queued or last replayed
	// Queued is when the event was queued or last replayed: the retry
	// deadline counts from here. InsertEvents takes it from Created when
	// it is zero.
	Queued time.Time
	// NextAttempt is the earliest time of the next attempt. InsertEvents
	// takes it from Queued when it is zero.
	NextAttempt time.Time
	Done        time.Time // when it was delivered or failed
	LastError   string
}

// Attempt is one delivery attempt of an event.
type Attempt struct {
	EventID string
	No      int // 1 for the first attempt; set by the store
	Account string
	At      time.Time
	URL     string
	Status  int // the HTTP status; 0 when there was no response
	Latency time.Duration
	Error   string // "" for a 2xx
}

// Delivery is an attempt as Deliveries lists it, with its event's type and
// current state.
type Delivery struct {
	Attempt
	Type  string
	State string
}

// Page sizes of Deliveries.
const (
	DefaultDeliveryLimit = 50
	MaxDeliveryLimit     = 1000
)

// eventColumns is what scanEvent reads, in its order.
const eventColumns = `account, seq, id, type, created_us, body, state, attempts, tries,
	queued_us, next_attempt_us, done_us, last_error`

// InsertEvents queues events in one transaction: all or none. ID, Account,
// Type, Created and Body are required; on success it fills in each
// event's Seq, State, Queued and NextAttempt. The events of one account are
// numbered in the order given, after every event of that account already
// stored. An ID already in the outbox fails the whole batch.
func (s *Store) InsertEvents(ctx context.Context, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	var seqs []int64
	err := s.inTx(ctx, func(tx *sql.Tx) (err error) {
		seqs, err = insertEvents(ctx, &txStmts{tx: tx}, evs)
		return err
	})
	if err != nil {
		return err
	}
	queuedEvents(evs, seqs)
	return nil
}

// insertEvents is InsertEvents in a transaction; it returns the events'
// sequence numbers, for queuedEvents once the transaction has committed.
func insertEvents(ctx context.Context, x *txStmts, evs []Event) ([]int64, error) {
	byAccount := map[string][]int{}
	for i := range evs {
		e := &evs[i]
		if e.ID == "" || e.Account == "" || e.Type == "" || e.Created.IsZero() || len(e.Body) == 0 {
			return nil, fmt.Errorf("insert event %q: id, account, type, created and body are required", e.ID)
		}
		byAccount[e.Account] = append(byAccount[e.Account], i)
	}
	// Accounts in one order, so that two nodes' batches lock their queue
	// rows in the same order and never deadlock.
	accounts := make([]string, 0, len(byAccount))
	for a := range byAccount {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	seqs := make([]int64, len(evs))
	for _, a := range accounts {
		idx := byAccount[a]
		last, err := advanceQueue(ctx, x.tx, a, len(idx))
		if err != nil {
			return nil, err
		}
		for k, i := range idx {
			seqs[i] = last - int64(len(idx)) + 1 + int64(k)
		}
		// Many rows a statement: at thousands of events a second the cost
		// of a statement, not of a row, dominates.
		for rest := idx; len(rest) > 0; {
			chunk := rest[:min(len(rest), eventsPerInsert)]
			rest = rest[len(chunk):]
			args := make([]any, 0, 8*len(chunk))
			for _, i := range chunk {
				e := &evs[i]
				queued, next := eventTimes(e)
				args = append(args, e.Account, seqs[i], e.ID, e.Type, e.Created.UnixMicro(), string(e.Body),
					queued.UnixMicro(), next.UnixMicro())
			}
			if _, err := x.ExecContext(ctx, insertEventsQueries[len(chunk)], args...); err != nil {
				return nil, fmt.Errorf("insert events %s…: %w", evs[chunk[0]].ID, err)
			}
		}
	}
	return seqs, nil
}

// eventsPerInsert is how many events one INSERT statement writes.
const eventsPerInsert = 64

// insertEventsQueries[n] is the INSERT of n events (8 parameters each).
var insertEventsQueries = func() []string {
	qs := make([]string, eventsPerInsert+1)
	for n := 1; n <= eventsPerInsert; n++ {
		var b strings.Builder
		b.WriteString(`INSERT INTO webhook_events (account, seq, id, type, created_us, body, state, attempts, tries,
			queued_us, next_attempt_us, done_us, last_error) VALUES `)
		for r := range n {
			if r > 0 {
				b.WriteString(", ")
			}
			p := 8 * r
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d, 'queued', 0, 0, $%d, $%d, NULL, '')",
				p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8)
		}
		qs[n] = b.String()
	}
	return qs
}()

// queuedEvents fills in what the outbox now says of events inserted with
// the sequence numbers seqs.
func queuedEvents(evs []Event, seqs []int64) {
	for i := range evs {
		e := &evs[i]
		e.Queued, e.NextAttempt = eventTimes(e)
		e.Queued, e.NextAttempt = e.Queued.Truncate(time.Microsecond), e.NextAttempt.Truncate(time.Microsecond)
		e.Seq, e.State, e.Attempts, e.Tries, e.Done, e.LastError = seqs[i], EventQueued, 0, 0, time.Time{}, ""
	}
}

func eventTimes(e *Event) (queued, next time.Time) {
	queued = e.Queued
	if queued.IsZero() {
		queued = e.Created
	}
	next = e.NextAttempt
	if next.IsZero() {
		next = queued
	}
	return queued, next
}

// advanceQueue reserves n sequence numbers for the account and returns the
// last. The row stays locked until the transaction ends, so the account's
// events commit in the order of their numbers.
func advanceQueue(ctx context.Context, tx *sql.Tx, account string, n int) (int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx, `
		INSERT INTO webhook_queues (account, last_seq) VALUES ($1, $2)
		ON CONFLICT (account) DO UPDATE SET last_seq = webhook_queues.last_seq + excluded.last_seq
		RETURNING last_seq`, account, int64(n)).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("number events of %s: %w", account, err)
	}
	return last, nil
}

// NextDue returns, for each account, its oldest queued event if that event
// is due at now (NextAttempt ≤ now); at most limit of them, the longest
// waiting first. An account whose oldest event waits for a retry has
// nothing due, however many events stand behind it: its order holds, and
// it never takes the place of another account.
func (s *Store) NextDue(ctx context.Context, now time.Time, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	// One probe per account: the queues, then each head by its key. CROSS
	// JOIN keeps SQLite to that order (it would rather scan every event);
	// PostgreSQL plans it so anyway.
	rows, err := s.db.QueryContext(ctx, `
		SELECT e.account, e.seq, e.id, e.type, e.created_us, e.body, e.state, e.attempts, e.tries,
			e.queued_us, e.next_attempt_us, e.done_us, e.last_error
		FROM webhook_queues q
		CROSS JOIN webhook_events e
		WHERE e.account = q.account AND e.seq = (
			SELECT MIN(x.seq) FROM webhook_events x WHERE x.account = q.account AND x.state = 'queued')
		AND e.next_attempt_us <= $1
		ORDER BY e.next_attempt_us, e.account
		LIMIT $2`, now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("read due events: %w", err)
	}
	return scanEvents(rows)
}

// QueuedEvents returns the account's queued events in their order, the
// head (the only one that can be due) first; at most limit. A dispatcher
// that has the head walks on through the rest without asking NextDue
// again for each.
func (s *Store) QueuedEvents(ctx context.Context, account string, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM webhook_events
		WHERE account = $1 AND state = 'queued' ORDER BY seq LIMIT $2`, account, limit)
	if err != nil {
		return nil, fmt.Errorf("read queued events of %s: %w", account, err)
	}
	return scanEvents(rows)
}

// WebhookEvent returns one event of the account; ErrNotFound if there is
// none, including when the ID is another account's.
func (s *Store) WebhookEvent(ctx context.Context, account, id string) (Event, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM webhook_events
		WHERE account = $1 AND id = $2`, account, id)
	e, err := scanEvent(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, err)
	}
	return e, nil
}

// RecordAttempt logs one delivery attempt and counts it in the event's
// Attempts; it sets a.No (and a.Account). The Mark methods can record the
// attempt in their own transaction instead.
func (s *Store) RecordAttempt(ctx context.Context, a *Attempt) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return recordAttempt(ctx, tx, a) })
}

func recordAttempt(ctx context.Context, tx *sql.Tx, a *Attempt) error {
	var account string
	err := tx.QueryRowContext(ctx,
		`UPDATE webhook_events SET attempts = attempts + 1, tries = tries + 1 WHERE id = $1
		RETURNING attempts, account`,
		a.EventID).Scan(&a.No, &account)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("record attempt of %s: %w", a.EventID, err)
	}
	a.Account = account
	return insertAttempt(ctx, tx, a)
}

// insertAttempt writes a's row of the attempt log (a.No and a.Account set).
func insertAttempt(ctx context.Context, tx *sql.Tx, a *Attempt) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO webhook_attempts (event_id, attempt, account, at_us, url, status, latency_us, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.EventID, a.No, a.Account, a.At.UnixMicro(), a.URL, a.Status, a.Latency.Microseconds(), a.Error); err != nil {
		return fmt.Errorf("record attempt of %s: %w", a.EventID, err)
	}
	return nil
}

// MarkDelivered ends a queued event as delivered at at. With a non-nil
// attempt it records that attempt in the same transaction (a.EventID
// defaults to id). ErrNotFound if the event is not queued.
func (s *Store) MarkDelivered(ctx context.Context, id string, at time.Time, a *Attempt) error {
	return s.markEvent(ctx, id, a, `UPDATE webhook_events SET state = 'delivered', done_us = $2, last_error = ''
		WHERE id = $1 AND state = 'queued'`, at.UnixMicro())
}

// MarkDeliveredBatch ends several queued events as delivered, in one
// transaction: each attempt's event, at the attempt's end (At + Latency),
// with the attempt recorded (a.No set). A dispatcher writes a run of
// successes this way, one commit for many. ErrNotFound, and nothing
// written, if one of the events is not queued.
func (s *Store) MarkDeliveredBatch(ctx context.Context, attempts []Attempt) error {
	if len(attempts) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for i := range attempts {
			a := &attempts[i]
			// Two statements an event: the state and count, then the log.
			err := tx.QueryRowContext(ctx, `UPDATE webhook_events SET state = 'delivered', done_us = $2,
				last_error = '', attempts = attempts + 1, tries = tries + 1
				WHERE id = $1 AND state = 'queued' RETURNING attempts, account`,
				a.EventID, a.At.Add(a.Latency).UnixMicro()).Scan(&a.No, &a.Account)
			if errors.Is(err, sql.ErrNoRows) {
				err = fmt.Errorf("not queued: %w", ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("update event %s: %w", a.EventID, err)
			}
			if err := insertAttempt(ctx, tx, a); err != nil {
				return err
			}
		}
		return nil
	})
}

// MarkRetry keeps a queued event queued, due again at next, with the error
// of the attempt that failed; a non-nil attempt is recorded as with
// MarkDelivered. ErrNotFound if the event is not queued.
func (s *Store) MarkRetry(ctx context.Context, id string, next time.Time, errMsg string, a *Attempt) error {
	return s.markEvent(ctx, id, a, `UPDATE webhook_events SET next_attempt_us = $2, last_error = $3
		WHERE id = $1 AND state = 'queued'`, next.UnixMicro(), errMsg)
}

// MarkFailed ends a queued event as failed at at, with the reason; a
// non-nil attempt is recorded as with MarkDelivered. ErrNotFound if the
// event is not queued.
func (s *Store) MarkFailed(ctx context.Context, id string, at time.Time, errMsg string, a *Attempt) error {
	return s.markEvent(ctx, id, a, `UPDATE webhook_events SET state = 'failed', done_us = $2, last_error = $3
		WHERE id = $1 AND state = 'queued'`, at.UnixMicro(), errMsg)
}

func (s *Store) markEvent(ctx context.Context, id string, a *Attempt, query string, args ...any) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if a != nil {
			if a.EventID == "" {
				a.EventID = id
			}
			if err := recordAttempt(ctx, tx, a); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, query, append([]any{id}, args...)...)
		if err != nil {
			return fmt.Errorf("update event %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update event %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("update event %s: not queued: %w", id, ErrNotFound)
		}
		return nil
	})
}

// Deliveries returns the account's delivery attempts, newest first: at most
// limit (DefaultDeliveryLimit when 0, at most MaxDeliveryLimit).
func (s *Store) Deliveries(ctx context.Context, account string, limit int) ([]Delivery, error) {
	if limit <= 0 {
		limit = DefaultDeliveryLimit
	}
	limit = min(limit, MaxDeliveryLimit)
	rows, err := s.db.QueryContext(ctx, `
		SELECT a.event_id, a.attempt, a.account, a.at_us, a.url, a.status, a.latency_us, a.error, e.type, e.state
		FROM webhook_attempts a JOIN webhook_events e ON e.id = a.event_id
		WHERE a.account = $1
		ORDER BY a.at_us DESC, a.event_id DESC, a.attempt DESC
		LIMIT $2`, account, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of %s: %w", account, err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d       Delivery
			at, lat int64
		)
		if err := rows.Scan(&d.EventID, &d.No, &d.Account, &at, &d.URL, &d.Status, &lat, &d.Error,
			&d.Type, &d.State); err != nil {
			return nil, fmt.Errorf("list deliveries of %s: %w", account, err)
		}
		d.At, d.Latency = time.UnixMicro(at).UTC(), time.Duration(lat)*time.Microsecond
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries of %s: %w", account, err)
	}
	return out, nil
}

// Replay queues one of the account's events again, due now. A delivered or
// failed event goes to the end of the account's queue with a new Seq and a
// new retry deadline and backoff (Tries 0; Attempts keep counting and
// numbering); a queued one keeps its
// place and is due now instead of at its next retry. ErrNotFound if the
// account has no such event.
func (s *Store) Replay(ctx context.Context, account, eventID string) error {
	now := time.Now().UnixMicro()
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM webhook_events WHERE account = $1 AND id = $2`,
			account, eventID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			err = ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("replay event %s: %w", eventID, err)
		}
		if state == EventQueued {
			_, err = tx.ExecContext(ctx, `UPDATE webhook_events SET next_attempt_us = $2 WHERE id = $1`, eventID, now)
		} else {
			var seq int64
			if seq, err = advanceQueue(ctx, tx, account, 1); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE webhook_events SET seq = $2, state = 'queued',
				tries = 0, queued_us = $3, next_attempt_us = $3, done_us = NULL, last_error = '' WHERE id = $1`,
				eventID, seq, now)
		}
		if err != nil {
			return fmt.Errorf("replay event %s: %w", eventID, err)
		}
		return nil
	})
}

// PruneEvents deletes delivered and failed events (and their attempts)
// that finished before before; queued events stay. It returns how many
// events it deleted.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM webhook_events WHERE state <> 'queued' AND done_us < $1`, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	return res.RowsAffected()
}

// WebhookSecrets returns the account's signing secret and, during a
// rotation, the previous one while it is still valid ("" otherwise). The
// account's first call creates its secret. A secret is "whsec_" and 43
// base64url characters; the HMAC key is the whole string's bytes.
func (s *Store) WebhookSecrets(ctx context.Context, account string) (current, previous string, err error) {
	for try := 0; ; try++ {
		var expires int64
		err = s.db.QueryRowContext(ctx,
			`SELECT secret, previous, previous_expires_us FROM webhook_secrets WHERE account = $1`,
			account).Scan(&current, &previous, &expires)
		if err == nil {
			if expires <= time.Now().UnixMicro() {
				previous = ""
			}
			return current, previous, nil
		}
		if !errors.Is(err, sql.ErrNoRows) || try > 0 {
			return "", "", fmt.Errorf("read webhook secret of %s: %w", account, err)
		}
		secret, err := newWebhookSecret()
		if err != nil {
			return "", "", err
		}
		// Another node may create it at the same time: the first wins and
		// both read it back.
		if _, err := s.db.ExecContext(ctx, `
			INSERT INTO webhook_secrets (account, secret, created_us, previous, previous_expires_us)
			VALUES ($1, $2, $3, '', 0) ON CONFLICT (account) DO NOTHING`,
			account, secret, time.Now().UnixMicro()); err != nil {
			return "", "", fmt.Errorf("create webhook secret of %s: %w", account, err)
		}
	}
}

// RotateWebhookSecret gives the account a new signing secret and returns
// it. The one it replaces stays valid for keepPrevious (receivers accept
// both meanwhile); with keepPrevious ≤ 0 it stops at once. A secret
// replaced earlier and still valid is forgotten: two are valid at most.
func (s *Store) RotateWebhookSecret(ctx context.Context, account string, keepPrevious time.Duration) (string, error) {
	secret, err := newWebhookSecret()
	if err != nil {
		return "", err
	}
	now := time.Now()
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO webhook_secrets (account, secret, created_us, previous, previous_expires_us)
			VALUES ($1, $2, $3, '', 0) ON CONFLICT (account) DO NOTHING`,
			account, secret, now.UnixMicro())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err // a first secret: nothing to keep
		}
		if keepPrevious > 0 {
			_, err = tx.ExecContext(ctx, `UPDATE webhook_secrets SET previous = secret,
				previous_expires_us = $2, secret = $3, created_us = $4 WHERE account = $1`,
				account, now.Add(keepPrevious).UnixMicro(), secret, now.UnixMicro())
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE webhook_secrets SET previous = '',
				previous_expires_us = 0, secret = $2, created_us = $3 WHERE account = $1`,
				account, secret, now.UnixMicro())
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("rotate webhook secret of %s: %w", account, err)
	}
	return secret, nil
}

func newWebhookSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("create webhook secret: %w", err)
	}
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// TakeLease takes or renews the named lease for holder until ttl from now,
// and reports whether holder has it: false while another holder's lease
// has not expired. Nodes sharing a database use it so that one of them at
// a time does a job (the webhook dispatcher).
func (s *Store) TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	res, err := s.db.ExecContext(ctx, `
		INSERT INTO webhook_leases (name, holder, expires_us) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_us = excluded.expires_us
		WHERE webhook_leases.holder = excluded.holder OR webhook_leases.expires_us < $4`,
		name, holder, now.Add(ttl).UnixMicro(), now.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives the named lease up if holder has it, so that another
// node can take it at once.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM webhook_leases WHERE name = $1 AND holder = $2`,
		name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

func scanEvent(r scanner) (Event, error) {
	var (
		e                     Event
		body                  string
		created, queued, next int64
		done                  sql.NullInt64
	)
	if err := r.Scan(&e.Account, &e.Seq, &e.ID, &e.Type, &created, &body, &e.State, &e.Attempts, &e.Tries,
		&queued, &next, &done, &e.LastError); err != nil {
		return Event{}, err
	}
	e.Body = []byte(body)
	e.Created, e.Queued, e.NextAttempt = time.UnixMicro(created).UTC(), time.UnixMicro(queued).UTC(), time.UnixMicro(next).UTC()
	e.Done = fromMicros(done)
	return e, nil
}
