package registrar

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// GuardConfig configures a [Guard]. Zero values take the defaults; a negative
// Rate disables rate limiting and a negative MaxFailures disables lockout.
type GuardConfig struct {
	// Rate is the sustained number of requests per second allowed from one
	// source address (default 20).
	Rate float64
	// Burst is the token bucket size (default 40).
	Burst int
	// MaxFailures failed authentications within FailureWindow lock the
	// source out (default 5 within 1 minute).
	MaxFailures   int
	FailureWindow time.Duration
	// LockoutDuration is how long a locked-out source gets 403 (default 5m).
	LockoutDuration time.Duration
	// MaxSources bounds the number of addresses tracked (default 65536).
	MaxSources int
	// Exempt, if set, exempts addresses (trunks, the Kamailio front door)
	// from rate limiting and lockout.
	Exempt func(netip.Addr) bool
	// Source extracts the address a request is accounted to (default
	// [SourceAddr]). Behind a front proxy, take it from a trusted header.
	Source func(*sip.Request) netip.Addr
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives lockout events (default slog.Default()).
	Logger *slog.Logger
}

// Guard limits what one source address can do: a token-bucket rate limit on
// requests and a lockout after repeated authentication failures (fail2ban /
// Kamailio pike style). It is safe for concurrent use.
type Guard struct {
	cfg GuardConfig

	mu        sync.Mutex
	sources   map[netip.Addr]*sourceState
	lastSweep time.Time
}

type sourceState struct {
	tokens      float64
	last        time.Time   // last token refill
	failures    []time.Time // recent failures, oldest first
	lockedUntil time.Time
}

// NewGuard returns a Guard with cfg's defaults filled in.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.Rate == 0 {
		cfg.Rate = 20
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 40
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = time.Minute
	}
	if cfg.LockoutDuration <= 0 {
		cfg.LockoutDuration = 5 * time.Minute
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 65536
	}
	if cfg.Source == nil {
		cfg.Source = SourceAddr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Guard{cfg: cfg, sources: make(map[netip.Addr]*sourceState)}
}

// SourceAddr returns the IP address a request was received from (the packet
// or connection source, not what the Via claims); the zero Addr if unknown.
func SourceAddr(req *sip.Request) netip.Addr {
	src := req.Source()
	if ap, err := netip.ParseAddrPort(src); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(src)
	if err != nil {
		host = src
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Middleware drops requests over the source's rate limit (no response, like
// Kamailio pike: answering a flood only feeds it) and answers 403 to every
// request from a locked-out source. ACKs are never answered.
func (g *Guard) Middleware(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		ip := g.cfg.Source(req)
		if !g.Allow(ip) {
			g.cfg.Logger.Debug("sip request over rate limit dropped", "source", ip, "method", req.Method)
			return
		}
		if g.Locked(ip) {
			if tx != nil && !req.IsAck() {
				_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", nil))
			}
			return
		}
		next(req, tx)
	}
}

func (g *Guard) exempt(ip netip.Addr) bool {
	return g.cfg.Exempt != nil && g.cfg.Exempt(ip)
}

// Allow takes one token from ip's bucket and reports whether the request may
// proceed.
func (g *Guard) Allow(ip netip.Addr) bool {
	if g.cfg.Rate < 0 || g.exempt(ip) {
		return true
	}
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.state(ip, now)
	s.tokens += now.Sub(s.last).Seconds() * g.cfg.Rate
	if burst := float64(g.cfg.Burst); s.tokens > burst {
		s.tokens = burst
	}
	s.last = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// Locked reports whether ip is locked out.
func (g *Guard) Locked(ip netip.Addr) bool {
	if g.cfg.MaxFailures < 0 || g.exempt(ip) {
		return false
	}
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sources[ip]
	return ok && now.Before(s.lockedUntil)
}

// Fail records a failed authentication from ip and reports whether ip is now
// locked out.
func (g *Guard) Fail(ip netip.Addr) bool {
	if g.cfg.MaxFailures < 0 || g.exempt(ip) {
		return false
	}
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.state(ip, now)
	if now.Before(s.lockedUntil) {
		return true
	}
	cut := 0
	for cut < len(s.failures) && now.Sub(s.failures[cut]) > g.cfg.FailureWindow {
		cut++
	}
	s.failures = append(s.failures[cut:], now)
	if len(s.failures) < g.cfg.MaxFailures {
		return false
	}
	s.failures = nil
	s.lockedUntil = now.Add(g.cfg.LockoutDuration)
	g.cfg.Logger.Warn("sip source locked out after failed authentications",
		"source", ip, "failures", g.cfg.MaxFailures, "until", s.lockedUntil)
	return true
}

// state returns ip's state, creating it (with a full bucket) if needed.
// g.mu must be held.
func (g *Guard) state(ip netip.Addr, now time.Time) *sourceState {
	if s, ok := g.sources[ip]; ok {
		return s
	}
	if len(g.sources) >= g.cfg.MaxSources {
		g.evict(now)
	}
	s := &sourceState{tokens: float64(g.cfg.Burst), last: now}
	g.sources[ip] = s
	return s
}

// evict makes room for one more source: at most once a second it sweeps out
// every idle entry (full bucket, no recent failure, not locked); otherwise,
// or if that freed nothing, it drops some entry that is not locked out.
func (g *Guard) evict(now time.Time) {
	if now.Sub(g.lastSweep) >= time.Second {
		g.lastSweep = now
		refill := time.Duration(float64(g.cfg.Burst) / max(g.cfg.Rate, 1e-9) * float64(time.Second))
		for ip, s := range g.sources {
			idle := (g.cfg.Rate < 0 || now.Sub(s.last) >= refill) && !now.Before(s.lockedUntil) &&
				(len(s.failures) == 0 || now.Sub(s.failures[len(s.failures)-1]) > g.cfg.FailureWindow)
			if idle {
				delete(g.sources, ip)
			}
		}
		if len(g.sources) < g.cfg.MaxSources {
			return
		}
	}
	n := 0
	for ip, s := range g.sources { // map order is random
		if !now.Before(s.lockedUntil) || n >= 64 {
			delete(g.sources, ip)
			return
		}
		n++
	}
}

// tracked reports the number of addresses tracked.
func (g *Guard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sources)
}
