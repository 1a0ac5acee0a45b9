package registrar

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/security"
)

// GuardConfig configures a [Guard]. Zero values take the defaults; a negative
// FloodRequests disables the flood ban and a negative MaxFailures disables
// lockout.
type GuardConfig struct {
	// FloodRequests is how many new requests (out of dialog, ACK and
	// CANCEL aside) one source may send in FloodWindow; more ban it for
	// BanDuration, in which its requests are dropped without an answer
	// (default 16 in 2 s, banned 5 minutes: Kamailio pike's figures).
	FloodRequests int
	FloodWindow   time.Duration
	BanDuration   time.Duration
	// TrunkRequests is the limit in FloodWindow of a trunk's address (see
	// Trunk): over it, requests are dropped but the trunk is never banned
	// (default 4000, 2,000 requests a second).
	TrunkRequests int
	// Trunk, if set, tells the trunks' addresses, which have the higher
	// limit. It never exempts from lockout: a wrong password counts the
	// same from any address.
	Trunk func(netip.Addr) bool
	// Scanners are User-Agent substrings (case-insensitive) of scanning
	// tools, whose requests are dropped without an answer (default
	// DefaultScanners; an empty non-nil slice drops none).
	Scanners []string
	// MaxFailures failed authentications within FailureWindow lock the
	// source out (default 5 within 1 minute).
	MaxFailures   int
	FailureWindow time.Duration
	// LockoutDuration is how long a locked-out source gets 403 (default
	// DefaultLockout).
	LockoutDuration time.Duration
	// MaxSources bounds the number of addresses tracked (default 65536).
	MaxSources int
	// Ledger counts failures and keeps lockouts (default: in this process
	// only). Several nodes that share one lock a source out together.
	Ledger FailureLedger
	// Lockouts is the set of sources locked out that Locked checks (default:
	// a set of the Guard's own). Whoever hears of other nodes' lockouts adds
	// them to it.
	Lockouts *Lockouts
	// Source extracts the address a request is accounted to (default
	// [SourceAddr]). Behind a front proxy, take it from a trusted header.
	Source func(*sip.Request) netip.Addr
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the security events (default slog.Default()).
	Logger *slog.Logger
}

// DefaultScanners are the User-Agents of the SIP scanners seen on the open
// internet (sipvicious and its forks, sipcli, VaxSIP, SIPScan, sundayddr,
// iWar, SiVuS, smap).
var DefaultScanners = []string{"friendly-scanner", "sipvicious", "sipcli", "vaxsipuseragent", "sip-scan", "sipscan",
	"sundayddr", "iwar", "sivus", "smap"}

// DefaultLockout is how long a source is locked out by default.
const DefaultLockout = 15 * time.Minute

// FailureLedger counts authentication failures and records lockouts for a
// [Guard]: in memory for one node, in the database for several.
type FailureLedger interface {
	// Fail records a failure from ip at now and returns how many failures
	// ip has had after since, this one included.
	Fail(ctx context.Context, ip netip.Addr, now, since time.Time) (recent int, err error)
	// Lock records that ip is locked out until until, which spends its
	// failures so far.
	Lock(ctx context.Context, ip netip.Addr, until time.Time) error
}

// Guard limits what one source address can do: scanners' requests are
// dropped, a flood of requests bans the source for a while (Kamailio pike
// style), and repeated authentication failures lock it out (fail2ban
// style). It is safe for concurrent use.
type Guard struct {
	cfg    GuardConfig
	ledger FailureLedger
	locks  *Lockouts

	mu        sync.Mutex
	sources   map[netip.Addr]*sourceState
	lastSweep time.Time
}

// sourceState counts one source's requests in two consecutive windows, the
// current one starting at start: the rate over the last window is
// estimated from both (a sliding window).
type sourceState struct {
	start       time.Time
	cur, prev   int
	last        time.Time // last request
	bannedUntil time.Time
	scanLogged  time.Time // last scanner_dropped event logged
}

// NewGuard returns a Guard with cfg's defaults filled in.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.FloodRequests == 0 {
		cfg.FloodRequests = 16
	}
	if cfg.FloodWindow <= 0 {
		cfg.FloodWindow = 2 * time.Second
	}
	if cfg.BanDuration <= 0 {
		cfg.BanDuration = 5 * time.Minute
	}
	if cfg.TrunkRequests == 0 {
		cfg.TrunkRequests = 4000
	}
	if cfg.Scanners == nil {
		cfg.Scanners = DefaultScanners
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = time.Minute
	}
	if cfg.LockoutDuration <= 0 {
		cfg.LockoutDuration = DefaultLockout
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
	g := &Guard{cfg: cfg, ledger: cfg.Ledger, locks: cfg.Lockouts, sources: make(map[netip.Addr]*sourceState)}
	if g.ledger == nil {
		g.ledger = NewMemoryLedger(cfg.MaxSources)
	}
	if g.locks == nil {
		g.locks = NewLockouts(cfg.MaxSources)
	}
	return g
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

// Middleware drops scanners' requests and those of a banned or flooding
// source (no response, like Kamailio pike: answering a flood only feeds
// it), and answers 403 to every request from a locked-out source. ACKs are
// never answered.
func (g *Guard) Middleware(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		ip := g.cfg.Source(req)
		if g.scanner(req) {
			g.scannerDropped(ip, req)
			return
		}
		var drop bool
		if counted(req) {
			drop = !g.Allow(ip) // which checks the ban too
		} else {
			drop = g.banned(ip) // in a dialog: only a ban drops it
		}
		if drop {
			g.cfg.Logger.Debug("sip request from a flooding source dropped", "source", ip, "method", req.Method)
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

// counted tells the requests the flood limit counts: the new ones, out of
// any dialog. A call's own ACKs, CANCELs, BYEs and re-INVITEs are bounded
// by the calls themselves.
func counted(req *sip.Request) bool {
	if req.IsAck() || req.IsCancel() {
		return false
	}
	if to := req.To(); to != nil {
		if tag, _ := to.Params.Get("tag"); tag != "" {
			return false
		}
	}
	return true
}

// scanner reports whether req's User-Agent is a known scanner's.
func (g *Guard) scanner(req *sip.Request) bool {
	h := req.GetHeader("User-Agent")
	if h == nil || len(g.cfg.Scanners) == 0 {
		return false
	}
	ua := strings.ToLower(h.Value())
	for _, s := range g.cfg.Scanners {
		if strings.Contains(ua, s) {
			return true
		}
	}
	return false
}

// scannerDropped logs a scanner's dropped request, once a minute per
// source at most: a scan is thousands of requests.
func (g *Guard) scannerDropped(ip netip.Addr, req *sip.Request) {
	now := g.cfg.Now()
	g.mu.Lock()
	s := g.state(ip, now)
	log := now.Sub(s.scanLogged) >= time.Minute
	if log {
		s.scanLogged = now
	}
	g.mu.Unlock()
	if log {
		security.Log(g.cfg.Logger, security.ScannerDropped, ip, "method", req.Method, "user_agent", req.GetHeader("User-Agent").Value())
	}
}

// banned reports whether ip is banned.
func (g *Guard) banned(ip netip.Addr) bool {
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sources[ip]
	return ok && now.Before(s.bannedUntil)
}

// Allow counts one request from ip and reports whether it may proceed: not
// while ip is banned, and not over its limit, which bans it (a trunk's
// address is never banned: only its excess is dropped).
func (g *Guard) Allow(ip netip.Addr) bool {
	limit, trunk := g.cfg.FloodRequests, g.cfg.Trunk != nil && g.cfg.Trunk(ip)
	if trunk {
		limit = g.cfg.TrunkRequests
	}
	if limit < 0 {
		return true
	}
	now := g.cfg.Now()
	g.mu.Lock()
	s := g.state(ip, now)
	if now.Before(s.bannedUntil) {
		g.mu.Unlock()
		return false
	}
	w := g.cfg.FloodWindow
	s.last = now
	switch elapsed := now.Sub(s.start); {
	case elapsed >= 2*w:
		s.start, s.prev, s.cur = now, 0, 0
	case elapsed >= w:
		s.start, s.prev, s.cur = s.start.Add(w), s.cur, 0
	}
	s.cur++
	rate := float64(s.prev)*(1-float64(now.Sub(s.start))/float64(w)) + float64(s.cur)
	if rate <= float64(limit) {
		g.mu.Unlock()
		return true
	}
	if trunk {
		s.cur-- // dropped, so not counted
		g.mu.Unlock()
		return false
	}
	s.bannedUntil = now.Add(g.cfg.BanDuration)
	g.mu.Unlock()
	security.Log(g.cfg.Logger, security.Ban, ip, "requests", int(rate), "window", w.String(),
		"until", s.bannedUntil.UTC().Format(time.RFC3339))
	return false
}

// Locked reports whether ip is locked out. It reads memory only: lockouts
// from other nodes are in the Lockouts set already.
func (g *Guard) Locked(ip netip.Addr) bool {
	if g.cfg.MaxFailures < 0 {
		return false
	}
	return g.locks.Locked(ip, g.cfg.Now())
}

// Fail records a failed authentication from ip and reports whether ip is now
// locked out. A ledger that fails is logged, and the failure not counted.
func (g *Guard) Fail(ctx context.Context, ip netip.Addr) bool {
	if g.cfg.MaxFailures < 0 {
		return false
	}
	now := g.cfg.Now()
	if g.locks.Locked(ip, now) {
		return true
	}
	n, err := g.ledger.Fail(ctx, ip, now, now.Add(-g.cfg.FailureWindow))
	if err != nil {
		g.cfg.Logger.Error("sip auth failure not counted", "source", ip, "err", err)
		return false
	}
	if n < g.cfg.MaxFailures {
		return false
	}
	until := now.Add(g.cfg.LockoutDuration)
	g.locks.Lock(ip, until)
	if err := g.ledger.Lock(ctx, ip, until); err != nil {
		g.cfg.Logger.Error("sip lockout not shared", "source", ip, "err", err)
	}
	security.Log(g.cfg.Logger, security.Lockout, ip, "failures", n, "until", until.UTC().Format(time.RFC3339))
	return true
}

// state returns ip's state, creating it if needed. g.mu must be held.
func (g *Guard) state(ip netip.Addr, now time.Time) *sourceState {
	if s, ok := g.sources[ip]; ok {
		return s
	}
	if len(g.sources) >= g.cfg.MaxSources {
		g.evict(now)
	}
	s := &sourceState{start: now, last: now}
	g.sources[ip] = s
	return s
}

// evict makes room for one more source: at most once a second it sweeps out
// every idle entry (nothing counted in the last two windows, not banned);
// otherwise, or if that freed nothing, it drops some entry.
func (g *Guard) evict(now time.Time) {
	if now.Sub(g.lastSweep) >= time.Second {
		g.lastSweep = now
		for ip, s := range g.sources {
			if now.Sub(s.last) >= 2*g.cfg.FloodWindow && !now.Before(s.bannedUntil) {
				delete(g.sources, ip)
			}
		}
		if len(g.sources) < g.cfg.MaxSources {
			return
		}
	}
	for ip := range g.sources { // map order is random
		delete(g.sources, ip)
		return
	}
}

// tracked reports the number of addresses tracked.
func (g *Guard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sources)
}
