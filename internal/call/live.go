package call

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// Errors of SetVariable.
var (
	ErrNoCall      = errors.New("no call in progress with that id")
	ErrBadVariable = errors.New("invalid variable")
)

// maxVariableSize bounds a variable's value set through the API.
const maxVariableSize = 256

// variables are a call's variables: set by its IVRs on its own goroutine
// and by the API from outside, so they are locked.
type variables struct {
	mu sync.Mutex
	m  map[string]string
}

func (v *variables) set(name, value string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string]string{}
	}
	v.m[name] = value
}

func (v *variables) get(name string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	value, ok := v.m[name]
	return value, ok
}

// LiveCall describes a call in progress.
type LiveCall struct {
	ID      string
	Account string
	Number  string // the called number (empty for a user's call)
	Caller  string
	Start   time.Time
	// Node is the node the call is on.
	Node string
	// Legs are the outbound legs ringing or talking now (known only to
	// the call's own node).
	Legs []LiveLeg
}

// LiveLeg is an outbound leg of a call in progress.
type LiveLeg struct {
	Member string    // as configured ("user:alice", "+34600000003")
	State  string    // "ringing" or "talking"
	Since  time.Time // when it started ringing, or answered
}

// live is what the engine keeps of a call in progress for the outside; its
// call's goroutine updates the legs (under mu), readers copy them.
type live struct {
	LiveCall
	vars *variables
	mu   sync.Mutex
}

// observe keeps the legs of the live view current with the call's events.
func (l *live) observe(ev Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev.Kind {
	case EventRinging:
		l.Legs = append(l.Legs, LiveLeg{Member: ev.Leg, State: "ringing", Since: ev.Time})
	case EventAnswered: // the others of its wave are cancelled
		l.Legs = []LiveLeg{{Member: ev.Leg, State: "talking", Since: ev.Time}}
	case EventTransferred, EventWaveEnded:
		l.Legs = nil
	}
}

// Live lists the calls in progress of an account, oldest first.
func (e *Engine) Live(account string) []LiveCall {
	var out []LiveCall
	e.live.Range(func(_, v any) bool {
		if l := v.(*live); l.Account == account {
			l.mu.Lock()
			lc := l.LiveCall
			lc.Legs = slices.Clone(l.Legs)
			l.mu.Unlock()
			out = append(out, lc)
		}
		return true
	})
	slices.SortFunc(out, func(a, b LiveCall) int { return a.Start.Compare(b.Start) })
	return out
}

// SetVariable sets a variable on a call in progress of account (SPEC §7
// PUT calls/{id}/variables/{name}): a ${name} destination reached later in
// the call resolves to value. ErrNoCall when the account has no such call
// in progress; errors wrapping ErrBadVariable also wrap a config.FieldError
// naming the field ("name", "value").
func (e *Engine) SetVariable(account, id, name, value string) error {
	v, ok := e.live.Load(id)
	if !ok || v.(*live).Account != account {
		return ErrNoCall
	}
	if err := config.CheckVariableName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrBadVariable, config.FieldError{Path: "name", Msg: err.Error()})
	}
	if value == "" || len(value) > maxVariableSize {
		return fmt.Errorf("%w: %w", ErrBadVariable, config.FieldError{Path: "value", Msg: fmt.Sprintf("must be 1-%d bytes", maxVariableSize)})
	}
	v.(*live).vars.set(name, value)
	return nil
}
