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

// Screener applies the reputation inputs of SPEC §3 that need state: the
// account's reputation list and the flood guard.
type Screener struct {
	List  ReputationList
	Flood *routing.FloodGuard // nil: no flood history (an explanation outside a node)
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
		calls = s.Flood.Observe(account, req.Caller, now)
	} else if n := s.Flood.Count(account, req.Caller, now); n > 0 {
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
