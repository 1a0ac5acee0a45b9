// Package sipserver is Switchboard's SIP front: listeners, request
// classification (trunk, registered user, anything else), the registrar,
// in-dialog request routing, and the account directory kept current from the
// store. Calls themselves run in internal/call.
package sipserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/nyaruka/phonenumbers"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// Store is what the SIP server needs from storage.
type Store interface {
	Accounts(ctx context.Context) ([]string, error)
	LoadConfig(ctx context.Context, account string) (*config.Document, int64, error)
	WatchConfig(ctx context.Context, interval time.Duration, changed func(account string, version int64)) error
	PutContact(ctx context.Context, c store.Contact) error
	DeleteContact(ctx context.Context, account, user, uri string) error
	Contacts(ctx context.Context, account, user string, now time.Time) ([]store.Contact, error)
	call.Records
	call.Counters
}

// Config configures a Server.
type Config struct {
	Store Store
	// Records receives call records (default Store; a batching writer in
	// production).
	Records    call.Records
	Log        *slog.Logger
	SIPAddr    string     // host:port for UDP and TCP, e.g. ":5060"
	MediaIP    netip.Addr // advertised in SDP; default: the SIP listen IP, or 127.0.0.1
	RTPMin     int        // RTP port range (default 10000-20000)
	RTPMax     int
	RTPTimeout time.Duration
	// RingTimeout bounds the ringback of on_failure: tones (default 2 min).
	RingTimeout time.Duration
	Secret      []byte // nonce signing secret shared by the nodes
	Hooks       call.Hooks
	// CaptchaRand is the voice captcha's random source (nil: crypto/rand).
	CaptchaRand io.Reader
	// Recordings is where call recordings are written (see call.Config).
	Recordings string
	// TTS renders say: prompts (default espeak-ng).
	TTS prompt.TTS
	// OnRegister is called after each successful registration.
	OnRegister func(account, user string)
	// Guard overrides the rate-limit and lockout settings (tests).
	Guard registrar.GuardConfig
}

// Server is one Switchboard SIP node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	engine *call.Engine
	// running is engine for other goroutines (metrics, the API): nil until
	// Run has set it up.
	running atomic.Pointer[call.Engine]
	reg     *registrar.Registrar
	auth    *registrar.Authenticator
	guard   *registrar.Guard
	dir     atomic.Pointer[directory]

	mu       sync.Mutex // serialises directory rebuilds
	snaps    map[string]*routing.Snapshot
	prompts  map[string]*prompt.Library
	versions map[string]int64
	udpAddr  net.Addr
	tcpAddr  net.Addr
	ready    atomic.Bool
}

// New builds a server; Run starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SIPAddr == "" {
		cfg.SIPAddr = ":5060"
	}
	if cfg.RTPMin == 0 {
		cfg.RTPMin, cfg.RTPMax = 10000, 20000
	}
	if cfg.TTS == nil {
		cfg.TTS = prompt.ESpeak{}
	}
	if cfg.Records == nil {
		cfg.Records = cfg.Store
	}
	s := &Server{cfg: cfg, log: cfg.Log, snaps: map[string]*routing.Snapshot{}, prompts: map[string]*prompt.Library{}, versions: map[string]int64{}}
	s.dir.Store(buildDirectory(s.snaps, s.prompts))
	return s, nil
}

// Ready reports whether the listeners are up and the configuration loaded.
func (s *Server) Ready() bool { return s.ready.Load() && !s.engine.Draining() }

// Engine returns the call engine (for metrics and the API), or nil until
// Run has set up the listeners.
func (s *Server) Engine() *call.Engine { return s.running.Load() }

// UDPAddr returns the bound UDP address once Run has started listening.
func (s *Server) UDPAddr() net.Addr { return s.udpAddr }

// TCPAddr returns the bound TCP address once Run has started listening.
func (s *Server) TCPAddr() net.Addr { return s.tcpAddr }

// Run listens on UDP and TCP, keeps the configuration current and serves
// until ctx ends; then it refuses new calls and drains the calls in progress
// for up to drain before returning.
func (s *Server) Run(ctx context.Context, drain time.Duration, started func()) error {
	udp, err := net.ListenPacket("udp", s.cfg.SIPAddr)
	if err != nil {
		return fmt.Errorf("sip udp listen %s: %w", s.cfg.SIPAddr, err)
	}
	tcp, err := net.Listen("tcp", udp.LocalAddr().String())
	if err != nil {
		udp.Close()
		return fmt.Errorf("sip tcp listen %s: %w", udp.LocalAddr(), err)
	}
	// The default 208 KiB receive buffer overflows in load bursts, and
	// every dropped INVITE comes back as a retransmission.
	if u, ok := udp.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(8 << 20)
	}
	s.udpAddr, s.tcpAddr = udp.LocalAddr(), tcp.Addr()
	if err := s.setup(udp.LocalAddr().(*net.UDPAddr)); err != nil {
		udp.Close()
		tcp.Close()
		return err
	}
	defer s.ua.Close()

	srvCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	errc := make(chan error, 2)
	go func() { errc <- s.srv.ServeUDP(udp) }()
	go func() { errc <- s.srv.ServeTCP(tcp) }()

	if err := s.LoadAll(ctx); err != nil {
		return fmt.Errorf("load configuration: %w", err)
	}
	go s.watch(srvCtx)
	s.ready.Store(true)
	s.log.Info("sip listening", "udp", s.udpAddr, "tcp", s.tcpAddr, "media_ip", s.cfg.MediaIP)
	if started != nil {
		started()
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("sip serve: %w", err)
	}
	s.log.Info("shutting down: refusing new calls, draining", "active", s.engine.Active(), "drain_timeout", drain)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	s.engine.Drain(dctx)
	cancel()
	udp.Close()
	tcp.Close()
	return nil
}

// setup creates the SIP stack bound to the listening address.
func (s *Server) setup(laddr *net.UDPAddr) error {
	host := laddr.IP.String()
	if laddr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	if !s.cfg.MediaIP.IsValid() {
		s.cfg.MediaIP = netip.MustParseAddr(host)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard"), sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.log)))
	if err != nil {
		return err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		return err
	}
	hostPort := net.JoinHostPort(host, fmt.Sprint(laddr.Port))
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(host), sipgo.WithClientPort(laddr.Port),
		sipgo.WithClientConnectionAddr(hostPort))
	if err != nil {
		return err
	}
	alloc, err := media.NewPortAllocator(s.cfg.MediaIP, s.cfg.RTPMin, s.cfg.RTPMax)
	if err != nil {
		return err
	}
	s.ua, s.srv = ua, srv
	gcfg := s.cfg.Guard
	gcfg.Exempt = s.isTrunk
	gcfg.Logger = s.log
	s.guard = registrar.NewGuard(gcfg)
	users := usersFunc(func(domain, username string) (string, string, string, bool) {
		return s.dir.Load().LookupUser(domain, username)
	})
	s.auth, err = registrar.NewAuthenticator(registrar.AuthConfig{Users: users, Secret: s.cfg.Secret, Guard: s.guard, Logger: s.log})
	if err != nil {
		return err
	}
	s.reg, err = registrar.New(registrar.Config{Users: users, Contacts: contactStore{s.cfg.Store}, Auth: s.auth, Logger: s.log, OnRegister: s.cfg.OnRegister})
	if err != nil {
		return err
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "switchboard", Host: host, Port: laddr.Port}}
	s.engine = call.New(call.Config{
		UA:          &sipgo.DialogUA{Client: cli, ContactHDR: contact},
		Media:       alloc,
		MediaIP:     s.cfg.MediaIP,
		Devices:     devices{s.reg},
		Records:     s.cfg.Records,
		Counters:    s.cfg.Store,
		Hooks:       s.cfg.Hooks,
		Log:         s.log,
		RTPTimeout:  s.cfg.RTPTimeout,
		RingTimeout: s.cfg.RingTimeout,
		Recordings:  s.cfg.Recordings,
		CaptchaRand: s.cfg.CaptchaRand,
	})
	s.running.Store(s.engine)
	guard := s.guard.Middleware
	srv.OnInvite(guard(recovered(s.log, s.onInvite)))
	srv.OnAck(s.onAck)
	srv.OnBye(guard(recovered(s.log, s.onBye)))
	srv.OnRefer(guard(recovered(s.log, func(req *sip.Request, tx sip.ServerTransaction) {
		if err := s.engine.HandleRefer(req, tx); errors.Is(err, call.ErrNoDialog) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})))
	srv.OnInfo(guard(recovered(s.log, func(req *sip.Request, tx sip.ServerTransaction) {
		if err := s.engine.HandleInfo(req, tx); errors.Is(err, call.ErrNoDialog) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})))
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	srv.OnRegister(guard(recovered(s.log, s.reg.HandleRegister)))
	srv.OnOptions(guard(func(req *sip.Request, tx sip.ServerTransaction) {
		code, reason := 200, "OK"
		if !s.Ready() {
			code, reason = 503, "Service Unavailable"
		}
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, REFER, INFO"))
		_ = tx.Respond(res)
	}))
	srv.OnNoRoute(guard(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil))
	}))
	return nil
}

// recovered keeps a panic in one request from taking the process down.
func recovered(log *slog.Logger, h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("sip handler panicked", "method", req.Method, "panic", r)
				_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
			}
		}()
		h(req, tx)
	}
}

func (s *Server) isTrunk(ip netip.Addr) bool {
	return len(s.dir.Load().trunkAccounts(ip)) > 0
}

func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	s.engine.HandleAck(req, tx)
}

func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if err := s.engine.HandleBye(req, tx); errors.Is(err, call.ErrNoDialog) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
}

// onInvite classifies a new INVITE and hands it to the call engine; it
// returns when the call ends or, once answered, when the caller has
// acknowledged our 200 (call.Engine.Handle): never before the final
// response, as sipgo requires.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if tag, _ := to.Params.Get("tag"); tag != "" {
			if err := s.engine.HandleReinvite(req, tx); err != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			}
			return
		}
	}
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.Contact() == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	if s.engine.Draining() {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil))
		return
	}
	dir := s.dir.Load()
	src := registrar.SourceAddr(req)
	if accts := dir.trunkAccounts(src); len(accts) > 0 {
		s.fromTrunk(req, tx, dir, accts)
		return
	}
	if _, known := dir.domains[registrar.RealmOf(req)]; !known {
		s.log.Info("INVITE from an unknown source refused", "source", src, "from", req.From().Address.String())
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return
	}
	id, ok := s.auth.Authenticate(req, tx)
	if !ok {
		return
	}
	s.fromUser(req, tx, dir, id)
}

// fromTrunk routes a carrier's call to the number in the Request-URI.
func (s *Server) fromTrunk(req *sip.Request, tx sip.ServerTransaction, dir *directory, accts map[string]string) {
	called := req.Recipient.User
	n, ok := routing.NormalizeNumber(called)
	acct, owned := dir.numbers[n]
	if _, fromItsTrunk := accts[acct]; !ok || !owned || !fromItsTrunk {
		// Unknown to every account this trunk belongs to: route it anyway
		// through one of them so the 404 gets a call record and a trace.
		for a := range accts {
			acct = a
			break
		}
	}
	snap := dir.snaps[acct]
	doc := snap.Doc()
	trunk := doc.Trunks[accts[acct]]
	rreq := &routing.Request{
		Number:     called,
		Caller:     callerNumber(req),
		CallerName: req.From().DisplayName,
		Reputation: reputation(req, trunk.ReputationHeader),
	}
	trace := []string{fmt.Sprintf("INVITE from trunk %s (%s) for %s", accts[acct], registrar.SourceAddr(req), called)}
	s.engine.Handle(context.Background(), call.Inbound{Req: req, Tx: tx, Snap: snap, Prompts: dir.prompts[acct], Route: rreq, Trace: trace})
}

// callerNumber is C: the From user, or anonymous when withheld.
func callerNumber(req *sip.Request) string {
	from := req.From()
	if from == nil || strings.EqualFold(from.Address.User, "anonymous") || from.Address.User == "" {
		return "anonymous"
	}
	if p := req.GetHeader("Privacy"); p != nil && strings.Contains(strings.ToLower(p.Value()), "id") {
		return "anonymous"
	}
	return from.Address.User
}

// reputation is R from what the request carries: the trunk's score header
// and a STIR/SHAKEN verstat (SPEC §3).
func reputation(req *sip.Request, header string) config.Level {
	level := config.LevelNone
	if header != "" {
		if h := req.GetHeader(header); h != nil {
			var score int
			if _, err := fmt.Sscan(strings.TrimSpace(h.Value()), &score); err == nil {
				switch {
				case score >= 90:
					level = config.LevelHigh
				case score >= 60:
					level = config.LevelMedium
				case score >= 30:
					level = config.LevelLow
				}
			}
		}
	}
	for _, name := range []string{"P-Asserted-Identity", "From"} {
		h := req.GetHeader(name)
		if h == nil {
			continue
		}
		v := strings.ToLower(h.Value())
		switch {
		case strings.Contains(v, "verstat=tn-validation-failed"):
			level = max(level, config.LevelHigh)
		case strings.Contains(v, "verstat=no-tn-validation"):
			level = max(level, config.LevelLow)
		}
	}
	return level
}

// fromUser routes a call dialled by a registered user: an extension number,
// an extension code or an external number through the default trunk.
func (s *Server) fromUser(req *sip.Request, tx sip.ServerTransaction, dir *directory, id registrar.Identity) {
	snap := dir.snaps[id.Account]
	doc := snap.Doc()
	dialled := req.Recipient.User
	user := doc.Users[id.User]
	trace := []string{fmt.Sprintf("INVITE from user %s (%s) dialling %q", id.User, registrar.SourceAddr(req), dialled)}
	in := call.Inbound{Req: req, Tx: tx, Snap: snap, Prompts: dir.prompts[id.Account], User: id.User, CallerID: user.Extension, CallerName: id.User}
	if in.CallerID == "" {
		in.CallerID = id.User
	}
	if lot, ok := snap.LookupOrbit(dialled); ok {
		in.Pickup = dialled
		in.Trace = append(trace, fmt.Sprintf("%s is an orbit of park lot %s: pick up", dialled, lot))
		s.engine.Handle(context.Background(), in)
		return
	}
	if target, ok := snap.LookupCode(dialled); ok {
		in.Target = target
		in.Trace = append(trace, fmt.Sprintf("%s is %s", dialled, target))
		s.engine.Handle(context.Background(), in)
		return
	}
	number, ok := routing.NormalizeNumber(dialled)
	if !ok {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 404, "Not Found", nil))
		return
	}
	if !allowed(doc, number) {
		s.log.Warn("external call refused: not in allowed_destinations", "user", id.User, "number", number)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return
	}
	// An external call presents the account's number: the service number,
	// or failing that the user's own extension.
	if doc.Defaults.ServiceNumber != "" {
		in.CallerID = doc.Defaults.ServiceNumber
	}
	in.Target = number
	in.Trace = append(trace, fmt.Sprintf("external number %s via the default trunk", number))
	s.engine.Handle(context.Background(), in)
}

// allowed checks a dialled E.164 number against allowed_destinations (by
// default: the country of the service number, else of the account's numbers).
func allowed(doc *config.Document, number string) bool {
	patterns := doc.Defaults.AllowedDestinations
	if len(patterns) == 0 {
		home := doc.Defaults.ServiceNumber
		for n := range doc.Numbers {
			if home == "" {
				home = n
			}
		}
		if home == "" {
			return false
		}
		return sameCountry(home, number)
	}
	for _, p := range patterns {
		body := strings.TrimSuffix(p, "*")
		if !strings.HasPrefix(body, "+") {
			body = "+" + body
		}
		if (strings.HasSuffix(p, "*") && strings.HasPrefix(number, body)) || number == body {
			return true
		}
	}
	return false
}

// sameCountry reports whether two E.164 numbers share a country code.
func sameCountry(a, b string) bool {
	pa, err1 := phonenumbers.Parse(a, "")
	pb, err2 := phonenumbers.Parse(b, "")
	return err1 == nil && err2 == nil && pa.GetCountryCode() == pb.GetCountryCode()
}

type usersFunc func(domain, username string) (string, string, string, bool)

func (f usersFunc) LookupUser(domain, username string) (string, string, string, bool) {
	return f(domain, username)
}

// contactStore adapts the store's contacts to the registrar's.
type contactStore struct{ st Store }

func (c contactStore) PutContact(ctx context.Context, ct registrar.Contact) error {
	return c.st.PutContact(ctx, store.Contact(ct))
}

func (c contactStore) DeleteContact(ctx context.Context, account, user, uri string) error {
	return c.st.DeleteContact(ctx, account, user, uri)
}

func (c contactStore) Contacts(ctx context.Context, account, user string, now time.Time) ([]registrar.Contact, error) {
	cs, err := c.st.Contacts(ctx, account, user, now)
	out := make([]registrar.Contact, len(cs))
	for i, ct := range cs {
		out[i] = registrar.Contact(ct)
	}
	return out, err
}

// devices adapts the registrar to the call engine's Locator.
type devices struct{ reg *registrar.Registrar }

func (d devices) Devices(ctx context.Context, account, user string) ([]call.Device, error) {
	cs, err := d.reg.Lookup(ctx, account, user)
	out := make([]call.Device, len(cs))
	for i, c := range cs {
		out[i] = call.Device{URI: c.URI, Source: c.Source, Transport: c.Transport}
	}
	return out, err
}

// LoadAll compiles every account in the store; Run calls it before it
// reports ready.
func (s *Server) LoadAll(ctx context.Context) error {
	accounts, err := s.cfg.Store.Accounts(ctx)
	if err != nil {
		return err
	}
	for _, a := range accounts {
		s.reload(ctx, a, -1)
	}
	return nil
}

// reload compiles one account's configuration and swaps it in. A document
// that does not compile leaves the previous snapshot serving.
func (s *Server) reload(ctx context.Context, account string, version int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version >= 0 && s.versions[account] == version {
		return
	}
	doc, v, err := s.cfg.Store.LoadConfig(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		delete(s.snaps, account)
		delete(s.prompts, account)
		delete(s.versions, account)
		s.dir.Store(buildDirectory(maps.Clone(s.snaps), maps.Clone(s.prompts)))
		return
	}
	if err != nil {
		s.log.Error("load config", "account", account, "err", err)
		return
	}
	snap, err := routing.Compile(doc)
	if err != nil {
		s.log.Error("compile config: keeping the previous one", "account", account, "version", v, "err", err)
		return
	}
	lib, err := prompt.Load(ctx, doc, "", s.cfg.TTS)
	if err != nil {
		s.log.Error("prompts: calls will go on without these", "account", account, "err", err)
	}
	s.snaps[account] = snap
	s.prompts[account] = lib
	s.versions[account] = v
	s.dir.Store(buildDirectory(maps.Clone(s.snaps), maps.Clone(s.prompts)))
	s.log.Info("configuration loaded", "account", account, "version", v, "numbers", snap.Len())
}

// watch keeps the directory current: an account is recompiled when its
// version changes (polling, plus LISTEN/NOTIFY on PostgreSQL).
func (s *Server) watch(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.cfg.Store.WatchConfig(ctx, time.Second, func(account string, version int64) {
			s.reload(ctx, account, version)
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Error("config watch stopped; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
