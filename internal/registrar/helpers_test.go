package registrar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func TestMain(m *testing.M) {
	// Short SIP timers: a lost UDP request is retransmitted after 100ms and
	// a non-INVITE transaction gives up after 6.4s.
	sip.SetTimers(100*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	if os.Getenv("SIPGO_DEBUG") == "" {
		sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}

const (
	testDomain  = "acme.test"
	testAccount = "acme"
)

// testUsers is the Users of the tests: alice (101, s3cret) and bob (102, pw2)
// in acme.test.
type testUsers struct{}

func (testUsers) LookupUser(domain, username string) (account, user, password string, ok bool) {
	if domain != testDomain {
		return "", "", "", false
	}
	switch username {
	case "alice", "101":
		return testAccount, "alice", "s3cret", true
	case "bob", "102":
		return testAccount, "bob", "pw2", true
	}
	return "", "", "", false
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type serverConfig struct {
	now        func() time.Time
	guard      GuardConfig
	minExpires time.Duration
}

// testServer is a sipgo server on loopback UDP and TCP with the registrar,
// the guard, and a MESSAGE handler that requires authentication and echoes
// the identity in an X-Identity header.
type testServer struct {
	UDP, TCP string
	Reg      *Registrar
	Auth     *Authenticator
	Guard    *Guard
	Store    *MemContacts

	mu         sync.Mutex
	registered []string
	bindings   []string // "user=devices", from OnBindings
}

func (s *testServer) onBindings(account, user string, devices int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bindings = append(s.bindings, fmt.Sprintf("%s=%d", user, devices))
}

func (s *testServer) bindingEvents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bindings...)
}

func (s *testServer) onRegister(account, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registered = append(s.registered, account+"/"+user)
}

func (s *testServer) registrations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.registered...)
}

func startServer(t *testing.T, opts ...func(*serverConfig)) *testServer {
	t.Helper()
	// One test phone sends every request: no flood ban unless a test
	// sets one.
	cfg := serverConfig{now: time.Now, guard: GuardConfig{FloodRequests: -1}}
	for _, o := range opts {
		o(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("SIPGO_DEBUG") != "" {
		log = slog.Default()
	}
	ts := &testServer{Store: NewMemContacts()}
	cfg.guard.Now = cfg.now
	cfg.guard.Logger = log
	ts.Guard = NewGuard(cfg.guard)
	var err error
	ts.Auth, err = NewAuthenticator(AuthConfig{
		Users:  testUsers{},
		Secret: []byte("0123456789abcdef0123456789abcdef"),
		Guard:  ts.Guard,
		Now:    cfg.now,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Reg, err = New(Config{
		Users:      testUsers{},
		Contacts:   ts.Store,
		Auth:       ts.Auth,
		OnRegister: ts.onRegister,
		OnBindings: ts.onBindings,
		MinExpires: cfg.minExpires,
		Now:        cfg.now,
		Logger:     log,
	})
	if err != nil {
		t.Fatal(err)
	}

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-test"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(ts.Guard.Middleware(ts.Reg.HandleRegister))
	srv.OnMessage(ts.Guard.Middleware(ts.Auth.Require(func(req *sip.Request, tx sip.ServerTransaction, id Identity) {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("X-Identity", id.Account+"/"+id.User+"/"+id.Username))
		_ = tx.Respond(res)
	})))
	// INVITEs from users: after authentication, answer 486 Busy Here with
	// the identity (the call layer is not part of this package).
	srv.OnInvite(ts.Guard.Middleware(ts.Auth.Require(func(req *sip.Request, tx sip.ServerTransaction, id Identity) {
		res := sip.NewResponseFromRequest(req, sip.StatusBusyHere, "Busy Here", nil)
		res.AppendHeader(sip.NewHeader("X-Identity", id.Account+"/"+id.User+"/"+id.Username))
		_ = tx.Respond(res)
	})))
	srv.OnOptions(ts.Guard.Middleware(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	}))

	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.UDP, ts.TCP = udp.LocalAddr().String(), tcp.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.ServeUDP(udp) }()
	go func() { defer wg.Done(); _ = srv.ServeTCP(tcp) }()
	t.Cleanup(func() {
		_ = udp.Close()
		_ = tcp.Close()
		_ = ua.Close()
		wg.Wait()
	})
	return ts
}

// phone is a sipgo client acting as a SIP device.
type phone struct {
	t         *testing.T
	c         *sipgo.Client
	server    string // host:port
	transport string // UDP or TCP
}

func newPhone(t *testing.T, server, transport string) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("testphone"), sipgo.WithUserAgentHostname(testDomain))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	return &phone{t: t, c: c, server: server, transport: transport}
}

// newRequest builds method to the server with To/From aor@acme.test and the
// given extra headers ("Name: value").
func (p *phone) newRequest(method sip.RequestMethod, aor string, headers ...string) *sip.Request {
	p.t.Helper()
	host, portStr, err := net.SplitHostPort(p.server)
	if err != nil {
		p.t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", Host: host, Port: port})
	req.SetTransport(p.transport)
	addr := sip.Uri{Scheme: "sip", User: aor, Host: testDomain}
	from := &sip.FromHeader{Address: addr, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: addr, Params: sip.NewParams()})
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			p.t.Fatalf("bad header %q", h)
		}
		req.AppendHeader(sip.NewHeader(strings.TrimSpace(name), strings.TrimSpace(value)))
	}
	return req
}

// register builds a REGISTER for aor.
func (p *phone) register(aor string, headers ...string) *sip.Request {
	return p.newRequest(sip.REGISTER, aor, headers...)
}

func (p *phone) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	p.t.Cleanup(cancel)
	return ctx
}

// do sends a new request and returns the final response.
func (p *phone) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	res, err := p.c.Do(p.ctx(), req)
	if err != nil {
		p.t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// resend sends req again as a new transaction (CSeq+1, new Via branch),
// keeping every other header as it is.
func (p *phone) resend(req *sip.Request) *sip.Response {
	p.t.Helper()
	req.CSeq().SeqNo++
	req.RemoveHeader("Via")
	res, err := p.c.Do(p.ctx(), req, sipgo.ClientRequestAddVia)
	if err != nil {
		p.t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// auth answers the challenge in res with sipgo's own digest client.
func (p *phone) auth(req *sip.Request, res *sip.Response, user, password string) *sip.Response {
	p.t.Helper()
	res, err := p.c.DoDigestAuth(p.ctx(), req, res, sipgo.DigestAuth{Username: user, Password: password})
	if err != nil {
		p.t.Fatalf("%s digest: %v", req.Method, err)
	}
	return res
}

// registerOK sends req, answers the challenge and requires 200 OK.
func (p *phone) registerOK(req *sip.Request, user, password string) *sip.Response {
	p.t.Helper()
	res := p.do(req)
	if res.StatusCode == sip.StatusUnauthorized {
		res = p.auth(req, res, user, password)
	}
	if res.StatusCode != sip.StatusOK {
		p.t.Fatalf("REGISTER: got %d %s, want 200", res.StatusCode, res.Reason)
	}
	return res
}

// authorize puts hand-made credentials (explicit nc and cnonce) for the
// challenge in res into req.
func authorize(t *testing.T, req *sip.Request, res *sip.Response, user, password string, nc int, cnonce string) {
	t.Helper()
	name, answer := "WWW-Authenticate", "Authorization"
	if res.StatusCode == sip.StatusProxyAuthRequired {
		name, answer = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(name)
	if h == nil {
		t.Fatalf("no %s in %d response", name, res.StatusCode)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method:   req.Method.String(),
		URI:      req.Recipient.Addr(),
		Username: user,
		Password: password,
		Count:    nc,
		Cnonce:   cnonce,
	})
	if err != nil {
		t.Fatal(err)
	}
	req.RemoveHeader(answer)
	req.AppendHeader(sip.NewHeader(answer, cred.String()))
}

// challenge parses the digest challenge of a 401/407.
func challenge(t *testing.T, res *sip.Response) *digest.Challenge {
	t.Helper()
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		h = res.GetHeader("Proxy-Authenticate")
	}
	if h == nil {
		t.Fatalf("%d %s has no challenge", res.StatusCode, res.Reason)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatalf("challenge %q: %v", h.Value(), err)
	}
	return chal
}

// contactExpires returns the Contact URIs of a 200 OK with their expires.
func contactExpires(t *testing.T, res *sip.Response) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, h := range res.GetHeaders("Contact") {
		var c sip.ContactHeader
		if _, err := sip.ParseAddressValue(h.Value(), &c.Address, &c.Params); err != nil {
			t.Fatalf("contact %q: %v", h.Value(), err)
		}
		v, _ := c.Params.Get("expires")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("contact %q: expires: %v", h.Value(), err)
		}
		out[c.Address.String()] = n
	}
	return out
}

// rawExchange sends a raw SIP message over UDP from a fresh socket and
// returns the response, or nil if none came within wait. %LPORT% in msg is
// replaced by the local port.
func rawExchange(t *testing.T, server, msg string, wait time.Duration) *sip.Response {
	t.Helper()
	conn, err := net.Dial("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, lport, _ := net.SplitHostPort(conn.LocalAddr().String())
	msg = strings.ReplaceAll(msg, "%LPORT%", lport)
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			t.Fatalf("unparsable response %q: %v", buf[:n], err)
		}
		res, ok := m.(*sip.Response)
		if !ok {
			t.Fatalf("got a request back: %s", m)
		}
		if res.IsProvisional() {
			continue
		}
		return res
	}
}

var rawSeq int

// rawRegister is a REGISTER for alice over UDP with the given extra header
// lines; each call has a new Call-ID and branch.
func rawRegister(server string, extra ...string) string {
	rawSeq++
	return fmt.Sprintf(`REGISTER sip:%s SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:%%LPORT%%;branch=z9hG4bK-raw-%d;rport
Max-Forwards: 70
From: <sip:alice@acme.test>;tag=raw%d
To: <sip:alice@acme.test>
Call-ID: raw-%d@test
CSeq: 1 REGISTER
%sContent-Length: 0

`, server, rawSeq, rawSeq, rawSeq, joinLines(extra))
}

func joinLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}

// fakeTx is a sip.ServerTransaction that records responses.
type fakeTx struct {
	mu        sync.Mutex
	responses []*sip.Response
	done      chan struct{}
	once      sync.Once
}

func newFakeTx() *fakeTx { return &fakeTx{done: make(chan struct{})} }

func (tx *fakeTx) Respond(res *sip.Response) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	tx.responses = append(tx.responses, res)
	return nil
}

func (tx *fakeTx) last() *sip.Response {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if len(tx.responses) == 0 {
		return nil
	}
	return tx.responses[len(tx.responses)-1]
}

func (tx *fakeTx) Acks() <-chan *sip.Request          { return nil }
func (tx *fakeTx) OnCancel(sip.FnTxCancel) bool       { return true }
func (tx *fakeTx) OnTerminate(sip.FnTxTerminate) bool { return true }
func (tx *fakeTx) Terminate()                         { tx.once.Do(func() { close(tx.done) }) }
func (tx *fakeTx) Done() <-chan struct{}              { return tx.done }
func (tx *fakeTx) Err() error                         { return nil }

var _ sip.ServerTransaction = (*fakeTx)(nil)

// parseRequest parses a raw request (LF line ends allowed) as the transport
// would, with source as the packet source.
func parseRequest(t testing.TB, raw, source string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	req, ok := m.(*sip.Request)
	if !ok {
		t.Fatalf("not a request")
	}
	req.SetSource(source)
	req.SetTransport("UDP")
	return req
}

// waitFor polls cond until it holds or 5s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
