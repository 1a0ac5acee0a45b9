package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

func TestMain(m *testing.M) {
	sip.SetTimers(100*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	os.Exit(m.Run())
}

const (
	alicePW = "alice-pw-7Q2xv"
	bobPW   = "bob-pw-9K4zq"
)

var carrierIP = netip.MustParseAddr("127.0.0.2")

// doc is the account of these tests.
const doc = `
account: acme
domain: acme.test
defaults: { caller_id: original, trunk: carrier, allowed_destinations: ["+34*"] }
trunks:
  carrier: { address: "sip:127.0.0.3:5060", inbound_from: ["127.0.0.2/32"] }
users:
  alice: { extension: "101", password: "` + alicePW + `" }
  bob:   { extension: "102", password: "` + bobPW + `" }
locations:
  madrid: { forward: false, forward_destination: "user:bob" }
extensions:
  support: { members: ["user:alice", "user:bob"], timeout: 2s }
  rec:     { members: ["user:bob"], recording: always }
  box:     { destination: "voicemail:alice" }
numbers:
  "+34910000001": { extension: "user:alice", location: madrid, tags: [main] }
  "+34910000002":
    extension: support
    tags: [sales]
    rules:
      - { prefix: "34666*", weight: 10, action: reject-busy, tags: [blocked] }
  "+34910000003": { extension: rec, tags: [recorded] }
  "+34910000004": { extension: box }
`

func start(t *testing.T, db string) *nodetest.Server {
	t.Helper()
	return nodetest.Run(t, doc, nodetest.Options{DB: db})
}

// token makes an API token of acme.
func token(t *testing.T, srv *nodetest.Server, readOnly bool) string {
	t.Helper()
	secret, _, err := srv.Store.NewToken(context.Background(), "acme", "ui-test", readOnly)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func newPhone(t testing.TB, cfg testphone.Config) *testphone.Phone {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := testphone.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func userPhone(t testing.TB, srv *nodetest.Server, name, password string) *testphone.Phone {
	t.Helper()
	p := newPhone(t, testphone.Config{Name: name, User: name, Password: password, Domain: "acme.test", Registrar: srv.SIPAddr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code, err := p.Register(ctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register %s: %d %v", name, code, err)
	}
	return p
}

// dial places a carrier call; it returns once answered or failed.
func dial(t testing.TB, srv *nodetest.Server, carrier *testphone.Phone, number, caller string) (*testphone.Call, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return carrier.Dial(ctx, "sip:"+number+"@"+srv.SIPAddr, testphone.DialOptions{FromUser: caller})
}

func hangup(t testing.TB, c *testphone.Call) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil && c.EndReason() == testphone.EndNone {
		t.Errorf("hangup: %v", err)
	}
}

// browser is a plain HTTP client with cookies, as a browser without
// script would be.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, srv *nodetest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: srv.HTTPURL, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	res, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func (b *browser) post(path string, v url.Values) (int, string) {
	b.t.Helper()
	res, err := b.c.PostForm(b.base+path, v)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// csrf is the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no CSRF token on %s", path)
	}
	return m[1]
}

func (b *browser) signIn(account, tok string) (int, string) {
	b.t.Helper()
	return b.post("/signin", url.Values{"csrf": {b.csrf("/signin")}, "account": {account}, "token": {tok}})
}

func contains(t *testing.T, body, want string) {
	t.Helper()
	if !strings.Contains(body, want) {
		t.Errorf("page lacks %q", want)
	}
}

// byWeightOf is the rules' prefixes in the order routing tries them.
func byWeightOf(rules []config.Rule) []string {
	rs := slices.Clone(rules)
	slices.SortStableFunc(rs, func(a, b config.Rule) int { return a.Weight - b.Weight })
	var out []string
	for _, r := range rs {
		out = append(out, r.Prefix)
	}
	return out
}
