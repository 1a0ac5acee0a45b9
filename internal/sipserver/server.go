// Package sipserver is Switchboard's SIP front: listeners, request
// classification (trunk, registered user, anything else), the registrar and
// in-dialog request routing. The accounts it classifies against are
// internal/accounts'; calls themselves run in internal/call.
package sipserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/security"
	"github.com/switchboard/switchboard/internal/store"
)

// Accounts is what the SIP server needs of the node's accounts.
type Accounts interface {
	View() *accounts.View
	Screen(ctx context.Context, account string, req *routing.Request, observe bool) []string
}

// Contacts stores registrations.
type Contacts interface {
	PutContact(ctx context.Context, c store.Contact) error
	DeleteContact(ctx context.Context, account, user, uri string) error
	Contacts(ctx context.Context, account, user string, now time.Time) ([]store.Contact, error)
	// RegisteredFrom reports whether a binding not expired at now came
	// from the IP address client.
	RegisteredFrom(ctx context.Context, client string, now time.Time) (bool, error)
}

// Config configures a Server.
type Config struct {
	Accounts Accounts
	Contacts Contacts
	Log      *slog.Logger
	SIPAddr  string // host:port for UDP and TCP, e.g. ":5060"
	Secret   []byte // nonce signing secret shared by the nodes
	// OnRegister is called after each successful registration.
	OnRegister func(account, user string)
	// OnBindings is called after every successful REGISTER with the
	// user's registered devices now (0: the user went offline).
	OnBindings func(account, user string, devices int)
	// Guard overrides the rate-limit and lockout settings (tests).
	Guard registrar.GuardConfig
	// TrustedProxies are the front proxies (Kamailio) whose SourceHeader
	// says where a request came from.
	TrustedProxies []netip.Addr
}

// Server is one node's SIP front: its listeners, the registrar, and the
// classification of new requests for the call engine.
type Server struct {
	cfg    Config
	log    *slog.Logger
	accts  Accounts
	udp    net.PacketConn
	tcp    net.Listener
	host   string // the listening IP as advertised (127.0.0.1 for an unspecified address)
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	dialog *sipgo.DialogUA
	engine *call.Engine
	reg    *registrar.Registrar
	auth   *registrar.Authenticator
	guard  *registrar.Guard
	errc   chan error
	ready  atomic.Bool
	msgs   atomic.Value // the Messages of SetMessages (message.go)

	tls *tlsListener // SIP over TLS (tls.go), or nil
}

// Listen binds the SIP listeners (UDP and TCP on one port) and builds the
// SIP stack over them; Serve starts answering.
func Listen(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SIPAddr == "" {
		cfg.SIPAddr = ":5060"
	}
	udp, tcp, err := listenPair(cfg.SIPAddr)
	if err != nil {
		return nil, err
	}
	// The default 208 KiB receive buffer overflows in load bursts, and
	// every dropped INVITE comes back as a retransmission.
	if u, ok := udp.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(8 << 20)
	}
	udp, tcp = screenPacketConn(udp, cfg.Log), screenListener(tcp, cfg.Log) // wire.go
	s := &Server{cfg: cfg, log: cfg.Log, accts: cfg.Accounts, udp: udp, tcp: tcp, errc: make(chan error, 2)}
	if err := s.setup(udp.LocalAddr().(*net.UDPAddr)); err != nil {
		udp.Close()
		tcp.Close()
		return nil, err
	}
	return s, nil
}

// listenPair binds UDP and TCP on one port. When the port is 0 the kernel
// picks the UDP port, and that port may already be taken for TCP by
// another program: then it tries another, a few times.
func listenPair(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	tries := 1
	if port == "0" {
		tries = 20
	}
	for i := 1; ; i++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("sip udp listen %s: %w", addr, err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if i >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("sip tcp listen %s: %w", udp.LocalAddr(), err)
		}
	}
}

// Ready reports whether the server answers calls.
func (s *Server) Ready() bool { return s.ready.Load() && !s.engine.Draining() }

// UDPAddr returns the bound UDP address.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// TCPAddr returns the bound TCP address.
func (s *Server) TCPAddr() net.Addr { return s.tcp.Addr() }

// Host is the listening IP address as other parties reach it.
func (s *Server) Host() string { return s.host }

// DialogUA is the SIP user agent the call engine places its outbound legs
// with: it sends from the listening socket.
func (s *Server) DialogUA() *sipgo.DialogUA { return s.dialog }

// Devices finds users' registered devices, for the call engine.
func (s *Server) Devices() call.Locator { return devices{s.reg} }

// Serve starts answering requests, handing calls to engine; it returns at
// once. Errors of the listeners arrive on Err.
func (s *Server) Serve(engine *call.Engine) {
	s.engine = engine
	s.handle()
	go func() { s.errc <- s.srv.ServeUDP(s.udp) }()
	go func() { s.errc <- s.srv.ServeTCP(s.tcp) }()
	s.serveTLS()
	s.ready.Store(true)
	s.log.Info("sip listening", "udp", s.UDPAddr(), "tcp", s.TCPAddr())
}

// Err reports a listener that stopped serving.
func (s *Server) Err() <-chan error { return s.errc }

// Shutdown refuses new calls and drains the calls in progress until ctx
// ends (then they are hung up), and closes the listeners.
func (s *Server) Shutdown(ctx context.Context) {
	if s.engine != nil {
		s.log.Info("shutting down: refusing new calls, draining", "active", s.engine.Active())
		s.engine.Drain(ctx)
	}
	if s.reg != nil {
		s.reg.Close()
	}
	s.udp.Close()
	s.tcp.Close()
	s.closeTLS()
	s.ua.Close()
}

// setup creates the SIP stack bound to the listening address.
func (s *Server) setup(laddr *net.UDPAddr) error {
	s.host = laddr.IP.String()
	if laddr.IP.IsUnspecified() {
		s.host = "127.0.0.1"
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard"), sipgo.WithUserAgentHostname(s.host),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.log)))
	if err != nil {
		return err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		return err
	}
	hostPort := net.JoinHostPort(s.host, fmt.Sprint(laddr.Port))
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(s.host), sipgo.WithClientPort(laddr.Port),
		sipgo.WithClientConnectionAddr(hostPort))
	if err != nil {
		return err
	}
	s.ua, s.srv = ua, srv
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "switchboard", Host: s.host, Port: laddr.Port}}
	s.dialog = &sipgo.DialogUA{Client: cli, ContactHDR: contact}
	gcfg := s.cfg.Guard
	gcfg.Trunk = func(ip netip.Addr) bool { return s.accts.View().IsTrunk(ip) }
	gcfg.Logger = s.log
	if gcfg.Source == nil {
		gcfg.Source = s.source
	}
	s.guard = registrar.NewGuard(gcfg)
	users := usersFunc(func(domain, username string) (string, string, string, bool) {
		return s.accts.View().LookupUser(domain, username)
	})
	s.auth, err = registrar.NewAuthenticator(registrar.AuthConfig{Users: users, Secret: s.cfg.Secret, Guard: s.guard, Source: s.source, Logger: s.log})
	if err != nil {
		return err
	}
	s.reg, err = registrar.New(registrar.Config{Users: users, Contacts: contactStore{s.cfg.Contacts}, Auth: s.auth, Logger: s.log, OnRegister: s.cfg.OnRegister, OnBindings: s.onBindings})
	return err
}

// handle registers the request handlers; sipgo's handler map has no lock,
// so this happens before serving.
func (s *Server) handle() {
	srv := s.srv
	guard := s.guard.Middleware
	srv.OnInvite(guard(recovered(s.log, s.onInvite)))
	srv.OnAck(s.onAck)
	srv.OnBye(guard(recovered(s.log, s.onBye)))
	srv.OnRefer(guard(recovered(s.log, func(req *sip.Request, tx sip.ServerTransaction) {
		if err := s.engine.HandleRefer(req, tx); errors.Is(err, call.ErrNoDialog) {
			_ = call.Respond(tx, req, err)
		}
	})))
	srv.OnInfo(guard(recovered(s.log, func(req *sip.Request, tx sip.ServerTransaction) {
		if err := s.engine.HandleInfo(req, tx); errors.Is(err, call.ErrNoDialog) {
			_ = call.Respond(tx, req, err)
		}
	})))
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = call.Respond(tx, req, call.ErrNoDialog)
	})
	srv.OnRegister(guard(recovered(s.log, s.reg.HandleRegister)))
	srv.OnMessage(guard(recovered(s.log, s.onMessage)))
	srv.OnOptions(guard(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if !s.Ready() {
			res = call.Response(req, call.ErrUnavailable)
		}
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, REFER, INFO, MESSAGE"))
		_ = tx.Respond(res)
	}))
	srv.OnNoRoute(guard(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = call.Respond(tx, req, &call.SIPError{Code: 405})
	}))
}

// recovered keeps a panic in one request from taking the process down.
func recovered(log *slog.Logger, h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("sip handler panicked", "method", req.Method, "panic", r)
				_ = call.Respond(tx, req, fmt.Errorf("panic: %v", r))
			}
		}()
		h(req, tx)
	}
}

func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	s.engine.HandleAck(req, tx)
}

func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if err := s.engine.HandleBye(req, tx); errors.Is(err, call.ErrNoDialog) {
		_ = call.Respond(tx, req, err)
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
				_ = call.Respond(tx, req, call.ErrNoDialog)
			}
			return
		}
	}
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.Contact() == nil {
		_ = call.Respond(tx, req, call.ErrBadRequest)
		return
	}
	if s.engine.Draining() {
		_ = call.Respond(tx, req, call.ErrUnavailable)
		return
	}
	view := s.accts.View()
	if req.GetHeader(call.PickupHeader) != nil {
		s.fromPeer(req, tx, view)
		return
	}
	src := s.source(req)
	if m, ok := view.FromTrunk(src, req.Recipient.User); ok {
		s.fromTrunk(req, tx, m)
		return
	}
	if !s.userSource(req, tx, view, src) {
		return
	}
	id, ok := s.auth.Authenticate(req, tx)
	if !ok {
		return
	}
	a, ok := view.Account(id.Account)
	if !ok { // the account went away between the two looks
		_ = call.Respond(tx, req, call.ErrForbidden)
		return
	}
	s.fromUser(req, tx, a, id, false)
}

// userSource answers 403, and returns false, unless a request that is not
// a trunk's may come from a user: its source must have a registration, and
// the request must be for one of our domains. Every source without one
// gets the same refusal, whatever domain and user it names, so that no
// scanner learns which domains are hosted here, and a password can only be
// guessed by REGISTER (docs/security.md).
func (s *Server) userSource(req *sip.Request, tx sip.ServerTransaction, view *accounts.View, src netip.Addr) bool {
	reason := ""
	if !s.registered(src) {
		reason = "unregistered_source"
	} else if _, known := view.ByDomain(registrar.RealmOf(req)); !known {
		reason = "unknown_domain"
	}
	if reason == "" {
		return true
	}
	security.Log(s.log, security.TollFraud, src, "reason", reason, "method", req.Method,
		"from", req.From().Address.String(), "destination", req.Recipient.User)
	_ = call.Respond(tx, req, call.ErrForbidden)
	return false
}

// registered reports whether src has a registration that has not expired.
// A store that fails lets the request on to digest authentication, which
// is what decides.
func (s *Server) registered(src netip.Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ok, err := s.cfg.Contacts.RegisteredFrom(ctx, src.String(), time.Now())
	if err != nil {
		s.log.Error("sip: registrations of a source not read", "source", src, "error", err)
		return true
	}
	return ok
}

// fromPeer takes a pickup another node sends for its user (call.PeerPickup):
// signed with the nodes' secret, it is that user's call to the orbit.
func (s *Server) fromPeer(req *sip.Request, tx sip.ServerTransaction, view *accounts.View) {
	account, user, ok := call.PeerPickup(s.cfg.Secret, req, time.Now())
	a, known := view.Account(account)
	if !ok || !known {
		s.log.Warn("pickup from a node refused: bad signature", "source", req.Source())
		_ = call.Respond(tx, req, call.ErrForbidden)
		return
	}
	if _, ok := a.Snap.Doc().Users[user]; !ok || a.Snap.Dial(req.Recipient.User).Kind != routing.DialOrbit {
		_ = call.Respond(tx, req, call.ErrNotFound)
		return
	}
	s.fromUser(req, tx, a, registrar.Identity{Account: account, User: user}, true)
}

// fromTrunk routes a carrier's call to the number in the Request-URI.
func (s *Server) fromTrunk(req *sip.Request, tx sip.ServerTransaction, m accounts.TrunkMatch) {
	called := req.Recipient.User
	snap := m.Account.Snap
	trunk := snap.Doc().Trunks[m.Trunk]
	rreq := &routing.Request{
		Number:     called,
		Caller:     callerNumber(req),
		CallerName: req.From().DisplayName,
		Reputation: reputation(req, trunk.ReputationHeader),
	}
	trace := []string{fmt.Sprintf("INVITE from trunk %s (%s) for %s", m.Trunk, s.source(req), called)}
	trace = append(trace, s.accts.Screen(context.Background(), snap.Account(), rreq, true)...)
	s.engine.Handle(context.Background(), call.Inbound{Req: req, Tx: tx, Snap: snap, Prompts: prompts(m.Account), Route: rreq, Trace: trace})
}

// prompts is an account's prompt library for the engine: a nil library is
// a nil interface, not an interface holding nil.
func prompts(a *accounts.Account) call.Prompts {
	if a.Prompts == nil {
		return nil
	}
	return a.Prompts
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
			level = routing.HeaderLevel(h.Value())
		}
	}
	for _, name := range []string{"P-Asserted-Identity", "From"} {
		if h := req.GetHeader(name); h != nil {
			level = max(level, routing.VerstatLevel(h.Value()))
		}
	}
	return level
}

// fromUser routes a call dialled by a registered user: an extension number,
// an extension code, a park orbit or an external number through the
// default trunk (the dial plan is routing's).
// peer marks a pickup sent by another node on the user's behalf.
func (s *Server) fromUser(req *sip.Request, tx sip.ServerTransaction, a *accounts.Account, id registrar.Identity, peer bool) {
	snap := a.Snap
	doc := snap.Doc()
	dialled := req.Recipient.User
	user := doc.Users[id.User]
	trace := []string{fmt.Sprintf("INVITE from user %s (%s) dialling %q", id.User, s.source(req), dialled)}
	in := call.Inbound{Req: req, Tx: tx, Snap: snap, Prompts: prompts(a), User: id.User, CallerID: user.Extension, CallerName: id.User, Source: s.source(req)}
	if in.CallerID == "" {
		in.CallerID = id.User
	}
	d := snap.Dial(dialled)
	switch d.Kind {
	case routing.DialNotFound:
		_ = call.Respond(tx, req, call.ErrNotFound)
		return
	case routing.DialRefused:
		security.Log(s.log, security.TollFraud, s.source(req), "reason", "destination_not_allowed", "account", snap.Account(), "user", id.User, "destination", d.Target)
		_ = call.Respond(tx, req, call.ErrForbidden)
		return
	case routing.DialOrbit:
		in.Pickup, in.FromPeer = dialled, peer
	default: // the engine presents the service number on external legs
		in.Target = d.Target
	}
	in.Trace = append(trace, d.Note)
	s.engine.Handle(context.Background(), in)
}

type usersFunc func(domain, username string) (string, string, string, bool)

func (f usersFunc) LookupUser(domain, username string) (string, string, string, bool) {
	return f(domain, username)
}

// contactStore adapts the store's contacts to the registrar's.
type contactStore struct{ st Contacts }

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
		out[i] = call.Device{URI: c.URI, Addr: c.Destination(), Transport: c.Transport, Route: c.Path}
	}
	return out, err
}
