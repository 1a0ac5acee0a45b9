// Package testphone is an in-process SIP + RTP phone for tests and the demo.
//
// A Phone is a sipgo user agent listening on loopback (UDP, and TCP on the
// same port) with its own RTP ports. It registers with digest auth, places
// calls (Dial), answers them according to a Behavior (answer after a delay,
// busy, never answer, reject), sends and receives G.711 audio every 20 ms
// and RFC 4733 DTMF, and lets a test inspect what it received: the INVITE
// headers, the audio (tone detection with Goertzel), the DTMF digits.
//
//	a, _ := testphone.New(ctx, testphone.Config{Name: "alice"})
//	b, _ := testphone.New(ctx, testphone.Config{Name: "bob"})
//	b.SetBehavior(testphone.Behavior{AnswerAfter: 200 * time.Millisecond, Play: testphone.Tone(1000)})
//	call, err := a.Dial(ctx, "sip:bob@"+b.Addr().String(), testphone.DialOptions{})
//	... call.WaitForTone(ctx, 1000, 200*time.Millisecond) ...
//	call.Hangup(ctx)
//
// It follows the livekit/sip siptest and audiotest model: a real SIP stack
// and real RTP on loopback, tone on one side, detection on the other.
//
// Everything a Phone starts (SIP handlers it owns, RTP goroutines, sessions)
// stops in Close; every wait is bounded by a context or a timer.
//
// Concurrency: sipgo runs every message on its own goroutine. An inbound
// call is owned by its INVITE handler until the final response is sent (and
// a 200 acknowledged), an outbound one by a goroutine waiting for the final
// response; after that, BYE, re-INVITE, Hangup and Close act on the call
// directly and Call.finish ends it exactly once. Locks: Phone.mu, Call.mu
// and stream.mu are leaves, never held while taking another one, sending
// SIP or waiting.
package testphone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/media"
)

// Config configures a Phone. The zero value is a usable anonymous phone.
type Config struct {
	// Name identifies the phone in logs (default: User, else "phone").
	Name string
	// User is the SIP user: the user part of Contact, of From on calls and
	// of the address of record on REGISTER (default Name, else "phone").
	User string
	// AuthUser is the digest username when it differs from User (for
	// example the extension number).
	AuthUser string
	// Password answers digest challenges (401/407) on REGISTER, INVITE and
	// MESSAGE; empty means challenges are not answered.
	Password string
	// Domain is the SIP domain (digest realm): the host of From and of the
	// address of record. Default: the phone's IP.
	Domain string
	// Registrar is the "host:port" REGISTER is sent to (the server under
	// test). Needed by Register only.
	Registrar string
	// Transport for requests the phone starts: "udp" (default) or "tcp".
	// The phone listens on both, on the same port, whatever this says.
	Transport string
	// IP to listen on and advertise (default 127.0.0.1).
	IP netip.Addr
	// RTPPortMin and RTPPortMax bound the RTP/RTCP ports (default
	// 30000-39999). Ports held by anyone else are skipped.
	RTPPortMin, RTPPortMax int
	// Logger (default: discard). sipgo's own logging goes here too.
	Logger *slog.Logger
}

// Phone is one simulated SIP phone. It is safe for concurrent use.
type Phone struct {
	cfg   Config
	log   *slog.Logger
	ip    netip.Addr
	addr  netip.AddrPort
	ports *media.PortAllocator

	ua           *sipgo.UserAgent
	srv          *sipgo.Server
	udpUA, tcpUA *sipgo.DialogUA // per transport: client + Contact
	udpConn      net.PacketConn
	tcpLn        net.Listener
	serveWG      sync.WaitGroup
	ctx          context.Context // ends on Close
	cancel       context.CancelFunc
	behavior     atomic.Pointer[Behavior]
	incoming     chan *Call
	messages     chan *sip.Request
	regCallID    string
	regCSeq      atomic.Uint32
	closeOnce    sync.Once
	mu           sync.Mutex
	closed       bool
	wg           sync.WaitGroup   // goroutines the phone owns (see goTrack)
	calls        map[string]*Call // by dialogKey
}

// Mode is what a phone does with an incoming call.
type Mode int

// Modes of Behavior.
const (
	// Answer answers after Behavior.AnswerAfter.
	Answer Mode = iota
	// Busy answers 486 Busy Here after Behavior.AnswerAfter.
	Busy
	// NeverAnswer rings (180) until the caller cancels.
	NeverAnswer
	// Reject answers Behavior.Code (default 603 Decline) after
	// Behavior.AnswerAfter.
	Reject
)

func (m Mode) String() string {
	switch m {
	case Answer:
		return "answer"
	case Busy:
		return "busy"
	case NeverAnswer:
		return "never-answer"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Behavior is how a phone treats incoming calls. The zero value answers at
// once, after a 180 Ringing, and sends silence.
type Behavior struct {
	Mode Mode
	// Code is the final response of Reject (default 603).
	Code int
	// AnswerAfter delays the final response (answer, busy or reject).
	AnswerAfter time.Duration
	// Play returns what to send once answered, one Source per call
	// (default silence). Tone(freqs...) makes one.
	Play func() media.Source
	// NoRinging suppresses the 180 Ringing (it is also skipped when busy
	// or reject is answered at once).
	NoRinging bool
	// Codecs restricts what the phone accepts in an offer (default PCMU
	// and PCMA, in the caller's order of preference).
	Codecs []media.Codec
	// EarlyMedia answers 183 Session Progress with SDP instead of 180 and
	// sends Play from then on, before any answer: a carrier's ringback or
	// announcement. (Without SDP in the INVITE it rings with 180 instead.)
	EarlyMedia bool
	// OnReoffer, when set, answers every re-INVITE with SDP of an answered
	// call: the status and, for 200, the SDP answer (a fax machine
	// accepting T.38). The call's audio is left as it was.
	OnReoffer func(offer []byte) (code int, answer []byte)
}

// Tone returns a Behavior.Play that sends a continuous tone of freqs.
func Tone(freqs ...float64) func() media.Source {
	return func() media.Source { return media.Sine(freqs...) }
}

// incomingBuffer is how many received calls Incoming holds before newer
// ones are dropped (and logged).
const incomingBuffer = 64

// New starts a phone listening on its IP, on a free port for both UDP and
// TCP. ctx bounds start-up only; the phone runs until Close.
func New(ctx context.Context, cfg Config) (*Phone, error) {
	if cfg.User == "" {
		cfg.User = cfg.Name
	}
	if cfg.User == "" {
		cfg.User = "phone"
	}
	if cfg.Name == "" {
		cfg.Name = cfg.User
	}
	cfg.Transport = strings.ToLower(cfg.Transport)
	switch cfg.Transport {
	case "":
		cfg.Transport = "udp"
	case "udp", "tcp":
	default:
		return nil, fmt.Errorf("testphone: transport %q not supported (udp or tcp)", cfg.Transport)
	}
	if !cfg.IP.IsValid() {
		cfg.IP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if cfg.Domain == "" {
		cfg.Domain = cfg.IP.String()
	}
	if cfg.RTPPortMin == 0 && cfg.RTPPortMax == 0 {
		cfg.RTPPortMin, cfg.RTPPortMax = 30000, 39999
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("phone", cfg.Name)

	ports, err := media.NewPortAllocator(cfg.IP, cfg.RTPPortMin, cfg.RTPPortMax)
	if err != nil {
		return nil, fmt.Errorf("testphone: %w", err)
	}
	udpConn, tcpLn, err := listenPair(cfg.IP)
	if err != nil {
		return nil, err
	}
	addr := netip.AddrPortFrom(cfg.IP, uint16(udpConn.LocalAddr().(*net.UDPAddr).Port))

	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("switchboard-testphone"),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
	)
	if err != nil {
		udpConn.Close()
		tcpLn.Close()
		return nil, fmt.Errorf("testphone: %w", err)
	}
	fail := func(err error) (*Phone, error) {
		ua.Close()
		udpConn.Close()
		tcpLn.Close()
		return nil, fmt.Errorf("testphone: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		return fail(err)
	}
	// UDP requests leave from the listening socket, so the far end sees
	// (and answers, and latches onto) the phone's address. TCP requests
	// dial from an ephemeral port: the listening port cannot be bound twice.
	udpClient, err := sipgo.NewClient(ua,
		sipgo.WithClientHostname(cfg.IP.String()),
		sipgo.WithClientConnectionAddr(addr.String()),
		sipgo.WithClientLogger(log))
	if err != nil {
		return fail(err)
	}
	tcpClient, err := sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.IP.String()), sipgo.WithClientLogger(log))
	if err != nil {
		return fail(err)
	}
	contact := func(transport string) sip.ContactHeader {
		h := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: cfg.User, Host: cfg.IP.String(), Port: int(addr.Port())}}
		if transport == "tcp" {
			h.Address.UriParams = sip.NewParams()
			h.Address.UriParams.Add("transport", "tcp")
		}
		return h
	}

	p := &Phone{
		cfg:       cfg,
		log:       log,
		ip:        cfg.IP,
		addr:      addr,
		ports:     ports,
		ua:        ua,
		srv:       srv,
		udpUA:     &sipgo.DialogUA{Client: udpClient, ContactHDR: contact("udp")},
		tcpUA:     &sipgo.DialogUA{Client: tcpClient, ContactHDR: contact("tcp")},
		udpConn:   udpConn,
		tcpLn:     tcpLn,
		incoming:  make(chan *Call, incomingBuffer),
		messages:  make(chan *sip.Request, incomingBuffer),
		regCallID: randomID() + "@" + cfg.IP.String(),
		calls:     map[string]*Call{},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.behavior.Store(&Behavior{})

	// sipgo's handler map has no lock: every handler before serving.
	srv.OnInvite(p.onInvite)
	srv.OnAck(p.onAck)
	srv.OnBye(p.onBye)
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		// Matched CANCELs are answered by the transaction layer.
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		_ = tx.Respond(res)
	})
	srv.OnMessage(p.onMessage)
	ok200 := func(req *sip.Request, tx sip.ServerTransaction) { respond(tx, req, sip.StatusOK, "OK") }
	srv.OnNotify(ok200)
	srv.OnInfo(ok200)

	p.serveWG.Add(2)
	go func() { defer p.serveWG.Done(); _ = srv.ServeUDP(udpConn) }()
	go func() { defer p.serveWG.Done(); _ = srv.ServeTCP(tcpLn) }()

	// Until ServeUDP has put the socket in the transport's pool, a request
	// would leave from a new ephemeral socket: wait for it.
	if err := waitListening(ctx, ua, addr.String()); err != nil {
		p.Close()
		return nil, err
	}
	log.Debug("phone listening", "addr", addr)
	return p, nil
}

const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY, INFO"

// listenPair binds UDP on a free port and TCP on the same port, retrying
// with another port when TCP's is taken.
func listenPair(ip netip.Addr) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return nil, nil, fmt.Errorf("testphone: listen udp: %w", err)
		}
		port := uc.LocalAddr().(*net.UDPAddr).Port
		tl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err == nil {
			return uc, tl, nil
		}
		uc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("testphone: no port free for both udp and tcp: %w", lastErr)
}

func waitListening(ctx context.Context, ua *sipgo.UserAgent, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil {
			c.TryClose()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testphone: udp listener %s not ready: %w", addr, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// Addr is the phone's SIP address (UDP and TCP), to dial it directly or to
// use it as a trunk's address.
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// URI is "sip:USER@ADDR", the phone's own address.
func (p *Phone) URI() string { return "sip:" + p.cfg.User + "@" + p.addr.String() }

// Config returns the phone's configuration with defaults filled in.
func (p *Phone) Config() Config { return p.cfg }

// SetBehavior sets how the next incoming calls are treated.
func (p *Phone) SetBehavior(b Behavior) { p.behavior.Store(&b) }

// Behavior returns the current behavior.
func (p *Phone) Behavior() Behavior { return *p.behavior.Load() }

// Incoming delivers every new call the phone receives (answered, ringing
// or rejected according to the Behavior), as soon as its INVITE arrives.
// It holds 64 calls; newer ones are dropped while it is full. It is not
// closed by Close.
func (p *Phone) Incoming() <-chan *Call { return p.incoming }

// Messages delivers the SIP MESSAGEs the phone received (answered 200).
// It holds 64; newer ones are dropped while it is full.
func (p *Phone) Messages() <-chan *sip.Request { return p.messages }

// Calls returns the calls in progress (not ended).
func (p *Phone) Calls() []*Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Values(p.calls))
}

// Close hangs up every call (BYE, CANCEL, or 480 to a ringing incoming
// call, each bounded to one second), stops the SIP stack and every
// goroutine of the phone, and releases its ports. It is idempotent.
func (p *Phone) Close() error {
	p.closeOnce.Do(p.close)
	return nil
}

func (p *Phone) close() {
	p.mu.Lock()
	p.closed = true
	calls := slices.Collect(maps.Values(p.calls))
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = c.hangupCause(ctx, sip.StatusTemporarilyUnavailable, ErrClosed)
		})
	}
	wg.Wait()
	p.cancel()
	// Stop reading first. A message read just before (the ACK of our
	// 487, say) is handled on a goroutine of sipgo's that, once the
	// listener has left the connection pool, opens a new socket to answer
	// from; closing the user agent after a short grace closes it.
	_ = p.udpConn.Close()
	_ = p.tcpLn.Close()
	time.Sleep(closeGrace)
	// Terminating every transaction unblocks owners still waiting on one
	// (an outgoing INVITE waiting for its 487, a 200 waiting for its ACK).
	_ = p.ua.Close()
	if !waitTimeout(&p.wg, 5*time.Second) {
		p.log.Warn("testphone: goroutines still running after close")
	}
	for _, c := range calls {
		c.finish(EndClosed, 0, nil)
	}
	if !waitTimeout(&p.serveWG, 5*time.Second) {
		p.log.Warn("testphone: sip listeners still running after close")
	}
	// Sweep sockets a straggler may have opened meanwhile.
	_ = p.ua.TransportLayer().Close()
}

// closeGrace lets messages already read finish their trip through sipgo
// before the user agent closes.
const closeGrace = 10 * time.Millisecond

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *Phone) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// goTrack runs fn in a goroutine Close waits for; it refuses (false) once
// the phone is closing.
func (p *Phone) goTrack(fn func()) bool {
	if !p.track() {
		return false
	}
	go func() {
		defer p.wg.Done()
		fn()
	}()
	return true
}

// track counts the calling goroutine in (call p.wg.Done when it ends); false
// once the phone is closing.
func (p *Phone) track() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// addCall registers a call under its dialog key (Call-ID + local tag).
func (p *Phone) addCall(c *Call) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.calls[c.key] = c
	return true
}

func (p *Phone) removeCall(c *Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls[c.key] == c {
		delete(p.calls, c.key)
	}
}

// lookup finds the call an in-dialog request belongs to: its To tag is our
// local tag.
func (p *Phone) lookup(req *sip.Request) *Call {
	if req.CallID() == nil || req.To() == nil {
		return nil
	}
	tag, _ := req.To().Params.Get("tag")
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[dialogKey(req.CallID().Value(), tag)]
}

func dialogKey(callID, localTag string) string { return callID + "\x00" + localTag }

// dialogUA returns the dialog UA (client + Contact) for a transport.
func (p *Phone) dialogUA(transport string) *sipgo.DialogUA {
	if strings.EqualFold(transport, "tcp") {
		return p.tcpUA
	}
	return p.udpUA
}

func (p *Phone) authUser() string {
	if p.cfg.AuthUser != "" {
		return p.cfg.AuthUser
	}
	return p.cfg.User
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Register sends a REGISTER for User@Domain to the Registrar with this
// phone's Contact and expiry (0 removes the binding), answering a digest
// challenge with the phone's credentials. It returns the final status; a
// non-2xx status also comes back as a *StatusError.
func (p *Phone) Register(ctx context.Context, expires time.Duration) (int, error) {
	if p.cfg.Registrar == "" {
		return 0, errors.New("testphone: Config.Registrar not set")
	}
	host, port, err := sip.ParseAddr(p.cfg.Registrar)
	if err != nil {
		return 0, fmt.Errorf("testphone: registrar %q: %w", p.cfg.Registrar, err)
	}
	ua := p.dialogUA(p.cfg.Transport)
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: port})
	req.SetTransport(strings.ToUpper(p.cfg.Transport))
	aor := sip.Uri{Scheme: "sip", User: p.cfg.User, Host: p.cfg.Domain}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	callID := sip.CallIDHeader(p.regCallID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.regCSeq.Add(1), MethodName: sip.REGISTER})
	ct := ua.ContactHDR.Clone()
	req.AppendHeader(ct)
	secs := int(expires / time.Second)
	req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(secs)))
	req.AppendHeader(sip.NewHeader("User-Agent", "switchboard-testphone/"+p.cfg.Name))

	res, err := p.do(ctx, ua.Client, req, true)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != sip.StatusOK {
		return res.StatusCode, statusError(sip.REGISTER, res)
	}
	return res.StatusCode, nil
}

// do sends req and returns the final response, answering (if auth) up to
// two digest challenges (the second for a stale nonce) with the phone's
// credentials.
func (p *Phone) do(ctx context.Context, client *sipgo.Client, req *sip.Request, auth bool) (*sip.Response, error) {
	if err := p.ctx.Err(); err != nil {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, 64*sip.T1+time.Second)
	defer cancel()
	res, err := client.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("testphone: %s: %w", req.Method, err)
	}
	for range 2 {
		if !auth || p.cfg.Password == "" || (res.StatusCode != sip.StatusUnauthorized && res.StatusCode != sip.StatusProxyAuthRequired) {
			break
		}
		res, err = client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.authUser(), Password: p.cfg.Password})
		if err != nil {
			return nil, fmt.Errorf("testphone: %s with digest: %w", req.Method, err)
		}
	}
	if req.Method == sip.REGISTER && req.CSeq() != nil {
		p.regCSeq.Store(max(p.regCSeq.Load(), req.CSeq().SeqNo))
	}
	return res, nil
}

// SendMessage sends a SIP MESSAGE with a text/plain body to target (a sip:
// URI), with From built as for Dial. It returns the final status; a non-2xx
// status also comes back as a *StatusError.
func (p *Phone) SendMessage(ctx context.Context, target, text string, opts DialOptions) (int, error) {
	uri, transport, err := p.parseTarget(target)
	if err != nil {
		return 0, err
	}
	req := sip.NewRequest(sip.MESSAGE, uri)
	req.SetTransport(strings.ToUpper(transport))
	p.addFromTo(req, uri, opts)
	for _, h := range opts.headers() {
		req.AppendHeader(h)
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte(text))
	res, err := p.do(ctx, p.dialogUA(transport).Client, req, !opts.NoAuth)
	if err != nil {
		return 0, err
	}
	if !res.IsSuccess() {
		return res.StatusCode, statusError(sip.MESSAGE, res)
	}
	return res.StatusCode, nil
}

func (p *Phone) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, sip.StatusOK, "OK")
	select {
	case p.messages <- req:
	default:
		p.log.Warn("testphone: message dropped, Messages() is full")
	}
}

// parseTarget parses a sip: URI and picks the transport for it: its
// transport parameter, else the phone's.
func (p *Phone) parseTarget(target string) (sip.Uri, string, error) {
	var uri sip.Uri
	target = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(target), "<"), ">")
	if err := sip.ParseUri(target, &uri); err != nil {
		return uri, "", fmt.Errorf("testphone: target %q: %w", target, err)
	}
	if uri.Scheme != "sip" || uri.Host == "" {
		return uri, "", fmt.Errorf("testphone: target %q is not a sip: URI with a host", target)
	}
	transport := p.cfg.Transport
	if uri.UriParams != nil {
		if t, ok := uri.UriParams.Get("transport"); ok && t != "" {
			transport = strings.ToLower(t)
		}
	}
	if transport != "udp" && transport != "tcp" {
		return uri, "", fmt.Errorf("testphone: target %q: transport %q not supported", target, transport)
	}
	return uri, transport, nil
}
