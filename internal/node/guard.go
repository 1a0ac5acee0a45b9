package node

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/store"
)

// sharedGuard makes the registrar guards of the nodes on one PostgreSQL
// database one guard (docs/decisions.md "Nodes"): every node counts a
// source's digest failures in the database, so 5 failures spread over the
// nodes lock it out; a lockout is stored and NOTIFYed, and every node
// holds all of them in its memory set, which is what each request checks.
type sharedGuard struct {
	st    *store.Store
	locks *registrar.Lockouts
	log   *slog.Logger
}

// Guard windows kept in the database: the longest failure window and
// flood window in use (1 minute each), with a margin.
const (
	guardSweepEvery = time.Minute
	guardKeep       = 2 * time.Minute
)

func newSharedGuard(st *store.Store, maxSources int, log *slog.Logger) *sharedGuard {
	return &sharedGuard{st: st, locks: registrar.NewLockouts(maxSources), log: log}
}

// Fail implements registrar.FailureLedger.
func (g *sharedGuard) Fail(ctx context.Context, ip netip.Addr, now, since time.Time) (int, error) {
	return g.st.AddAuthFailure(ctx, ip.String(), now, since)
}

// Lock implements registrar.FailureLedger: stored and announced to every
// node (this one has it in its set already).
func (g *sharedGuard) Lock(ctx context.Context, ip netip.Addr, until time.Time) error {
	return g.st.PutLockout(ctx, ip.String(), until)
}

// run holds the other nodes' lockouts in the set until ctx ends: those in
// force when it starts (and after each reconnection), then each one
// announced; once a minute it sweeps the rows that are out of every window.
func (g *sharedGuard) run(ctx context.Context) {
	go g.sweep(ctx)
	for ctx.Err() == nil {
		if err := g.load(ctx); err != nil {
			g.log.Warn("guard: load lockouts", "err", err)
		}
		err := g.st.ListenLockouts(ctx, func(source string, until time.Time) {
			if ip, err := netip.ParseAddr(source); err == nil {
				g.locks.Lock(ip, until)
			}
		})
		if ctx.Err() != nil {
			return
		}
		g.log.Warn("guard: listen for lockouts", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (g *sharedGuard) load(ctx context.Context) error {
	locks, err := g.st.Lockouts(ctx, time.Now())
	for source, until := range locks {
		if ip, err := netip.ParseAddr(source); err == nil {
			g.locks.Lock(ip, until)
		}
	}
	return err
}

func (g *sharedGuard) sweep(ctx context.Context) {
	t := time.NewTicker(guardSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := g.st.SweepGuard(ctx, now.Add(-guardKeep), now); err != nil {
				g.log.Warn("guard: sweep", "err", err)
			}
		}
	}
}
