package call

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/security"
)

// The toll-fraud caps of an account (defaults.max_outbound_calls and
// max_outbound_per_hour) bound what a stolen password or a hijacked phone
// can run up once allowed_destinations let its calls through: calls from
// the account's users to external numbers, counted from the moment one is
// admitted until it ends, however it ends.
//
// The counts are this node's, in memory (docs/security.md, "Toll fraud"):
// with several nodes behind Kamailio an account can place up to the cap on
// each of them.

// errOutboundLimit is the refusal of a call over a cap: 403, with the
// reason in a Warning so that the phone's user can tell it from a number
// not allowed.
var errOutboundLimit = &SIPError{Code: 403, Err: errors.New("outbound call limit")}

// hourWindow is the window of max_outbound_per_hour: any hour, sliding.
const hourWindow = time.Hour

// Names of the cap a refused call hit, as logged (cap=...).
const (
	capConcurrent = "concurrent"
	capHourly     = "hourly"
)

// outboundLimits counts the outbound calls of every account on this node.
type outboundLimits struct {
	mu       sync.Mutex
	accounts map[string]*outboundCount
}

// outboundCount is one account's outbound calls.
type outboundCount struct {
	active int         // admitted and not ended
	starts []time.Time // admissions within the last hour, oldest first
}

// admit counts in an outbound call of account at now under the caps (0:
// none). It returns the release that counts it out, safe to call more than
// once, or the cap the call would break.
func (l *outboundLimits) admit(account string, now time.Time, maxActive, maxPerHour int) (release func(), hit string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.accounts == nil {
		l.accounts = map[string]*outboundCount{}
	}
	n := l.accounts[account]
	if n == nil {
		n = &outboundCount{}
		l.accounts[account] = n
	}
	n.expire(now)
	switch {
	case maxActive > 0 && n.active >= maxActive:
		l.forget(account, n)
		return nil, capConcurrent
	case maxPerHour > 0 && len(n.starts) >= maxPerHour:
		l.forget(account, n)
		return nil, capHourly
	}
	n.active++
	// Without an hourly cap nothing reads the starts: keeping them would
	// only grow the list.
	if maxPerHour > 0 {
		n.starts = append(n.starts, now)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			n.active--
			l.forget(account, n)
		})
	}, ""
}

// expire drops the starts older than the window.
func (n *outboundCount) expire(now time.Time) {
	i := 0
	for i < len(n.starts) && now.Sub(n.starts[i]) >= hourWindow {
		i++
	}
	if i > 0 {
		n.starts = append(n.starts[:0], n.starts[i:]...)
	}
}

// forget drops an account's entry once nothing is counted in it, so that
// accounts that stop calling out cost nothing. Expired starts go at the
// next admission; an idle account's entry waits for that (or for its last
// call to end) and is small.
func (l *outboundLimits) forget(account string, n *outboundCount) {
	if n.active == 0 && len(n.starts) == 0 && l.accounts[account] == n {
		delete(l.accounts, account)
	}
}

// outbound admits a call under its account's caps when it is a user's call
// to an external number (what goes out through the trunk on the user's
// behalf); any other call needs nothing. When the call is refused it has
// been answered 403 and the refusal logged as a security event; ok is
// false. release (never nil when ok) counts the call out when it ends.
func (e *Engine) outbound(in Inbound) (release func(), ok bool) {
	if in.User == "" || in.Route != nil || in.FromPeer || in.Pickup != "" ||
		in.Snap.Target(in.Target).Kind != routing.TargetNumber {
		return func() {}, true
	}
	d := in.Snap.Doc().Defaults
	maxActive, maxPerHour := d.OutboundCallLimit(), d.OutboundHourlyLimit()
	release, hit := e.limits.admit(in.Snap.Account(), time.Now(), maxActive, maxPerHour)
	if hit == "" {
		return release, true
	}
	limit := maxActive
	if hit == capHourly {
		limit = maxPerHour
	}
	security.Log(e.cfg.Log, security.TollFraud, source(in),
		"reason", "outbound_limit", "cap", hit, "limit", limit,
		"account", in.Snap.Account(), "user", in.User, "destination", in.Target, "sip_call_id", callID(in.Req))
	_ = Respond(in.Tx, in.Req, errOutboundLimit)
	return nil, false
}

// source is where the call came from: as the SIP front saw it (behind a
// trusted proxy, the address the proxy names), else the packet's source.
func source(in Inbound) netip.Addr {
	if in.Source.IsValid() {
		return in.Source
	}
	if ap, err := netip.ParseAddrPort(in.Req.Source()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// variableAllowed applies allowed_destinations to a ${var} destination that
// resolved to an external number: what a caller types into an IVR's collect
// (or anyone sets through the API) must not dial the world through the
// trunk. A user's call is refused as a toll_fraud security event; a
// carrier's caller gets a plain warning, since the event's source would be
// the trunk, which no firewall should block for what one caller typed.
func (c *call) variableAllowed(name, target string) bool {
	snap := c.in.Snap
	if snap.Target(target).Kind != routing.TargetNumber || snap.AllowedDestination(target) {
		return true
	}
	c.tracef("${%s} = %s is not in allowed_destinations", name, target)
	args := []any{"reason", "destination_not_allowed", "account", snap.Account(), "variable", name, "destination", target}
	if c.in.User != "" {
		security.Log(c.log, security.TollFraud, source(c.in), append(args, "user", c.in.User)...)
	} else {
		c.log.Warn("external number refused: not in allowed_destinations", append(args, "caller", c.callerID)...)
	}
	return false
}
