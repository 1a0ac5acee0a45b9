package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Park orbits shared by the nodes (migration 0010, docs/decisions.md
// "Park"): a call waiting in an orbit holds the orbit's row, so that no two
// nodes give out the same orbit and a pickup on any node finds the node
// the call waits on.

// ParkedCall is a call waiting in a park orbit.
type ParkedCall struct {
	Account string
	Orbit   int
	Node    string // the node holding the call
	SIPAddr string // where that node takes SIP (its nodes row)
	CallID  string // the call record's id
	Parked  time.Time
}

// claimTries bounds ClaimOrbit's retries when other nodes take the orbit
// it picked between its look and its insert.
const claimTries = 8

// ClaimOrbit gives the call callID of node the lowest orbit of lo..hi of
// account that no call of a live node holds at now; ok is false when every
// one is held. Orbits held by dead nodes, or by calls whose record says
// they ended (a release that failed), are freed first.
func (s *Store) ClaimOrbit(ctx context.Context, account string, lo, hi int, node, callID string, now time.Time) (orbit int, ok bool, err error) {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM park_orbits WHERE account = $1 AND orbit BETWEEN $2 AND $3
		AND (node NOT IN (SELECT id FROM nodes WHERE heartbeat_us >= $4)
			OR call_id IN (SELECT id FROM calls WHERE end_us IS NOT NULL))`,
		account, lo, hi, now.Add(-NodeDeadAfter).UnixMicro()); err != nil {
		return 0, false, err
	}
	for range claimTries {
		taken, err := s.heldOrbits(ctx, account, lo, hi)
		if err != nil {
			return 0, false, err
		}
		orbit = lo
		for orbit <= hi && taken[orbit] {
			orbit++
		}
		if orbit > hi {
			return 0, false, nil
		}
		res, err := s.db.ExecContext(ctx, `INSERT INTO park_orbits (account, orbit, node, call_id, parked_us)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account, orbit) DO NOTHING`,
			account, orbit, node, callID, now.UnixMicro())
		if err != nil {
			return 0, false, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, false, err
		} else if n == 1 {
			return orbit, true, nil
		}
	}
	return 0, false, errors.New("claim orbit: other nodes kept taking the free orbits")
}

func (s *Store) heldOrbits(ctx context.Context, account string, lo, hi int) (map[int]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT orbit FROM park_orbits WHERE account = $1 AND orbit BETWEEN $2 AND $3`, account, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	taken := map[int]bool{}
	for rows.Next() {
		var o int
		if err := rows.Scan(&o); err != nil {
			return nil, err
		}
		taken[o] = true
	}
	return taken, rows.Err()
}

// ReleaseOrbit frees the orbit of account that the call callID holds (not
// another call's, should the orbit have changed hands).
func (s *Store) ReleaseOrbit(ctx context.Context, account string, orbit int, callID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM park_orbits WHERE account = $1 AND orbit = $2 AND call_id = $3`,
		account, orbit, callID)
	return err
}

// ParkedCall returns the call waiting in an orbit of account on a node
// alive at now; ok is false when there is none.
func (s *Store) ParkedCall(ctx context.Context, account string, orbit int, now time.Time) (p ParkedCall, ok bool, err error) {
	var parked int64
	err = s.db.QueryRowContext(ctx, `SELECT p.node, n.sip_addr, p.call_id, p.parked_us
		FROM park_orbits p JOIN nodes n ON n.id = p.node
		WHERE p.account = $1 AND p.orbit = $2 AND n.heartbeat_us >= $3`,
		account, orbit, now.Add(-NodeDeadAfter).UnixMicro()).Scan(&p.Node, &p.SIPAddr, &p.CallID, &parked)
	if errors.Is(err, sql.ErrNoRows) {
		return ParkedCall{}, false, nil
	}
	if err != nil {
		return ParkedCall{}, false, err
	}
	p.Account, p.Orbit, p.Parked = account, orbit, time.UnixMicro(parked).UTC()
	return p, true, nil
}

// ClearOrbits frees every orbit node holds: at its start, what it held
// before a crash.
func (s *Store) ClearOrbits(ctx context.Context, node string) error {
	return clearOrbits(ctx, s.db, node)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func clearOrbits(ctx context.Context, db execer, node string) error {
	_, err := db.ExecContext(ctx, `DELETE FROM park_orbits WHERE node = $1`, node)
	return err
}
