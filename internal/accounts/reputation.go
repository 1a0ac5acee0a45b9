package accounts

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/routing"
)

// ReputationList is the accounts' reputation lists (set through the API).
type ReputationList interface {
	Reputation(ctx context.Context, account, caller string) (config.Level, error)
}

// FloodCounter counts each caller's recent calls to each account, for the
// flood guard of SPEC §3: in this process ([LocalFlood]) or shared by the
// nodes on one database ([SharedFlood]). Counts saturate at
// routing.FloodLimit+1, which is all routing.FloodLevel needs; a withheld or
// non-numeric caller counts 0.
type FloodCounter interface {
	// Observe records a call from caller to account at now and returns the
	// caller's calls to the account within routing.FloodWindow, this one
	// included.
	Observe(ctx context.Context, account, caller string, now time.Time) int
	// Count returns the same without recording a call.
	Count(ctx context.Context, account, caller string, now time.Time) int
}

// LocalFlood counts calls in this process with a routing.FloodGuard.
func LocalFlood(g *routing.FloodGuard) FloodCounter { return localFlood{g} }

type localFlood struct{ g *routing.FloodGuard }

func (f localFlood) Observe(_ context.Context, account, caller string, now time.Time) int {
	return f.g.Observe(account, caller, now)
}

func (f localFlood) Count(_ context.Context, account, caller string, now time.Time) int {
	return f.g.Count(account, caller, now)
}

// FloodStore keeps the calls of every node (internal/store).
type FloodStore interface {
	ObserveCall(ctx context.Context, account, caller string, at, since time.Time, limit int) (int, error)
	CountCalls(ctx context.Context, account, caller string, since time.Time, limit int) (int, error)
}

// SharedFlood counts the calls of every node sharing st. A database error
// is logged and counts 0: a call is not refused because the count is
// unknown.
func SharedFlood(st FloodStore, log *slog.Logger) FloodCounter { return sharedFlood{st, log} }

type sharedFlood struct {
	st  FloodStore
	log *slog.Logger
}

func (f sharedFlood) Observe(ctx context.Context, account, caller string, now time.Time) int {
	key, ok := routing.FloodCaller(caller)
	if !ok {
		return 0
	}
	n, err := f.st.ObserveCall(ctx, account, key, now, now.Add(-routing.FloodWindow), routing.FloodLimit+1)
	if err != nil {
		f.log.Error("flood guard: call not counted", "account", account, "caller", caller, "err", err)
	}
	return n
}

func (f sharedFlood) Count(ctx context.Context, account, caller string, now time.Time) int {
	key, ok := routing.FloodCaller(caller)
	if !ok {
		return 0
	}
	n, err := f.st.CountCalls(ctx, account, key, now.Add(-routing.FloodWindow), routing.FloodLimit+1)
	if err != nil {
		f.log.Error("flood guard: calls not counted", "account", account, "caller", caller, "err", err)
	}
	return n
}

// Screener applies the reputation inputs of SPEC §3 that need state: the
// account's reputation list and the flood guard.
type Screener struct {
	List  ReputationList
	Flood FloodCounter // nil: no flood history (an explanation outside a node)
	Now   func() time.Time
	Log   *slog.Logger
}

// Screen raises req.Reputation with the account's list and the flood
// guard. A live call records itself with the flood guard (observe); an
// explanation only looks, and counts the call it explains as the next one,
// so that `route` answers what a call placed now would get. It returns the
// trace lines that say where a raised level came from.
func (s *Screener) Screen(ctx context.Context, account string, req *routing.Request, observe bool) []string {
	var notes []string
	if listed, err := s.List.Reputation(ctx, account, ListKey(req.Caller)); err != nil {
		s.Log.Error("reputation list", "account", account, "err", err)
	} else if listed > config.LevelNone {
		notes = append(notes, fmt.Sprintf("reputation: %s is on the account's list as %s", req.Caller, listed))
		req.Reputation = max(req.Reputation, listed)
	}
	if s.Flood == nil {
		return notes
	}
	now := s.Now()
	var calls int
	if observe {
		calls = s.Flood.Observe(ctx, account, req.Caller, now)
	} else if n := s.Flood.Count(ctx, account, req.Caller, now); n > 0 {
		calls = n + 1
	}
	if level := routing.FloodLevel(calls); level > config.LevelNone {
		notes = append(notes, fmt.Sprintf("reputation: %s placed %d calls to the account within %s (flood guard): %s",
			req.Caller, calls, routing.FloodWindow, level))
		req.Reputation = max(req.Reputation, level)
	}
	return notes
}

// ListKey is how a caller is written on the reputation list: its E.164
// form when it is a number (so +34600111222, 0034600111222 and 34600111222
// are one entry), "anonymous" when withheld, else as given.
func ListKey(caller string) string {
	if n, ok := routing.NormalizeNumber(caller); ok {
		return n
	}
	if caller == "" || strings.EqualFold(caller, "anonymous") {
		return "anonymous"
	}
	return caller
}
