package api_test

// The REST API of SPEC §7 driven over HTTP against a real node (nodetest),
// on SQLite and on PostgreSQL. This file holds the shared helpers and
// TestAPIResources; the other tests are in the *_ext_test.go files.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/testphone"
)

func TestMain(m *testing.M) {
	// Short SIP timers keep CANCEL/timeout paths fast in tests.
	sip.SetTimers(100*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	os.Exit(m.Run())
}

// The passwords of acmeDoc: no response may ever contain one.
const (
	alicePW = "alice-pw-7Q2xv"
	bobPW   = "bob-pw-9K4zq"
	carolPW = "carol-pw-5T1wm"
	trunkPW = "trunk-pw-3M8vd"
)

// acmeDoc is the account of these tests; %[1]s is the directory of the
// built-in prompt files. carol never registers: her extension (vm) goes
// straight to her voicemail, whose greeting is short.
const acmeDoc = `
account: acme
domain: acme.test
defaults: { caller_id: original, trunk: carrier, allowed_destinations: ["+34*"] }
trunks:
  carrier: { address: "sip:127.0.0.3:5060", username: acme, password: "` + trunkPW + `", inbound_from: ["127.0.0.2/32"] }
users:
  alice: { extension: "101", password: "` + alicePW + `" }
  bob:   { extension: "102", password: "` + bobPW + `" }
  carol: { extension: "103", password: "` + carolPW + `" }
prompts:
  bye: { file: "%[1]s/goodbye.wav" }
  voicemail-carol: { file: "%[1]s/goodbye.wav" }
locations:
  madrid: { forward: false, forward_destination: "user:bob" }
extensions:
  support: { code: "21", members: ["user:alice", "user:bob"], timeout: 2s }
  rec:     { members: ["user:bob"], recording: always }
  vm:      { members: ["user:carol"], timeout: 300ms, on_failure: "voicemail:carol" }
ivrs:
  front: { prompt: "prompt:bye", options: { "1": support, "2": "user:alice" } }
parks:
  lot1: { orbits: "701-709", timeout: 2m, return_to: support }
faxes:
  fax1: { destination: "sip:fax@127.0.0.1:5090" }
numbers:
  "+34910000001": { extension: "user:alice", location: madrid, tags: [main] }
  "+34910000002":
    extension: support
    tags: [sales]
    rules:
      - { prefix: "34666*", weight: 10, action: reject-busy, tags: [blocked] }
  "+34910000003": { extension: rec, tags: [recorded] }
  "+34910000004": { extension: vm }
  "+34910000005": { extension: front }
`

func builtinDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../prompt/builtin")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// stubTTS renders any text as a short tone, so that say: prompts need no
// espeak-ng; a text containing "UNSAYABLE" fails, as a TTS engine can.
type stubTTS struct{}

func (stubTTS) Render(_ context.Context, text string) ([]int16, error) {
	if strings.Contains(text, "UNSAYABLE") {
		return nil, errors.New("stub tts: cannot render this text")
	}
	return sine(500, 8000, 4000), nil
}

// sine is n samples of a tone of freq Hz at rate.
func sine(freq float64, rate, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return s
}

// startNode runs a node with acmeDoc on db.
func startNode(t *testing.T, db string) *nodetest.Server {
	t.Helper()
	return nodetest.Run(t, fmt.Sprintf(acmeDoc, builtinDir(t)), nodetest.Options{DB: db, TTS: stubTTS{}})
}

// client talks to a node's API with a pool of tokens that share one name
// (the author of the versions it writes), so that a test's many requests
// stay clear of the per-token rate limit — except where a test means to
// hit it with a single token.
type client struct {
	t       testing.TB
	base    string
	tokens  []string
	next    atomic.Uint32
	secrets *secretList
}

// secretList is what no response may contain: passwords and API tokens.
type secretList struct {
	mu   sync.Mutex
	list []string
}

func (s *secretList) add(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, v...)
}

func (s *secretList) in(b []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.list {
		if v != "" && bytes.Contains(b, []byte(v)) {
			return v
		}
	}
	return ""
}

func newSecrets() *secretList {
	s := &secretList{}
	s.add(alicePW, bobPW, carolPW, trunkPW)
	return s
}

// newClient makes pool tokens for account ("" for admin) named name.
func newClient(t testing.TB, srv *nodetest.Server, account, name string, readOnly bool, pool int) *client {
	t.Helper()
	c := &client{t: t, base: srv.HTTPURL + "/api/v1", secrets: newSecrets()}
	for range pool {
		secret, _, err := srv.Store.NewToken(context.Background(), account, name, readOnly)
		if err != nil {
			t.Fatal(err)
		}
		c.tokens = append(c.tokens, secret)
	}
	c.secrets.add(c.tokens...)
	return c
}

// with returns a client for other tokens that checks the same secrets.
func (c *client) with(tokens ...string) *client {
	c.secrets.add(tokens...)
	return &client{t: c.t, base: c.base, tokens: tokens, secrets: c.secrets}
}

// at returns the client reporting to t (a subtest).
func (c *client) at(t testing.TB) *client {
	return &client{t: t, base: c.base, tokens: c.tokens, secrets: c.secrets}
}

func (c *client) token() string {
	if len(c.tokens) == 0 {
		return ""
	}
	return c.tokens[int(c.next.Add(1))%len(c.tokens)]
}

// result is one HTTP response, read whole.
type result struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

func (r result) String() string {
	b := r.Body
	if len(b) > 600 {
		b = append(b[:600:600], "..."...)
	}
	return fmt.Sprintf("%s %s: %d %s %s", r.Method, r.Path, r.Status, r.Header.Get("Content-Type"), b)
}

// decode reads the body as JSON into v.
func (r result) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("%s: body is not JSON: %v", r, err)
	}
}

// etag is the version in the ETag header (0 when absent).
func (r result) etag() int64 {
	v, err := strconv.ParseInt(strings.Trim(r.Header.Get("ETag"), `"`), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// problem is an RFC 9457 problem as the API writes it.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (r result) problem(t testing.TB) problem {
	t.Helper()
	var p problem
	r.decode(t, &p)
	return p
}

// paths lists the field paths of a problem's errors.
func (p problem) paths() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Path)
	}
	return out
}

// header is a request header; a Value of "" removes it (Authorization).
type header struct{ Key, Value string }

func hdr(kv ...string) []header {
	var hs []header
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, header{kv[i], kv[i+1]})
	}
	return hs
}

var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends a request to base+path. body is nil, a string or []byte (sent
// as is, Content-Type application/json unless a header says otherwise),
// or any other value (sent as JSON). Every response is checked for what
// holds of all of them: never a 500, every error an RFC 9457
// problem+json with its status, and no secret in it.
func (c *client) do(method, path string, body any, hs ...header) result {
	c.t.Helper()
	return c.doURL(method, c.base+path, body, hs...)
}

func (c *client) doURL(method, url string, body any, hs ...header) result {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.token(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for _, h := range hs {
		if h.Value == "" {
			req.Header.Del(h.Key)
		} else {
			req.Header.Set(h.Key, h.Value)
		}
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	r := result{Method: method, Path: strings.TrimPrefix(url, c.base), Status: res.StatusCode, Header: res.Header, Body: b}
	if r.Status >= 500 {
		c.t.Errorf("server error: %s", r)
	}
	if r.Status >= 400 {
		var p problem
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(b, &p) != nil || p.Status != r.Status || p.Title == "" {
			c.t.Errorf("not an RFC 9457 problem+json with its status: %s", r)
		}
	}
	if s := c.secrets.in(b); s != "" {
		c.t.Errorf("a secret (%q...) is in the response: %s", s[:4], r)
	}
	return r
}

// want fails the test unless the response has status.
func want(t testing.TB, r result, status int) result {
	t.Helper()
	if r.Status != status {
		t.Errorf("want %d: %s", status, r)
	}
	return r
}

// wantPaths fails the test unless r is a 422/409 problem naming every path.
func wantPaths(t testing.TB, r result, status int, paths ...string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("want %d naming %q: %s", status, paths, r)
		return
	}
	got := r.problem(t).paths()
	for _, p := range paths {
		if !slices.Contains(got, p) {
			t.Errorf("%s %s: the problem names %q, not %q", r.Method, r.Path, got, p)
		}
	}
}

// version is the account's stored configuration version.
func version(t testing.TB, srv *nodetest.Server) int64 {
	t.Helper()
	_, v, err := srv.Store.LoadConfig(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func stored(t testing.TB, srv *nodetest.Server) *config.Document {
	t.Helper()
	doc, _, err := srv.Store.LoadConfig(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// unchanged fails the test if the stored version is not v.
func unchanged(t testing.TB, srv *nodetest.Server, v int64, what string) {
	t.Helper()
	if got := version(t, srv); got != v {
		t.Errorf("%s: the stored version went from %d to %d; nothing should have been stored", what, v, got)
	}
}

// jsonEqual compares two JSON texts as values.
func jsonEqual(t testing.TB, got []byte, want any) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("not JSON: %s", got)
		return false
	}
	wb, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := want.(string); ok {
		wb = []byte(s)
	}
	if err := json.Unmarshal(wb, &w); err != nil {
		t.Fatalf("want is not JSON: %s", wb)
	}
	return reflect.DeepEqual(g, w)
}

// wavMono16k is a WAV file of 16 kHz mono 16-bit PCM: a prompt upload
// that the node must convert to 8 kHz.
func wavMono16k(samples []int16) []byte {
	var b bytes.Buffer
	data := len(samples) * 2
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+data))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(16000), uint32(32000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(data))
	_ = binary.Write(&b, binary.LittleEndian, samples)
	return b.Bytes()
}

// wavStereo8k writes an 8 kHz stereo WAV with media's WAV writer (the
// format of recordings) and returns its bytes.
func wavStereo8k(t testing.TB, left, right []int16) []byte {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := media.NewWAVWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(left, right); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// servedPrompt is the prompt as the running node serves it to calls.
func servedPrompt(srv *nodetest.Server, name string) ([]int16, bool) {
	a, ok := srv.Accounts.View().Account("acme")
	if !ok || a.Prompts == nil {
		return nil, false
	}
	return a.Prompts.Get(name)
}

// TestAPIResources drives every configuration resource of SPEC §7 over
// HTTP: list, get, create, replace and delete of each section with its
// ETag; secrets; optimistic concurrency; references; validation with the
// field paths of SPEC §2; rules, forwarding, prompts, reputation, route,
// the whole document and its history.
func TestAPIResources(t *testing.T) {
	t.Parallel()
	nodetest.EachDB(t, func(t *testing.T, db string) {
		srv := startNode(t, db)
		c := newClient(t, srv, "acme", "ops", false, 8)
		t.Run("sections", func(t *testing.T) { testSections(t, srv, c) })
		t.Run("secrets", func(t *testing.T) { testSecrets(t, srv, c) })
		t.Run("if-match", func(t *testing.T) { testIfMatch(t, srv, c) })
		t.Run("references", func(t *testing.T) { testReferences(t, srv, c) })
		t.Run("validation", func(t *testing.T) { testValidation(t, srv, c) })
		t.Run("rules", func(t *testing.T) { testRules(t, srv, c) })
		t.Run("forward", func(t *testing.T) { testForward(t, srv, c) })
		t.Run("prompts", func(t *testing.T) { testPrompts(t, srv, c) })
		t.Run("reputation", func(t *testing.T) { testReputation(t, srv, c) })
		t.Run("route", func(t *testing.T) { testRoute(t, srv, c) })
		t.Run("config", func(t *testing.T) { testConfig(t, srv, c) })
		t.Run("history", func(t *testing.T) { testHistory(t, srv, c) })
	})
}

// testSections: list / get / PUT create (201) / PUT replace (200) / GET /
// DELETE (204) / GET 404 on every section, each write one version.
func testSections(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	for _, s := range []struct {
		section, existing, name string
		create, replace         string
	}{
		{"numbers", "+34910000001", "+34910000009",
			`{"extension":"user:alice","tags":["new"],"cnam_prefix":"NEW "}`,
			`{"extension":"support","location":"madrid","forward":{"enabled":false,"destination":"+34600000009"}}`},
		{"extensions", "support", "sales2",
			`{"code":"22","type":"group","members":["user:alice","user:bob"],"distribution":"rotating","timeout":"5s"}`,
			`{"destination":"user:alice","on_failure":"voicemail:alice","recording":"manual"}`},
		{"users", "alice", "dave",
			`{"extension":"104","sms":true,"blocklist":["+1900*"]}`,
			`{"extension":"105"}`},
		{"trunks", "carrier", "backup",
			`{"address":"sip:127.0.0.9:5060","inbound_from":["127.0.0.9/32"]}`,
			`{"address":"sip:127.0.0.10:5060","reputation_header":"X-Spam-Score"}`},
		{"locations", "madrid", "barcelona",
			`{"forward":false,"forward_destination":"+34600000008"}`,
			`{"forward":true,"forward_destination":"user:alice"}`},
		{"ivrs", "front", "menu2",
			`{"prompt":"prompt:bye","options":{"1":"user:alice","2":"support"},"retries":2}`,
			`{"collect":{"variable":"dest","min_digits":3,"max_digits":6,"terminator":"#","timeout":"4s"},"next":"support"}`},
		{"parks", "lot1", "lot2",
			`{"orbits":"801-809","timeout":"1m0s","return_to":"user:alice"}`,
			`{"orbits":"811-812","music":"prompt:bye"}`},
		{"faxes", "fax1", "fax2",
			`{"destination":"sip:fax@127.0.0.1:5091"}`,
			`{"destination":"user:bob"}`},
	} {
		t.Run(s.section, func(t *testing.T) {
			v := version(t, srv)
			list := want(t, c.do("GET", "/acme/"+s.section, nil), 200)
			var m map[string]json.RawMessage
			list.decode(t, &m)
			if _, ok := m[s.existing]; !ok || list.etag() != v {
				t.Errorf("list: no %q or ETag %q (version %d): %s", s.existing, list.Header.Get("ETag"), v, list)
			}
			if g := want(t, c.do("GET", "/acme/"+s.section+"/"+s.existing, nil), 200); !jsonEqual(t, g.Body, string(m[s.existing])) || g.etag() != v {
				t.Errorf("get %s: not the list's object or ETag %q: %s", s.existing, g.Header.Get("ETag"), g)
			}
			path := "/acme/" + s.section + "/" + s.name
			want(t, c.do("GET", path, nil), 404)

			r := want(t, c.do("PUT", path, s.create), 201)
			if !jsonEqual(t, r.Body, s.create) || r.etag() != v+1 {
				t.Errorf("create: body or ETag (want %d): %s", v+1, r)
			}
			r = want(t, c.do("PUT", path, s.replace), 200)
			if !jsonEqual(t, r.Body, s.replace) || r.etag() != v+2 {
				t.Errorf("replace: body or ETag (want %d): %s", v+2, r)
			}
			if g := want(t, c.do("GET", path, nil), 200); !jsonEqual(t, g.Body, s.replace) || g.etag() != v+2 {
				t.Errorf("get after replace: %s", g)
			}
			list = want(t, c.do("GET", "/acme/"+s.section, nil), 200)
			m = nil
			list.decode(t, &m)
			if !jsonEqual(t, m[s.name], s.replace) {
				t.Errorf("list after replace: %s", list)
			}
			if v2 := version(t, srv); v2 != v+2 {
				t.Errorf("stored version %d after two writes from %d", v2, v)
			}
			if d := want(t, c.do("DELETE", path, nil), 204); d.etag() != v+3 {
				t.Errorf("delete: ETag %q, want %d", d.Header.Get("ETag"), v+3)
			}
			want(t, c.do("GET", path, nil), 404)
			want(t, c.do("DELETE", path, nil), 404)
			unchanged(t, srv, v+3, "a second delete")
		})
	}
	// A number is named in any accepted form and stored in E.164.
	v := version(t, srv)
	want(t, c.do("PUT", "/acme/numbers/0034910000008", `{"extension":"user:bob"}`), 201)
	if _, ok := stored(t, srv).Numbers["+34910000008"]; !ok {
		t.Errorf("PUT numbers/0034910000008 did not store +34910000008: %v", stored(t, srv).Numbers)
	}
	want(t, c.do("GET", "/acme/numbers/%2B34910000008", nil), 200)
	want(t, c.do("GET", "/acme/numbers/34910000008", nil), 200)
	want(t, c.do("DELETE", "/acme/numbers/+34910000008", nil), 204)
	unchanged(t, srv, v+2, "number create + delete")
}

// testSecrets: passwords are never returned (GET users, GET config, PUT
// responses, YAML), and a GET-modify-PUT keeps the stored password, which
// the user's phone then registers with.
func testSecrets(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	ctx := context.Background()
	var users map[string]config.User
	want(t, c.do("GET", "/acme/users", nil), 200).decode(t, &users)
	if users["alice"].Password != config.Redacted || users["carol"].Password != config.Redacted {
		t.Errorf("GET users: passwords %q, %q, want %q", users["alice"].Password, users["carol"].Password, config.Redacted)
	}
	var trunk config.Trunk
	want(t, c.do("GET", "/acme/trunks/carrier", nil), 200).decode(t, &trunk)
	if trunk.Password != config.Redacted {
		t.Errorf("GET trunks/carrier: password %q", trunk.Password)
	}
	want(t, c.do("GET", "/acme/config", nil), 200)
	want(t, c.do("GET", "/acme/config", nil, hdr("Accept", "application/yaml")...), 200)

	// GET, change the extension, PUT back with the redacted password.
	var alice config.User
	g := want(t, c.do("GET", "/acme/users/alice", nil), 200)
	g.decode(t, &alice)
	alice.Extension = "111"
	r := want(t, c.do("PUT", "/acme/users/alice", alice, hdr("If-Match", g.Header.Get("ETag"))...), 200)
	if !strings.Contains(string(r.Body), config.Redacted) {
		t.Errorf("PUT users/alice: the password is not shown redacted: %s", r)
	}
	if u := stored(t, srv).Users["alice"]; u.Password != alicePW || u.Extension != "111" {
		t.Errorf("after GET-modify-PUT alice is %+v; want her password kept and extension 111", u)
	}
	var tr config.Trunk
	want(t, c.do("GET", "/acme/trunks/carrier", nil), 200).decode(t, &tr)
	tr.ReputationHeader = "X-Score"
	want(t, c.do("PUT", "/acme/trunks/carrier", tr), 200)
	if st := stored(t, srv).Trunks["carrier"]; st.Password != trunkPW || st.ReputationHeader != "X-Score" {
		t.Errorf("after GET-modify-PUT the trunk is %+v; want its password kept", st)
	}
	// The kept password is the one alice's phone registers with.
	p, err := testphone.New(ctx, testphone.Config{Name: "alice", User: "alice", Password: alicePW, Domain: "acme.test", Registrar: srv.SIPAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if code, err := p.Register(rctx, time.Hour); code != 200 {
		t.Errorf("alice registers with her kept password: %d %v", code, err)
	}

	// A new password set through the API is stored, never shown.
	const newPW = "alice-new-pw-8R3s"
	c.secrets.add(newPW)
	alice.Password = newPW
	want(t, c.do("PUT", "/acme/users/alice", alice), 200)
	if u := stored(t, srv).Users["alice"]; u.Password != newPW {
		t.Errorf("the new password was not stored: %+v", u)
	}
	want(t, c.do("GET", "/acme/users/alice", nil), 200)

	// A new user cannot be given the placeholder as a password: there is no
	// stored one to keep (apply refuses it too); it must not silently
	// become a user without a password.
	v := version(t, srv)
	r = c.do("PUT", "/acme/users/erin", `{"extension":"106","password":"<redacted>"}`)
	if r.Status != 422 && r.Status != 400 {
		t.Errorf("new user with password %q: want 422, got %s; stored: %+v", config.Redacted, r, stored(t, srv).Users["erin"])
		if r.Status < 300 {
			want(t, c.do("DELETE", "/acme/users/erin", nil), 204)
		}
	} else {
		unchanged(t, srv, v, "new user with a redacted password")
	}
	// Put alice back as she was for the other subtests.
	alice.Extension, alice.Password = "101", alicePW
	want(t, c.do("PUT", "/acme/users/alice", alice), 200)
}

// testIfMatch: a write with a stale If-Match gets 412 and stores nothing,
// on every kind of write; concurrent writes are serialised.
func testIfMatch(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	v := version(t, srv)
	stale := hdr("If-Match", strconv.Quote(strconv.FormatInt(v-1, 10)))
	for _, w := range []struct{ method, path, body string }{
		{"PUT", "/acme/extensions/x1", `{"destination":"user:alice"}`},
		{"DELETE", "/acme/extensions/rec", ""},
		{"PUT", "/acme/numbers/+34910000002/rules/1", `{"prefix":"*","weight":1,"action":"reject-503"}`},
		{"PUT", "/acme/numbers/+34910000002/rules", `[]`},
		{"DELETE", "/acme/numbers/+34910000002/rules/0", ""},
		{"PUT", "/acme/locations/madrid/forward", `{"enabled":true}`},
		{"PUT", "/acme/prompts/p1", `{"say":"hello"}`},
	} {
		var body any
		if w.body != "" {
			body = w.body
		}
		want(t, c.do(w.method, w.path, body, stale...), 412)
		unchanged(t, srv, v, w.method+" "+w.path+" with a stale If-Match")
	}
	doc := want(t, c.do("GET", "/acme/config", nil), 200)
	want(t, c.do("PUT", "/acme/config", doc.Body, stale...), 412)
	unchanged(t, srv, v, "PUT config with a stale If-Match")
	want(t, c.do("GET", "/acme/extensions/x1", nil), 404)
	want(t, c.do("GET", "/acme/extensions/rec", nil), 200)

	// Current, weak and "*" preconditions pass; garbage is a 400.
	want(t, c.do("PUT", "/acme/extensions/x1", `{"destination":"user:alice"}`, hdr("If-Match", fmt.Sprintf("%q", strconv.FormatInt(v, 10)))...), 201)
	want(t, c.do("PUT", "/acme/extensions/x1", `{"destination":"user:bob"}`, hdr("If-Match", fmt.Sprintf("W/%q", strconv.FormatInt(v+1, 10)))...), 200)
	want(t, c.do("DELETE", "/acme/extensions/x1", nil, hdr("If-Match", "*")...), 204)
	want(t, c.do("PUT", "/acme/extensions/x1", `{"destination":"user:bob"}`, hdr("If-Match", "yesterday")...), 400)
	unchanged(t, srv, v+3, "a garbage If-Match")

	// Eight writers with the same If-Match: one wins, seven get 412.
	v = version(t, srv)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.do("PUT", fmt.Sprintf("/acme/extensions/race%d", i), `{"destination":"user:alice"}`,
				hdr("If-Match", strconv.Quote(strconv.FormatInt(v, 10)))...).Status
		}()
	}
	wg.Wait()
	slices.Sort(statuses)
	if !slices.Equal(statuses, []int{201, 412, 412, 412, 412, 412, 412, 412}) {
		t.Errorf("8 concurrent writes with one If-Match: %v, want one 201 and seven 412", statuses)
	}
	unchanged(t, srv, v+1, "concurrent writes with one If-Match")
	// Eight writers without: none is lost.
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.do("PUT", fmt.Sprintf("/acme/extensions/free%d", i), `{"destination":"user:bob"}`).Status
		}()
	}
	wg.Wait()
	if slices.ContainsFunc(statuses, func(s int) bool { return s != 201 }) {
		t.Errorf("8 concurrent writes: %v, want 201 each", statuses)
	}
	doc2 := stored(t, srv)
	for i := range 8 {
		if _, ok := doc2.Extensions[fmt.Sprintf("free%d", i)]; !ok {
			t.Errorf("concurrent write free%d lost", i)
		}
	}
	unchanged(t, srv, v+9, "eight concurrent writes")
	// Clean up in one write.
	want(t, c.do("PUT", "/acme/config", func() any {
		d := stored(t, srv).Redact()
		for k := range d.Extensions {
			if strings.HasPrefix(k, "race") || strings.HasPrefix(k, "free") {
				delete(d.Extensions, k)
			}
		}
		return d
	}()), 200)
}

// testReferences: deleting an object that others reference is a 409
// naming the referrers' paths, and nothing is stored.
func testReferences(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	v := version(t, srv)
	for _, d := range []struct {
		path      string
		referrers []string
	}{
		{"/acme/extensions/support", []string{`numbers["+34910000002"].extension`, `ivrs.front.options["1"]`, `parks.lot1.return_to`}},
		{"/acme/users/alice", []string{`numbers["+34910000001"].extension`, `ivrs.front.options["2"]`, `extensions.support.members[0]`}},
		{"/acme/users/carol", []string{`extensions.vm.members[0]`, `extensions.vm.on_failure`}},
		{"/acme/locations/madrid", []string{`numbers["+34910000001"].location`}},
		{"/acme/prompts/bye", []string{`ivrs.front.prompt`}},
		{"/acme/ivrs/front", []string{`numbers["+34910000005"].extension`}},
		{"/acme/trunks/carrier", []string{`defaults.trunk`}},
		{"/acme/extensions/rec", []string{`numbers["+34910000003"].extension`}},
	} {
		wantPaths(t, c.do("DELETE", d.path, nil), 409, d.referrers...)
		unchanged(t, srv, v, "DELETE "+d.path)
	}
	want(t, c.do("GET", "/acme/extensions/support", nil), 200)
}

// testValidation: a PUT of an invalid object is a 422 with the field
// paths of SPEC §2, and nothing is stored.
func testValidation(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	v := version(t, srv)
	for _, p := range []struct {
		path, body string
		paths      []string
	}{
		{"/acme/extensions/bad", `{"code":"7","members":["nobody"],"distribution":"multi-ring","max_parallel":99}`,
			[]string{"extensions.bad.code", "extensions.bad.members[0]", "extensions.bad.max_parallel"}},
		{"/acme/extensions/loop", `{"destination":"loop"}`, []string{"extensions.loop.destination"}},
		{"/acme/numbers/+34910000009", `{"extension":"nowhere","rules":[{"prefix":"12a*","weight":1,"action":"route"}]}`,
			[]string{`numbers["+34910000009"].extension`, `numbers["+34910000009"].rules[0].prefix`, `numbers["+34910000009"].rules[0].extension`}},
		{"/acme/numbers/+34910000009", `{"extension":"support","sms_extension":"alice"}`, []string{`numbers["+34910000009"].sms_extension`}},
		{"/acme/numbers/+34910000009", `{"extension":"support","location":"paris"}`, []string{`numbers["+34910000009"].location`}},
		{"/acme/users/dave", `{"extension":"101"}`, []string{"users.dave.extension"}},
		// The duplicate is named where validation finds it (extensions come after users).
		{"/acme/users/support", `{"extension":"190"}`, []string{"extensions.support"}},
		{"/acme/users/eve", `{"extension":"190","blocklist":["+19x"]}`, []string{"users.eve.blocklist[0]"}},
		{"/acme/parks/lot9", `{"orbits":"abc"}`, []string{"parks.lot9.orbits"}},
		{"/acme/faxes/f9", `{"destination":"support"}`, []string{"faxes.f9.destination"}},
		{"/acme/locations/x9", `{"forward":true}`, []string{"locations.x9.forward_destination"}},
		{"/acme/ivrs/i9", `{}`, []string{"ivrs.i9"}},
		{"/acme/trunks/t9", `{"address":""}`, []string{"trunks.t9.address"}},
		{"/acme/numbers/+34910000002/rules/0", `{"prefix":"*","weight":1,"action":"cnam-prefix"}`,
			[]string{`numbers["+34910000002"].rules[0].cnam_prefix`}},
		{"/acme/numbers/+34910000002/rules/1", `{"prefix":"*","weight":1,"action":"explode"}`,
			[]string{`numbers["+34910000002"].rules[1].action`}},
		// A number that is not E.164 is a validation error of SPEC §2.
		{"/acme/numbers/12ab", `{"extension":"support"}`, []string{`numbers["12ab"]`}},
	} {
		r := c.do("PUT", p.path, p.body)
		wantPaths(t, r, 422, p.paths...)
		unchanged(t, srv, v, "PUT "+p.path+" "+p.body)
	}
	// 300 rules at most on a number.
	var rules []config.Rule
	for i := range 301 {
		rules = append(rules, config.Rule{Prefix: "3460*", Weight: i, Action: "reject-busy"})
	}
	wantPaths(t, c.do("PUT", "/acme/numbers/+34910000002/rules", rules), 422, `numbers["+34910000002"].rules`)
	unchanged(t, srv, v, "301 rules")
}

// testRules: rules list / get / append / replace / delete and a PUT of the
// whole list to reorder; the route endpoint follows each.
func testRules(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	const base = "/acme/numbers/+34910000002/rules"
	r0 := `{"prefix":"34666*","weight":10,"action":"reject-busy","tags":["blocked"]}`
	v := version(t, srv)
	g := want(t, c.do("GET", base, nil), 200)
	if !jsonEqual(t, g.Body, "["+r0+"]") || g.etag() != v {
		t.Errorf("GET rules: %s", g)
	}
	if g := want(t, c.do("GET", base+"/0", nil), 200); !jsonEqual(t, g.Body, r0) {
		t.Errorf("GET rules/0: %s", g)
	}
	want(t, c.do("GET", base+"/1", nil), 404)
	want(t, c.do("GET", base+"/-1", nil), 404)
	want(t, c.do("GET", base+"/x", nil), 404)
	want(t, c.do("GET", "/acme/numbers/+34910000077/rules", nil), 404)
	// The number in another accepted form.
	want(t, c.do("GET", "/acme/numbers/0034910000002/rules/0", nil), 200)

	// Append at index len.
	r1 := `{"prefix":"3460*","weight":20,"action":"cnam-prefix","cnam_prefix":"MOBILE "}`
	a := want(t, c.do("PUT", base+"/1", r1), 200)
	if !jsonEqual(t, a.Body, "["+r0+","+r1+"]") || a.etag() != v+1 {
		t.Errorf("append rules/1: %s", a)
	}
	want(t, c.do("PUT", base+"/3", r1), 404)
	unchanged(t, srv, v+1, "PUT rules/3 past the end")
	ex := routeOf(t, c, "+34910000002", "+34600000001")
	if ex.Outcome != routing.OutcomeRouted || ex.CallerName != "MOBILE " || !slices.Equal(ex.RulesFired, []int{1}) {
		t.Errorf("after the append: %+v", ex)
	}
	// Replace rule 0: a reject-503 for everyone, weighed after the cnam.
	r0b := `{"prefix":"*","weight":30,"action":"reject-503"}`
	if a := want(t, c.do("PUT", base+"/0", r0b), 200); !jsonEqual(t, a.Body, "["+r0b+","+r1+"]") || a.etag() != v+2 {
		t.Errorf("replace rules/0: %s", a)
	}
	ex = routeOf(t, c, "+34910000002", "+34600000001")
	if ex.Outcome != routing.OutcomeRejected || ex.SIPStatus != 503 || !slices.Equal(ex.RulesFired, []int{1, 0}) {
		t.Errorf("after the replace: %+v", ex)
	}
	// Reorder by PUT of the whole list: rule indexes follow.
	if a := want(t, c.do("PUT", base, "["+r1+","+r0b+"]"), 200); !jsonEqual(t, a.Body, "["+r1+","+r0b+"]") || a.etag() != v+3 {
		t.Errorf("reorder: %s", a)
	}
	if g := want(t, c.do("GET", base+"/0", nil), 200); !jsonEqual(t, g.Body, r1) {
		t.Errorf("rules/0 after reorder: %s", g)
	}
	ex = routeOf(t, c, "+34910000002", "+34600000001")
	if !slices.Equal(ex.RulesFired, []int{0, 1}) {
		t.Errorf("after the reorder rules fired %v, want [0 1]", ex.RulesFired)
	}
	// Delete rule 1 (the 503): the call is routed again.
	if d := want(t, c.do("DELETE", base+"/1", nil), 204); d.etag() != v+4 {
		t.Errorf("delete rules/1: ETag %q", d.Header.Get("ETag"))
	}
	want(t, c.do("DELETE", base+"/1", nil), 404)
	if g := want(t, c.do("GET", base, nil), 200); !jsonEqual(t, g.Body, "["+r1+"]") {
		t.Errorf("rules after delete: %s", g)
	}
	if ex := routeOf(t, c, "+34910000002", "+34600000001"); ex.Outcome != routing.OutcomeRouted {
		t.Errorf("after the delete: %+v", ex)
	}
	// Back to the original rule.
	want(t, c.do("PUT", base, "["+r0+"]"), 200)
	unchanged(t, srv, v+5, "rules")
}

// routeOf asks the route endpoint.
func routeOf(t testing.TB, c *client, number, from string) routing.Explanation {
	t.Helper()
	var ex routing.Explanation
	want(t, c.do("GET", "/acme/route?"+query("number", number, "from", from), nil), 200).decode(t, &ex)
	return ex
}

// query encodes key, value pairs (a "+" must be %2B in a query).
func query(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[i] + "=" + strings.NewReplacer("+", "%2B", " ", "%20", "&", "%26", "*", "%2A", ":", "%3A").Replace(kv[i+1]))
	}
	return b.String()
}

// testForward: PUT locations/{name}/forward switches the location's
// forwarding, which the number's routing follows at once.
func testForward(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	v := version(t, srv)
	r := want(t, c.do("PUT", "/acme/locations/madrid/forward", `{"enabled":true}`), 200)
	if !jsonEqual(t, r.Body, `{"forward":true,"forward_destination":"user:bob"}`) || r.etag() != v+1 {
		t.Errorf("forward on: %s", r)
	}
	if !stored(t, srv).Locations["madrid"].Forward {
		t.Error("forward on: not stored")
	}
	if ex := routeOf(t, c, "+34910000001", "+34600000001"); ex.Outcome != routing.OutcomeForwarded || ex.Destination != "user:bob" {
		t.Errorf("forward on: routing %s to %s, want forwarded to user:bob", ex.Outcome, ex.Destination)
	}
	want(t, c.do("PUT", "/acme/locations/madrid/forward", `{"enabled":false}`), 200)
	if ex := routeOf(t, c, "+34910000001", "+34600000001"); ex.Outcome != routing.OutcomeRouted || ex.Destination != "user:alice" {
		t.Errorf("forward off: routing %s to %s, want routed to user:alice", ex.Outcome, ex.Destination)
	}
	v += 2
	want(t, c.do("PUT", "/acme/locations/nowhere/forward", `{"enabled":true}`), 404)
	want(t, c.do("PUT", "/acme/locations/madrid/forward", `{}`), 400)
	want(t, c.do("PUT", "/acme/locations/madrid/forward", `{"enabled":"yes"}`), 400)
	unchanged(t, srv, v, "bad forward requests")
	// A location without a destination cannot forward.
	want(t, c.do("PUT", "/acme/locations/nodest", `{"forward":false}`), 201)
	wantPaths(t, c.do("PUT", "/acme/locations/nodest/forward", `{"enabled":true}`), 422, "locations.nodest.forward_destination")
	want(t, c.do("DELETE", "/acme/locations/nodest", nil), 204)
	unchanged(t, srv, v+2, "location without destination")
}

// testPrompts: a WAV upload is validated, stored and converted as on load
// (the running node plays it); a non-WAV is a 422; {"say": ...} prompts
// are rendered by the TTS engine.
func testPrompts(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	v := version(t, srv)
	wav := hdr("Content-Type", "audio/wav")
	// A 16 kHz mono WAV of 1 s: the node serves it as 8000 samples.
	r := c.do("PUT", "/acme/prompts/greet", wavMono16k(sine(440, 16000, 16000)), wav...)
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("upload: %s", r)
	}
	if r.Status != 201 {
		t.Logf("note: creating a prompt answers %d, other sections answer 201 for a create", r.Status)
	}
	var p config.Prompt
	r.decode(t, &p)
	if !strings.HasSuffix(p.File, ".wav") || p.Say != "" || r.etag() != v+1 {
		t.Errorf("upload: %s", r)
	}
	if s, ok := servedPrompt(srv, "greet"); !ok || len(s) < 7900 || len(s) > 8100 {
		t.Errorf("the node serves greet as %d samples (%v), want ~8000 (1 s converted to 8 kHz)", len(s), ok)
	} else if f, ok := media.DominantFrequency(s, []float64{300, 440, 1000}); !ok || f != 440 {
		t.Errorf("greet as served: %v Hz", f)
	}
	if g := want(t, c.do("GET", "/acme/prompts/greet", nil), 200); !jsonEqual(t, g.Body, p) {
		t.Errorf("GET prompts/greet: %s", g)
	}
	var list map[string]config.Prompt
	want(t, c.do("GET", "/acme/prompts", nil), 200).decode(t, &list)
	if list["greet"] != p || list["bye"].File == "" {
		t.Errorf("GET prompts: %v", list)
	}
	// Replace with a recording of media's WAV writer (8 kHz stereo).
	r = want(t, c.do("PUT", "/acme/prompts/greet", wavStereo8k(t, sine(1000, 8000, 4000), sine(1000, 8000, 4000)), hdr("Content-Type", "audio/x-wav")...), 200)
	if s, ok := servedPrompt(srv, "greet"); !ok || len(s) != 4000 {
		t.Errorf("after the replace the node serves greet as %d samples, want 4000", len(s))
	}
	// A built-in prompt file, as is.
	builtin, err := os.ReadFile(filepath.Join(builtinDir(t), "goodbye.wav"))
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.do("PUT", "/acme/prompts/greet", builtin, wav...), 200)
	v = version(t, srv)

	// A refused upload leaves no file behind (nothing stored).
	dir := filepath.Dir(p.File)
	files := func() int {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	nfiles := files()
	want(t, c.do("PUT", "/acme/prompts/greet", builtin, hdr("Content-Type", "audio/wav", "If-Match", `"1"`)...), 412)
	if n := files(); n != nfiles {
		t.Errorf("an upload refused with 412 left %d new file(s) in %s", n-nfiles, dir)
	}
	unchanged(t, srv, v, "an upload with a stale If-Match")

	// Not WAV: 422, nothing stored.
	for _, b := range [][]byte{[]byte("this is not a wav file"), builtin[:30], {}, append([]byte("RIFF\x00\x00\x00\x00WAVE"), make([]byte, 40)...)} {
		wantPaths(t, c.do("PUT", "/acme/prompts/bad", b, wav...), 422, "body")
		unchanged(t, srv, v, "non-WAV upload")
	}
	want(t, c.do("GET", "/acme/prompts/bad", nil), 404)
	// No server-side file paths through the API.
	want(t, c.do("PUT", "/acme/prompts/bad", `{"file":"/etc/passwd"}`), 400)
	wantPaths(t, c.do("PUT", "/acme/prompts/bad", `{"say":""}`), 422, "say")
	wantPaths(t, c.do("PUT", "/acme/prompts/bad%20name", `{"say":"hi"}`), 422, "name")
	want(t, c.do("PUT", "/acme/prompts/bad", bytes.Repeat([]byte{0}, 16<<20+1), wav...), 413)
	unchanged(t, srv, v, "bad prompt uploads")

	// say: rendered by the TTS engine, served by the node.
	r = c.do("PUT", "/acme/prompts/hello", `{"say":"Hello, you have reached Acme."}`)
	if r.Status != 201 && r.Status != 200 {
		t.Errorf("say prompt: %s", r)
	}
	if !jsonEqual(t, r.Body, `{"say":"Hello, you have reached Acme."}`) || r.etag() != v+1 {
		t.Errorf("say prompt: %s", r)
	}
	if s, ok := servedPrompt(srv, "hello"); !ok || len(s) != 4000 {
		t.Errorf("the node serves hello as %d samples (%v), want the TTS's 4000", len(s), ok)
	}
	// A text the TTS engine cannot render is refused as on load, with its
	// path, and not stored (the issue: say: prompts are validated too).
	r = c.do("PUT", "/acme/prompts/broken", `{"say":"UNSAYABLE text"}`)
	if r.Status != 422 {
		t.Errorf("a say: prompt the TTS engine cannot render: want 422 naming prompts.broken.say, got %s (the node logs it and plays nothing)", r)
		if r.Status < 300 {
			want(t, c.do("DELETE", "/acme/prompts/broken", nil), 204)
		}
	} else {
		unchanged(t, srv, v+1, "an unrenderable say: prompt")
	}
	// Delete.
	v = version(t, srv)
	want(t, c.do("DELETE", "/acme/prompts/hello", nil), 204)
	want(t, c.do("DELETE", "/acme/prompts/greet", nil), 204)
	want(t, c.do("GET", "/acme/prompts/greet", nil), 404)
	if _, ok := servedPrompt(srv, "greet"); ok {
		t.Error("the node still serves the deleted prompt greet")
	}
	unchanged(t, srv, v+2, "prompt deletes")
}

// testReputation: the account's reputation list (caller -> level), with
// callers normalised to E.164.
func testReputation(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	ctx := context.Background()
	v := version(t, srv)
	r := want(t, c.do("PUT", "/acme/reputation/0034600111222", `{"level":"high"}`), 200)
	if !jsonEqual(t, r.Body, `{"caller":"+34600111222","level":"high"}`) {
		t.Errorf("PUT reputation: %s", r)
	}
	if l, err := srv.Store.Reputation(ctx, "acme", "+34600111222"); err != nil || l != config.LevelHigh {
		t.Errorf("stored level %v %v", l, err)
	}
	for _, form := range []string{"+34600111222", "%2B34600111222", "34600111222", "0034600111222"} {
		if g := want(t, c.do("GET", "/acme/reputation/"+form, nil), 200); !jsonEqual(t, g.Body, `{"caller":"+34600111222","level":"high"}`) {
			t.Errorf("GET reputation/%s: %s", form, g)
		}
	}
	want(t, c.do("PUT", "/acme/reputation/anonymous", `{"level":"low"}`), 200)
	var list map[string]string
	want(t, c.do("GET", "/acme/reputation", nil), 200).decode(t, &list)
	if list["+34600111222"] != "high" || list["anonymous"] != "low" || len(list) != 2 {
		t.Errorf("GET reputation: %v", list)
	}
	// The route endpoint sees it.
	ex := routeOf(t, c, "+34910000002", "0034600111222")
	if !slices.ContainsFunc(ex.Trace, func(l string) bool {
		return strings.HasPrefix(l, "reputation: ") && strings.HasSuffix(l, "is on the account's list as high")
	}) {
		t.Errorf("route does not see the listed caller: %q", ex.Trace)
	}
	for _, b := range []string{`{"level":"extreme"}`, `{"level":""}`, `{}`} {
		wantPaths(t, c.do("PUT", "/acme/reputation/+34600111222", b), 422, "level")
	}
	want(t, c.do("PUT", "/acme/reputation/+34600111222", `{"level":3}`), 400)
	want(t, c.do("DELETE", "/acme/reputation/34600111222", nil), 204)
	want(t, c.do("DELETE", "/acme/reputation/anonymous", nil), 204)
	if g := want(t, c.do("GET", "/acme/reputation/+34600111222", nil), 200); !jsonEqual(t, g.Body, `{"caller":"+34600111222","level":"none"}`) {
		t.Errorf("after delete: %s", g)
	}
	list = nil
	want(t, c.do("GET", "/acme/reputation", nil), 200).decode(t, &list)
	if len(list) != 0 {
		t.Errorf("GET reputation after deletes: %v", list)
	}
	unchanged(t, srv, v, "the reputation list is not the configuration")
}

// testRoute: the route endpoint is the explain of SPEC §6, the JSON of
// `route --account A --json` (accounts.Explain) and, without a list, of
// `route -f --json` (accounts.ExplainDoc).
func testRoute(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	ctx := context.Background()
	for _, q := range []struct {
		number, from, name, reputation, captcha string
	}{
		{"+34910000002", "+34666000001", "", "", ""},
		{"+34910000002", "+34600000001", "Jane Doe", "", ""},
		{"0034910000001", "anonymous", "", "", ""},
		{"+34910000001", "", "", "high", ""},
		{"+34910000099", "+34600000001", "", "", ""},
		{"+34910000005", "+44207000000", "X", "medium", "fail"},
	} {
		var err error
		req := routing.Request{Number: q.number, Caller: q.from, CallerName: q.name, Captcha: routing.CaptchaPassed}
		if req.Reputation, err = config.ParseLevel(q.reputation); err != nil {
			t.Fatal(err)
		}
		if q.captcha == "fail" {
			req.Captcha = routing.CaptchaFailed
		}
		r := want(t, c.do("GET", "/acme/route?"+query("number", q.number, "from", q.from, "name", q.name, "reputation", q.reputation, "captcha", q.captcha), nil), 200)
		cli, err := accounts.Explain(ctx, srv.Store, "acme", req)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, r.Body, cli) {
			t.Errorf("route %+v:\nAPI:         %s\nroute --json: %s", q, r.Body, mustJSON(cli))
		}
		doc, err := accounts.ExplainDoc(stored(t, srv), req)
		if err != nil {
			t.Fatal(err)
		}
		var api routing.Explanation
		r.decode(t, &api)
		if api.Outcome != doc.Outcome || api.SIPStatus != doc.SIPStatus || api.Destination != doc.Destination ||
			api.CallerName != doc.CallerName || !slices.Equal(api.Tags, doc.Tags) || !slices.Equal(api.RulesFired, doc.RulesFired) ||
			!slices.EqualFunc(api.Attempts, doc.Attempts, slices.Equal) || api.Captcha != doc.Captcha || !slices.Equal(unscreened(api.Trace), doc.Trace) {
			t.Errorf("route %+v:\nAPI:             %s\nroute -f --json: %s", q, r.Body, mustJSON(doc))
		}
		for _, f := range []string{`"outcome"`, `"caller_name"`, `"tags"`, `"rules_fired"`, `"captcha"`, `"trace"`} {
			if !bytes.Contains(r.Body, []byte(f)) {
				t.Errorf("route %+v: no %s field: %s", q, f, r.Body)
			}
		}
	}
	if ex := routeOf(t, c, "+34910000002", "+34666000001"); ex.Outcome != routing.OutcomeRejected || ex.SIPStatus != 486 || !slices.Equal(ex.Tags, []string{"sales", "blocked"}) {
		t.Errorf("route of a blocked caller: %+v", ex)
	}
	if ex := routeOf(t, c, "+34910000002", "+34600000001"); ex.Destination != "support" || !slices.EqualFunc(ex.Attempts, [][]string{{"user:alice"}, {"user:bob"}}, slices.Equal) {
		t.Errorf("route to the group: %+v", ex)
	}
	if ex := routeOf(t, c, "+34910000099", "+34600000001"); ex.Outcome != routing.OutcomeNotFound || ex.SIPStatus != 404 {
		t.Errorf("route to an unknown number: %+v", ex)
	}
	wantPaths(t, c.do("GET", "/acme/route?from=%2B34600000001", nil), 400, "number")
	wantPaths(t, c.do("GET", "/acme/route?number=%2B34910000001&reputation=extreme", nil), 400, "reputation")
	wantPaths(t, c.do("GET", "/acme/route?number=%2B34910000001&captcha=maybe", nil), 400, "captcha")
}

// unscreened is a trace without the screening notes that only an account
// in a store has (its reputation list), which route -f does not.
func unscreened(trace []string) []string {
	var out []string
	for _, l := range trace {
		if !strings.HasPrefix(l, "reputation: ") {
			out = append(out, l)
		}
	}
	return out
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// testConfig: GET/PUT of the whole document, JSON and YAML.
func testConfig(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	v := version(t, srv)
	g := want(t, c.do("GET", "/acme/config", nil), 200)
	if ct := g.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || g.etag() != v {
		t.Errorf("GET config: %s, ETag %q", ct, g.Header.Get("ETag"))
	}
	var doc config.Document
	g.decode(t, &doc)
	if doc.Account != "acme" || len(doc.Numbers) != 5 || doc.Users["bob"].Password != config.Redacted {
		t.Errorf("GET config: %s", g)
	}
	if !jsonEqual(t, g.Body, stored(t, srv).Redact()) {
		t.Errorf("GET config is not the stored document, redacted: %s", g)
	}
	y := want(t, c.do("GET", "/acme/config", nil, hdr("Accept", "application/yaml")...), 200)
	if ct := y.Header.Get("Content-Type"); ct != "application/yaml" || y.etag() != v {
		t.Errorf("GET config as YAML: %s, ETag %q", ct, y.Header.Get("ETag"))
	}
	yd, err := config.Parse(y.Body, "yaml")
	if err != nil {
		t.Fatalf("the YAML does not parse: %v\n%s", err, y.Body)
	}
	if !jsonEqual(t, g.Body, yd) {
		t.Errorf("the YAML is not the JSON document:\n%s", y.Body)
	}

	// JSON PUT of the GET, modified, with its ETag: passwords kept.
	doc.Numbers["+34910000005"] = config.Number{Extension: "front", Tags: []string{"ivr"}}
	r := want(t, c.do("PUT", "/acme/config", doc, hdr("If-Match", g.Header.Get("ETag"))...), 200)
	if r.etag() != v+1 || !jsonEqual(t, r.Body, stored(t, srv).Redact()) {
		t.Errorf("PUT config: %s", r)
	}
	st := stored(t, srv)
	if st.Users["alice"].Password != alicePW || st.Users["bob"].Password != bobPW || st.Trunks["carrier"].Password != trunkPW ||
		!slices.Equal(st.Numbers["+34910000005"].Tags, []string{"ivr"}) {
		t.Errorf("after PUT config: %+v", st)
	}
	// YAML PUT.
	yb := bytes.Replace(y.Body, []byte("madrid:\n"), []byte("madrid:\n    # via YAML\n"), 1)
	want(t, c.do("PUT", "/acme/config", yb, hdr("Content-Type", "application/yaml")...), 200)
	if version(t, srv) != v+2 || stored(t, srv).Users["carol"].Password != carolPW {
		t.Errorf("PUT config as YAML: version %d, carol %+v", version(t, srv), stored(t, srv).Users["carol"])
	}
	v += 2
	// Refusals: another account, invalid, unknown field, not a document.
	d2 := doc
	d2.Account = "globex"
	wantPaths(t, c.do("PUT", "/acme/config", d2), 422, "account")
	d3 := *stored(t, srv).Redact()
	d3.Numbers = map[string]config.Number{"+34910000001": {Extension: "nobody"}}
	wantPaths(t, c.do("PUT", "/acme/config", d3), 422, `numbers["+34910000001"].extension`)
	want(t, c.do("PUT", "/acme/config", `{"account":"acme","colour":"red"}`), 400)
	want(t, c.do("PUT", "/acme/config", `[1,2,3]`), 400)
	want(t, c.do("PUT", "/acme/config", ``), 400)
	unchanged(t, srv, v, "refused PUT config")
	want(t, c.do("GET", "/nope/config", nil), 404)

	// PUT config cannot point a prompt at a file of the server outside the
	// account (another tenant's recording, say): the prompts endpoint
	// takes uploads only, never server-side paths, and the whole document
	// must not be a way around it.
	foreign := filepath.Join(t.TempDir(), "other-tenant-recording.wav")
	if err := os.WriteFile(foreign, wavStereo8k(t, sine(700, 8000, 8000), sine(700, 8000, 8000)), 0o600); err != nil {
		t.Fatal(err)
	}
	d4 := *stored(t, srv).Redact()
	d4.Prompts = maps.Clone(d4.Prompts)
	d4.Prompts["stolen"] = config.Prompt{File: foreign}
	r = c.do("PUT", "/acme/config", d4)
	if r.Status != 422 {
		_, served := servedPrompt(srv, "stolen")
		t.Errorf("PUT config with prompts.stolen.file = %s (a server file outside the account): want 422, got %s; the node serves it to callers: %v", foreign, r, served)
		if r.Status < 300 {
			d4.Prompts = maps.Clone(d4.Prompts)
			delete(d4.Prompts, "stolen")
			want(t, c.do("PUT", "/acme/config", d4), 200)
		}
	} else {
		unchanged(t, srv, v, "a prompt file outside the account")
	}
}

// testHistory: every change is a version with its time, author and
// document; a version's diff; rollback.
func testHistory(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	ctx := context.Background()
	v := version(t, srv)
	before := time.Now()
	want(t, c.do("PUT", "/acme/extensions/hist", `{"destination":"user:alice"}`), 201)
	var h struct {
		Versions []struct {
			Version  int64           `json:"version"`
			Author   string          `json:"author"`
			Created  time.Time       `json:"created"`
			Document json.RawMessage `json:"document"`
		} `json:"versions"`
	}
	want(t, c.do("GET", "/acme/config/versions", nil), 200).decode(t, &h)
	if len(h.Versions) != int(v+1) {
		t.Fatalf("%d versions, want %d: %+v", len(h.Versions), v+1, h.Versions)
	}
	for i, e := range h.Versions {
		wantAuthor := "ops"
		if e.Version == 1 {
			wantAuthor = "cli" // nodetest applies the document as `apply` does
		}
		if e.Version != v+1-int64(i) || e.Author != wantAuthor || e.Created.IsZero() || e.Document != nil {
			t.Errorf("version %d: %+v, want number %d by %s, newest first, no document", i, e, v+1-int64(i), wantAuthor)
		}
	}
	if created := h.Versions[0].Created; created.Before(before.Add(-time.Second)) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("the newest version was created %s, the write was at %s", created, before)
	}

	var one struct {
		Version  int64           `json:"version"`
		Author   string          `json:"author"`
		Created  time.Time       `json:"created"`
		Document json.RawMessage `json:"document"`
	}
	r := want(t, c.do("GET", "/acme/config/versions/1", nil), 200)
	r.decode(t, &one)
	first, _, err := srv.Store.ConfigAt(ctx, "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	if one.Version != 1 || one.Author != "cli" || one.Created.IsZero() || !jsonEqual(t, one.Document, first.Redact()) {
		t.Errorf("version 1: %s", r)
	}
	// The diff of the last write: one extension added.
	var diff struct {
		Version int64 `json:"version"`
		Changes []struct {
			Op   string `json:"op"`
			Path string `json:"path"`
			Old  any    `json:"old"`
			New  any    `json:"new"`
		} `json:"changes"`
	}
	want(t, c.do("GET", fmt.Sprintf("/acme/config/versions/%d/diff", v+1), nil), 200).decode(t, &diff)
	if diff.Version != v+1 || len(diff.Changes) != 1 || diff.Changes[0].Op != "+" || diff.Changes[0].Path != "extensions.hist" ||
		!reflect.DeepEqual(diff.Changes[0].New, map[string]any{"destination": "user:alice"}) {
		t.Errorf("diff of version %d: %+v", v+1, diff)
	}
	// Diffs never show passwords (the guard in do checks every body): the
	// first version adds them all; a password change shows a placeholder.
	want(t, c.do("GET", "/acme/config/versions/1/diff", nil), 200)
	const pw2 = "bob-second-pw-4W"
	c.secrets.add(pw2)
	want(t, c.do("PUT", "/acme/users/bob", `{"extension":"102","password":"`+pw2+`"}`), 200)
	diff.Changes = nil
	want(t, c.do("GET", fmt.Sprintf("/acme/config/versions/%d/diff", v+2), nil), 200).decode(t, &diff)
	if len(diff.Changes) != 1 || diff.Changes[0].Path != "users.bob.password" || diff.Changes[0].Op != "~" {
		t.Errorf("diff of a password change: %+v", diff.Changes)
	}
	want(t, c.do("GET", fmt.Sprintf("/acme/config/versions/%d", v+2), nil), 200)
	for _, p := range []string{"/acme/config/versions/999", "/acme/config/versions/0", "/acme/config/versions/x", "/acme/config/versions/999/diff", "/acme/config/versions/-1/diff"} {
		want(t, c.do("GET", p, nil), 404)
	}

	// Rollback to version v: a new version (v+3) with v's document.
	rb := want(t, c.do("POST", "/acme/config/rollback", fmt.Sprintf(`{"version":%d}`, v)), 200)
	if !jsonEqual(t, rb.Body, fmt.Sprintf(`{"version":%d,"rolled_back_to":%d}`, v+3, v)) || rb.etag() != v+3 {
		t.Errorf("rollback: %s", rb)
	}
	old, _, err := srv.Store.ConfigAt(ctx, "acme", v)
	if err != nil {
		t.Fatal(err)
	}
	if st := stored(t, srv); !reflect.DeepEqual(st, old) {
		t.Errorf("after the rollback the stored document is not version %d's:\n%s\n%s", v, mustJSON(st), mustJSON(old))
	}
	want(t, c.do("GET", "/acme/extensions/hist", nil), 404)
	h.Versions = nil
	want(t, c.do("GET", "/acme/config/versions", nil), 200).decode(t, &h)
	if len(h.Versions) == 0 || h.Versions[0].Version != v+3 || h.Versions[0].Author != "ops" {
		t.Errorf("the rollback's version: %+v", h.Versions[:1])
	}
	// The rollback reaches the running node.
	if a, ok := srv.Accounts.View().Account("acme"); !ok || a.Version != v+3 {
		t.Errorf("the node serves version %v, want %d", a, v+3)
	}
	want(t, c.do("POST", "/acme/config/rollback", `{"version":999}`), 404)
	wantPaths(t, c.do("POST", "/acme/config/rollback", `{"version":0}`), 400, "version")
	want(t, c.do("POST", "/acme/config/rollback", `{}`), 400)
	want(t, c.do("POST", "/acme/config/rollback", `{"version":"1"}`), 400)
	unchanged(t, srv, v+3, "refused rollbacks")
}
