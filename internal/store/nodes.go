package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// NodeDeadAfter is how long a node may go without a heartbeat before the
// others consider it dead (docs/decisions.md, "Nodes").
const NodeDeadAfter = 10 * time.Second

// Causes of the calls a node did not end itself.
const (
	// CauseNodeLost closes the calls of a node that stopped beating.
	CauseNodeLost = "node_lost"
	// CauseCrashed closes the calls a node left open when it restarts
	// (it was killed, or the machine went down, mid-call).
	CauseCrashed = "crashed"
)

// Node is one Switchboard process sharing the database.
type Node struct {
	ID        string
	SIPAddr   string
	HTTPAddr  string
	Started   time.Time
	Heartbeat time.Time
}

// Beat records that the node is alive at n.Heartbeat, adding its row on the
// first beat.
func (s *Store) Beat(ctx context.Context, n Node) error {
	if n.ID == "" {
		return errors.New("beat: the node has no id")
	}
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO nodes (id, sip_addr, http_addr, started_us, heartbeat_us) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET sip_addr = excluded.sip_addr, http_addr = excluded.http_addr,
			started_us = excluded.started_us, heartbeat_us = excluded.heartbeat_us`,
		n.ID, n.SIPAddr, n.HTTPAddr, n.Started.UnixMicro(), n.Heartbeat.UnixMicro())
	return err
}

// LeaveCluster removes the node's row (a clean shutdown: nobody need wait
// NodeDeadAfter to know it is gone).
func (s *Store) LeaveCluster(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM nodes WHERE id = $1`, id)
	return err
}

// Nodes lists the nodes alive at now, by id.
func (s *Store) Nodes(ctx context.Context, now time.Time) ([]Node, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, sip_addr, http_addr, started_us, heartbeat_us FROM nodes
		WHERE heartbeat_us >= $1 ORDER BY id`, now.Add(-NodeDeadAfter).UnixMicro())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		var n Node
		var started, beat int64
		if err := rows.Scan(&n.ID, &n.SIPAddr, &n.HTTPAddr, &started, &beat); err != nil {
			return nil, err
		}
		n.Started, n.Heartbeat = time.UnixMicro(started).UTC(), time.UnixMicro(beat).UTC()
		out = append(out, n)
	}
	return out, rows.Err()
}

// OpenCalls returns the calls in progress on other nodes than except that
// are alive at now, oldest first: what a node adds to its own live calls
// for a cluster-wide list. The records are as written at the calls' start.
func (s *Store) OpenCalls(ctx context.Context, account, except string, now time.Time) ([]*CallRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+callColumns+` FROM calls
		WHERE end_us IS NULL AND account = $1 AND node <> $2
			AND node IN (SELECT id FROM nodes WHERE heartbeat_us >= $3)
		ORDER BY start_us, id`, account, except, now.Add(-NodeDeadAfter).UnixMicro())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*CallRecord
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CloseCrashed ends the calls node left open before this start (a kill -9,
// a power cut) with cause crashed, at the node's last heartbeat if it had
// one, else at now. Call it before the node takes calls.
func (w *CallWriter) CloseCrashed(ctx context.Context, node string, now time.Time) (int, error) {
	var closed int
	err := w.st.inTx(ctx, func(tx *sql.Tx) error {
		end := now
		var beat int64
		switch err := tx.QueryRowContext(ctx, `SELECT heartbeat_us FROM nodes WHERE id = $1`, node).Scan(&beat); {
		case err == nil:
			end = time.UnixMicro(beat)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var err error
		closed, err = w.closeOpen(ctx, tx, node, CauseCrashed, end, "the node restarted after a crash with the call open")
		return err
	})
	w.wrote(closed)
	return closed, err
}

// ReapNodes closes the calls of every node whose heartbeat is older than
// NodeDeadAfter at now with cause node_lost, at its last heartbeat, frees
// its park orbits, and removes it. Each dead node is taken by one transaction that deletes its
// row first, so when several nodes reap at once its calls are closed once.
// It returns how many calls each dead node had open.
func (w *CallWriter) ReapNodes(ctx context.Context, now time.Time) (map[string]int, error) {
	rows, err := w.st.db.QueryContext(ctx, `SELECT id, heartbeat_us FROM nodes WHERE heartbeat_us < $1`,
		now.Add(-NodeDeadAfter).UnixMicro())
	if err != nil {
		return nil, err
	}
	dead := map[string]int64{}
	for rows.Next() {
		var id string
		var beat int64
		if err := rows.Scan(&id, &beat); err != nil {
			rows.Close()
			return nil, err
		}
		dead[id] = beat
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for id, beat := range dead {
		err := w.st.inTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE id = $1 AND heartbeat_us = $2`, id, beat)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				return err // another node took it, or it beat again
			}
			if err := clearOrbits(ctx, tx, id); err != nil {
				return err
			}
			closed, err := w.closeOpen(ctx, tx, id, CauseNodeLost, time.UnixMicro(beat), "node "+id+" stopped beating with the call open")
			out[id] = closed
			return err
		})
		w.wrote(out[id])
		if err != nil {
			return out, fmt.Errorf("reap node %s: %w", id, err)
		}
	}
	return out, nil
}

// wrote wakes the webhook dispatcher after closed calls were committed.
func (w *CallWriter) wrote(closed int) {
	if closed > 0 && w.o.Written != nil {
		w.o.Written()
	}
}

// closeOpen ends node's open calls in tx at end with cause, writing each
// record and the events it brings as the journal would; note goes into
// their trace.
func (w *CallWriter) closeOpen(ctx context.Context, tx *sql.Tx, node, cause string, end time.Time, note string) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+callColumns+` FROM calls WHERE node = $1 AND end_us IS NULL`, node)
	if err != nil {
		return 0, err
	}
	var recs []*CallRecord
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		recs = append(recs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, c := range recs {
		c.End, c.HangupCause = end.UTC(), cause
		if c.End.Before(c.Start) {
			c.End = c.Start
		}
		if !c.Answer.IsZero() {
			c.Duration = c.End.Sub(c.Answer)
		}
		c.Trace = append(c.Trace, note)
	}
	recsEvs, evs := w.split(journalOf(recs))
	x := &txStmts{tx: tx}
	if err := insertCalls(ctx, x, recsEvs); err != nil {
		return 0, err
	}
	if len(evs) > 0 {
		if _, err := insertEvents(ctx, x, evs); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}

func journalOf(recs []*CallRecord) []journalItem {
	items := make([]journalItem, len(recs))
	for i, r := range recs {
		items[i] = journalItem{rec: r}
	}
	return items
}
