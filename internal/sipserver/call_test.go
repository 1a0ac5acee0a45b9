package sipserver

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/api"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// Addresses of the simulated world: users' phones on 127.0.0.1, the carrier
// delivering calls from 127.0.0.2, the PSTN side of the trunk on 127.0.0.3.
var (
	carrierIP = netip.MustParseAddr("127.0.0.2")
	pstnIP    = netip.MustParseAddr("127.0.0.3")
)

// worldDoc is the account the call tests use; %[1]s is the PSTN phone's
// address (where the trunk sends external calls), %[2]s the directory of
// the built-in prompt files.
const worldDoc = `
account: acme
domain: acme.test
defaults: { caller_id: original, service_number: "+34910000099", trunk: carrier, allowed_destinations: ["+34*"] }
trunks:
  carrier: { address: "sip:%[1]s", inbound_from: ["127.0.0.2/32"], reputation_header: X-Spam-Score }
users:
  alice: { extension: "101", password: pa, blocklist: ["+1900*"] }
  bob:   { extension: "102", password: pb }
  carol: { extension: "103", password: pc }
prompts:
  bye:     { file: "%[2]s/goodbye.wav" }
  hold:    { file: "%[2]s/please-hold.wav" }
  whisper: { file: "%[2]s/press-one.wav" }
  voicemail-bob: { file: "%[2]s/not-available.wav" }
extensions:
  seq:    { code: "21", members: ["user:alice", "user:bob"], timeout: 2s }
  rota:   { code: "22", members: ["user:alice", "user:bob", "user:carol"], distribution: rotating, timeout: 2s }
  ring:   { code: "23", members: ["user:alice", "user:bob", "user:carol"], distribution: multi-ring, timeout: 3s }
  busy:   { members: ["user:alice"], timeout: 1s }
  quiet:  { members: ["user:alice"], timeout: 300ms }
  hidden: { destination: "user:bob", caller_id: hidden }
  svc:    { destination: "user:bob", caller_id: service }
  called: { destination: "user:bob", caller_id: called }
  chain:  { members: ["user:alice"], timeout: 300ms, on_failure: "+34600000003" }
  seq2:   { members: ["user:alice", "user:bob"], timeout: 1s }
  silent: { members: ["user:bob"], ringing: none }
  ringp:  { members: ["user:bob"], ringing: prompt:hold, timeout: 5s }
  closed: { members: ["user:alice"], timeout: 300ms, on_failure: prompt:bye }
  ann:    { members: ["user:bob"], announcement: prompt:whisper }
  xfer:   { code: "24", members: ["user:bob"], transfer: true }
  rec:    { members: ["user:bob"], recording: always }
  dyn:    { destination: "${dest}", on_failure: prompt:bye }
  vm:     { members: ["user:alice"], timeout: 300ms, on_failure: "voicemail:alice" }
  conf:   { members: ["user:alice", "user:bob"], announcement: prompt:whisper, confirm: true, timeout: 15s }
  vmb:    { members: ["user:bob"], timeout: 300ms, on_failure: "voicemail:bob" }
  q:      { members: ["user:alice"], timeout: 400ms, queue: { max_wait: 4s, message: prompt:hold }, on_failure: prompt:bye }
  recm:   { members: ["user:bob"], recording: manual, recording_notice: prompt:whisper }
faxes:
  fax1: { destination: "sip:fax@%[1]s" }
parks:
  lot: { orbits: "701-702", timeout: 6s, return_to: "user:carol" }
ivrs:
  wait:
    prompt: prompt:hold
    options: { "1": dyn }
    retries: 3
  menu:
    prompt: prompt:hold
    options: { "9": seq }
    collect: { variable: dest, min_digits: 3, max_digits: 12, terminator: "#", timeout: 2s }
    next: dyn
    retries: 1
    on_failure: "user:bob"
numbers:
  "+34910000001": { extension: seq, distinctive_ring: ring2, cnam_prefix: "MAIN ", rules: [ { prefix: "3460*", weight: 1, action: cnam-prefix, cnam_prefix: "MOBILE " } ] }
  "+34910000002": { extension: rota }
  "+34910000003": { extension: ring }
  "+34910000004": { extension: busy }
  "+34910000005": { extension: quiet }
  "+34910000006": { extension: hidden }
  "+34910000007": { extension: svc }
  "+34910000008": { extension: called }
  "+34910000009": { extension: chain }
  "+34910000010": { extension: seq, rules: [ { prefix: "*", weight: 1, action: reject-busy, reputation: high } ] }
  "+34910000011": { extension: seq2 }
  "+12125550111": { extension: seq2 }
  "+34910000012": { extension: silent }
  "+34910000013": { extension: ringp }
  "+34910000014": { extension: closed }
  "+34910000015": { extension: ann }
  "+34910000016": { extension: xfer }
  "+34910000017": { extension: rec }
  "+34910000018": { extension: recm }
  "+34910000020": { extension: menu }
  "+34910000021": { extension: vm }
  "+34910000022": { extension: q }
  "+34910000023": { extension: conf }
  "+34910000024": { extension: vmb }
  "+34910000025": { extension: lot }
  "+34910000026": { extension: fax1 }
  "+34910000027": { extension: wait }
  "+34910000019": { extension: seq, rules: [ { prefix: "*", weight: 1, action: voice-captcha, reputation: medium } ] }
`

type world struct {
	t       *testing.T
	h       *harness
	carrier *testphone.Phone
	pstn    *testphone.Phone
}

func newWorld(t *testing.T, opts ...harnessOptions) *world {
	t.Helper()
	pstn := newPhone(t, testphone.Config{Name: "pstn", User: "pstn", IP: pstnIP})
	h := startServer(t, fmt.Sprintf(worldDoc, pstn.Addr(), builtinDir(t)), opts...)
	carrier := newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: carrierIP})
	return &world{t: t, h: h, carrier: carrier, pstn: pstn}
}

func builtinDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../prompt/builtin")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// heardPrompt reports whether audio contains a built-in prompt.
func heardPrompt(t *testing.T, heard []int16, name string) float64 {
	t.Helper()
	p, ok := prompt.Builtin(name)
	if !ok {
		t.Fatalf("no built-in prompt %q", name)
	}
	return prompt.Correlate(heard, p)
}

func newPhone(t *testing.T, cfg testphone.Config) *testphone.Phone {
	t.Helper()
	p, err := testphone.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// user starts a phone for a user and registers it.
func (w *world) user(name, password string, b testphone.Behavior) *testphone.Phone {
	w.t.Helper()
	p := newPhone(w.t, testphone.Config{Name: name, User: name, Password: password, Domain: "acme.test", Registrar: w.h.addr})
	p.SetBehavior(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code, err := p.Register(ctx, time.Hour); err != nil || code != 200 {
		w.t.Fatalf("register %s: %d %v", name, code, err)
	}
	return p
}

// call places a call from the carrier to number, as caller C with a name.
func (w *world) call(number, caller, name string, opts ...testphone.DialOptions) (*testphone.Call, error) {
	w.t.Helper()
	var o testphone.DialOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.FromUser, o.FromDisplay = caller, name
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return w.carrier.Dial(ctx, "sip:"+number+"@"+w.h.addr, o)
}

func hangup(t *testing.T, c *testphone.Call) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil {
		t.Fatalf("hangup: %v", err)
	}
}

func waitEnded(t *testing.T, c *testphone.Call, within time.Duration) {
	t.Helper()
	select {
	case <-c.Ended():
	case <-time.After(within):
		t.Fatalf("call did not end within %s", within)
	}
}

// incoming returns the next call the phone received.
func incoming(t *testing.T, p *testphone.Phone) *testphone.Call {
	t.Helper()
	select {
	case c := <-p.Incoming():
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no incoming call within 5s")
		return nil
	}
}

func lastRecord(t *testing.T, h *harness, n int) store.CallRecord {
	t.Helper()
	return h.waitCalls("acme", n)[0]
}

func TestSequentialGroupBusyFirstThenMediaBothWays(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.Busy})
	bob := w.user("bob", "pb", testphone.Behavior{AnswerAfter: 200 * time.Millisecond, Play: testphone.Tone(1000)})

	c, err := w.call("+34910000001", "+34600111222", "Jane Doe", testphone.DialOptions{Play: testphone.Tone(425)()})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatalf("caller does not hear the callee's 1000 Hz: %v", err)
	}
	bc := incoming(t, bob)
	if err := bc.WaitForTone(ctx, 425, 200*time.Millisecond); err != nil {
		t.Fatalf("callee does not hear the caller's 425 Hz: %v", err)
	}
	if c.HeardTone(425, 200*time.Millisecond) || bc.HeardTone(1000, 200*time.Millisecond) {
		t.Error("a side hears its own tone: media is looped, not relayed")
	}
	ac := incoming(t, alice)
	if ac.Status() != 486 {
		t.Errorf("alice answered %d, want 486", ac.Status())
	}
	// What the callee's phone was shown: caller ID, name, distinctive ring.
	inv := bc.Invite()
	if from := inv.From(); from.Address.User != "+34600111222" || from.DisplayName != "MAIN MOBILE Jane Doe" {
		t.Errorf("callee saw From %q <%s>", from.DisplayName, from.Address.User)
	}
	if got := bc.Header("Alert-Info"); got != "<http://localhost>;info=ring2" {
		t.Errorf("Alert-Info = %q", got)
	}
	hangup(t, c)
	waitEnded(t, bc, 5*time.Second)
	if bc.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("callee end reason %s", bc.EndReason())
	}
	rec := lastRecord(t, w.h, 1)
	if rec.Outcome != "routed" || rec.AnsweredBy != "user:bob" || rec.HangupCause != "caller_bye" || rec.CallerName != "MAIN MOBILE Jane Doe" {
		t.Errorf("record: %+v", rec)
	}
	if !slices.ContainsFunc(rec.Trace, func(s string) bool { return strings.Contains(s, "[user:alice]: busy") }) {
		t.Errorf("trace does not show alice busy: %q", rec.Trace)
	}
	if rec.Answer.IsZero() || rec.Duration <= 0 {
		t.Errorf("record lacks answer time or duration: %+v", rec)
	}
}

func TestRotatingGroupStartsOneFurtherEachCall(t *testing.T) {
	w := newWorld(t)
	phones := map[string]*testphone.Phone{}
	for _, u := range []struct{ name, pw string }{{"alice", "pa"}, {"bob", "pb"}, {"carol", "pc"}} {
		phones[u.name] = w.user(u.name, u.pw, testphone.Behavior{})
	}
	var got []string
	for i := range 4 {
		c, err := w.call("+34910000002", "+34911222333", "")
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		hangup(t, c)
		got = append(got, lastRecord(t, w.h, i+1).AnsweredBy)
	}
	want := []string{"user:alice", "user:bob", "user:carol", "user:alice"}
	if !slices.Equal(got, want) {
		t.Fatalf("answered by %v, want %v", got, want)
	}
}

func TestMultiRingFirstAnswerWinsOthersCancelled(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	bob := w.user("bob", "pb", testphone.Behavior{AnswerAfter: 300 * time.Millisecond})
	carol := w.user("carol", "pc", testphone.Behavior{Mode: testphone.NeverAnswer})
	carol2 := w.user("carol", "pc", testphone.Behavior{Mode: testphone.NeverAnswer}) // a second device

	c, err := w.call("+34910000003", "+34911222333", "")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	for _, p := range []*testphone.Phone{alice, carol, carol2} {
		ic := incoming(t, p)
		waitEnded(t, ic, 5*time.Second)
		if ic.EndReason() != testphone.EndCanceled {
			t.Errorf("%s: end reason %s, want canceled", p.Config().Name, ic.EndReason())
		}
	}
	bc := incoming(t, bob)
	hangup(t, bc)
	waitEnded(t, c, 5*time.Second)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "user:bob" || rec.HangupCause != "callee_bye" {
		t.Errorf("record: %+v", rec)
	}
}

func TestCallerCancelDuringMultiRing(t *testing.T) {
	w := newWorld(t)
	var phones []*testphone.Phone
	for _, u := range []struct{ name, pw string }{{"alice", "pa"}, {"bob", "pb"}, {"carol", "pc"}} {
		phones = append(phones, w.user(u.name, u.pw, testphone.Behavior{Mode: testphone.NeverAnswer}))
	}
	c, err := w.carrier.StartCall(context.Background(), "sip:+34910000003@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
	if err != nil {
		t.Fatal(err)
	}
	var rung []*testphone.Call
	for _, p := range phones {
		rung = append(rung, incoming(t, p))
	}
	select {
	case <-c.Ringing():
	case <-time.After(5 * time.Second):
		t.Fatal("caller heard no ringing")
	}
	hangup(t, c) // CANCEL
	for _, ic := range rung {
		waitEnded(t, ic, 5*time.Second)
		if ic.EndReason() != testphone.EndCanceled {
			t.Errorf("member end reason %s", ic.EndReason())
		}
	}
	rec := lastRecord(t, w.h, 1)
	if rec.HangupCause != "caller_cancel" || rec.AnsweredBy != "" {
		t.Errorf("record: %+v", rec)
	}
}

func TestOnFailureTones(t *testing.T) {
	w := newWorld(t, harnessOptions{ringTimeout: time.Second})
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.Busy})

	// The last failure was busy: the caller gets 486.
	_, err := w.call("+34910000004", "+34911222333", "")
	if code := testphone.StatusCode(err); code != 486 {
		t.Fatalf("busy member: got %d (%v), want 486", code, err)
	}
	// No answer: ringing goes on, then 480 when the ring timeout ends.
	alice.SetBehavior(testphone.Behavior{Mode: testphone.NeverAnswer})
	start := time.Now()
	c, err := w.call("+34910000005", "+34911222333", "")
	if code := testphone.StatusCode(err); code != 480 {
		t.Fatalf("no answer: got %d (%v), want 480", code, err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("480 after %s: ringback should go on for the ring timeout", took)
	}
	if !slices.Contains(c.Provisionals(), 180) {
		t.Errorf("caller got provisionals %v, want 180", c.Provisionals())
	}
	recs := w.h.waitCalls("acme", 2)
	if recs[0].HangupCause != "no_answer" || recs[1].HangupCause != "busy" {
		t.Errorf("hangup causes %q, %q", recs[0].HangupCause, recs[1].HangupCause)
	}
}

func TestOnFailureContinuesToTarget(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	w.pstn.SetBehavior(testphone.Behavior{})
	c, err := w.call("+34910000009", "+34911222333", "")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	pc := incoming(t, w.pstn)
	if got := pc.Invite().Recipient.User; got != "+34600000003" {
		t.Errorf("trunk INVITE to %q", got)
	}
	hangup(t, c)
	if rec := lastRecord(t, w.h, 1); rec.AnsweredBy != "+34600000003" {
		t.Errorf("record: %+v", rec)
	}
}

func TestBlocklistedMemberIsSkipped(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	w.user("bob", "pb", testphone.Behavior{})
	c, err := w.call("+34910000001", "+19005551234", "")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	hangup(t, c)
	if rec := lastRecord(t, w.h, 1); rec.AnsweredBy != "user:bob" {
		t.Errorf("answered by %q, want user:bob (alice blocks +1900*)", rec.AnsweredBy)
	}
	select {
	case <-alice.Incoming():
		t.Error("alice's phone rang although her blocklist matches the caller")
	default:
	}
}

func TestCallerIDModes(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{})
	tests := []struct {
		number, wantUser, privacy string
	}{
		{"+34910000006", "anonymous", "id"},
		{"+34910000007", "+34910000099", ""},
		{"+34910000008", "+34910000008", ""},
	}
	for i, tt := range tests {
		c, err := w.call(tt.number, "+34911222333", "Caller")
		if err != nil {
			t.Fatalf("%s: %v", tt.number, err)
		}
		bc := incoming(t, bob)
		if got := bc.Invite().From().Address.User; got != tt.wantUser {
			t.Errorf("%s: From user %q, want %q", tt.number, got, tt.wantUser)
		}
		if got := bc.Header("Privacy"); got != tt.privacy {
			t.Errorf("%s: Privacy %q, want %q", tt.number, got, tt.privacy)
		}
		hangup(t, c)
		w.h.waitCalls("acme", i+1)
	}
}

func TestReputationRuleAndReject(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{})
	_, err := w.call("+34910000010", "+34911222333", "", testphone.DialOptions{Headers: map[string]string{"X-Spam-Score": "95"}})
	if code := testphone.StatusCode(err); code != 486 {
		t.Fatalf("high-reputation caller: got %d (%v), want 486", code, err)
	}
	c, err := w.call("+34910000010", "+34911222333", "", testphone.DialOptions{Headers: map[string]string{"X-Spam-Score": "10"}})
	if err != nil {
		t.Fatalf("low score caller: %v", err)
	}
	hangup(t, c)
	recs := w.h.waitCalls("acme", 2)
	if recs[1].Outcome != "rejected" || recs[0].Outcome != "routed" {
		t.Errorf("outcomes %q, %q", recs[1].Outcome, recs[0].Outcome)
	}
}

func TestUnknownNumber(t *testing.T) {
	w := newWorld(t)
	_, err := w.call("+34919999999", "+34911222333", "")
	if code := testphone.StatusCode(err); code != 404 {
		t.Fatalf("got %d (%v), want 404", code, err)
	}
	if rec := lastRecord(t, w.h, 1); rec.Outcome != "not_found" {
		t.Errorf("record: %+v", rec)
	}
}

func TestUserCalls(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	bob := w.user("bob", "pb", testphone.Behavior{})
	w.pstn.SetBehavior(testphone.Behavior{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// An extension number.
	c, err := alice.Dial(ctx, "sip:102@"+w.h.addr, testphone.DialOptions{})
	if err != nil {
		t.Fatalf("alice dials 102: %v", err)
	}
	if bc := incoming(t, bob); bc.Invite().From().Address.User != "101" {
		t.Errorf("bob sees caller %q, want alice's extension 101", bc.Invite().From().Address.User)
	}
	hangup(t, c)
	// An external number in allowed_destinations, presented as the service number.
	c, err = alice.Dial(ctx, "sip:+34600000003@"+w.h.addr, testphone.DialOptions{})
	if err != nil {
		t.Fatalf("alice dials +34600000003: %v", err)
	}
	pc := incoming(t, w.pstn)
	if got := pc.Invite().From().Address.User; got != "+34910000099" {
		t.Errorf("external call presented as %q", got)
	}
	hangup(t, c)
	// Toll fraud guard: not in allowed_destinations.
	if _, err := alice.Dial(ctx, "sip:+19005550100@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 403 {
		t.Errorf("premium number: %v, want 403", err)
	}
	// Wrong password: challenged again, never connected.
	mallory := newPhone(t, testphone.Config{Name: "mallory", User: "alice", Password: "wrong", Domain: "acme.test"})
	if _, err := mallory.Dial(ctx, "sip:102@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 407 {
		t.Errorf("wrong password: %v, want 407", err)
	}
	// A domain we do not serve, from an address that is no trunk: 403.
	stranger := newPhone(t, testphone.Config{Name: "stranger", User: "x", Domain: "elsewhere.test"})
	if _, err := stranger.Dial(ctx, "sip:102@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 403 {
		t.Errorf("stranger: %v, want 403", err)
	}
}

func TestCalleeHangupEndsCaller(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	hangup(t, incoming(t, alice))
	waitEnded(t, c, 5*time.Second)
	if c.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("caller end reason %s", c.EndReason())
	}
	if rec := lastRecord(t, w.h, 1); rec.HangupCause != "callee_bye" {
		t.Errorf("record: %+v", rec)
	}
}

func TestConfigChangeTakesEffectWithoutRestart(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{})
	doc := fmt.Sprintf(worldDoc, w.pstn.Addr(), builtinDir(t))
	doc = strings.Replace(doc, `"+34910000004": { extension: busy }`,
		`"+34910000004": { extension: busy, rules: [ { prefix: "*", weight: 1, action: reject-503 } ] }`, 1)
	applyYAML(t, w.h.st, doc)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := w.call("+34910000004", "+34911222333", "")
		if testphone.StatusCode(err) == 503 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new rule is not in force 5s after apply: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestGracefulShutdown(t *testing.T) {
	w := newWorld(t, harnessOptions{drain: 500 * time.Millisecond})
	alice := w.user("alice", "pa", testphone.Behavior{})
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	w.h.cancel() // SIGTERM
	time.Sleep(100 * time.Millisecond)
	// New calls are refused while the call in progress drains.
	if _, err := w.call("+34910000001", "+34911222333", ""); testphone.StatusCode(err) != 503 {
		t.Errorf("call during drain: %v, want 503", err)
	}
	waitEnded(t, c, 5*time.Second)
	waitEnded(t, ac, 5*time.Second)
	select {
	case <-w.h.done:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
	recs := w.h.calls("acme")
	if len(recs) == 0 || recs[len(recs)-1].HangupCause != "shutdown" {
		t.Fatalf("records after shutdown: %+v", recs)
	}
}

func TestTranscodingBetweenLegs(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Codecs: []media.Codec{media.PCMA}, Play: testphone.Tone(1000)})
	c, err := w.call("+34910000001", "+34911222333", "", testphone.DialOptions{Codecs: []media.Codec{media.PCMU}, Play: testphone.Tone(425)()})
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Errorf("µ-law caller does not hear the A-law callee: %v", err)
	}
	if err := ac.WaitForTone(ctx, 425, 200*time.Millisecond); err != nil {
		t.Errorf("A-law callee does not hear the µ-law caller: %v", err)
	}
	if !strings.Contains(string(c.Response().Body()), "PCMU/8000") {
		t.Errorf("caller's answer is not PCMU:\n%s", c.Response().Body())
	}
	hangup(t, c)
}

// TestRingbackAcrossAttempts: when the first member does not answer, the
// caller gets 183 with Switchboard's ringback (425 Hz, or the US 440+480 Hz
// on a +1 number) while the next member rings, so the group sounds like one
// continuous ring.
func TestRingbackAcrossAttempts(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	w.user("bob", "pb", testphone.Behavior{AnswerAfter: 800 * time.Millisecond}) // within seq2's 1s timeout
	for _, tt := range []struct {
		number string
		freqs  []float64
	}{{"+34910000011", []float64{425}}, {"+12125550111", []float64{440, 480}}} {
		c, err := w.carrier.StartCall(context.Background(), "sip:"+tt.number+"@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		for _, f := range tt.freqs {
			if err := c.WaitForTone(ctx, f, 200*time.Millisecond); err != nil {
				t.Errorf("%s: no %v Hz ringback before the answer: %v", tt.number, f, err)
			}
		}
		cancel()
		if c.IsAnswered() {
			t.Errorf("%s: tone heard only after the answer", tt.number)
		}
		if !c.EarlyMedia() || !slices.Contains(c.Provisionals(), 183) {
			t.Errorf("%s: provisionals %v, early media %v", tt.number, c.Provisionals(), c.EarlyMedia())
		}
		select {
		case <-c.Answered():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not answered", tt.number)
		}
		hangup(t, c)
	}
}

func TestRingingNoneIsSilentEarlyMedia(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{AnswerAfter: time.Second})
	c, err := w.call("+34910000012", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.EarlyMedia() {
		t.Errorf("ringing: none should answer 183 with SDP, got %v", c.Provisionals())
	}
	hangup(t, c)
}

func TestRingingPrompt(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{AnswerAfter: 3 * time.Second})
	c, err := w.carrier.StartCall(context.Background(), "sip:+34910000013@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if c.IsAnswered() || !c.EarlyMedia() {
		t.Fatalf("want early media before the answer: answered %v, provisionals %v", c.IsAnswered(), c.Provisionals())
	}
	if score := heardPrompt(t, c.Heard(2500*time.Millisecond), "please-hold"); score < 0.7 {
		t.Errorf("caller did not hear the ringing prompt (correlation %.2f)", score)
	}
	select {
	case <-c.Answered():
	case <-time.After(5 * time.Second):
		t.Fatal("not answered")
	}
	hangup(t, c)
}

func TestOnFailurePrompt(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000014", "+34911222333", "")
	if err != nil {
		t.Fatalf("on_failure prompt answers the call: %v", err)
	}
	waitEnded(t, c, 10*time.Second)
	if c.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("end reason %s, want remote-hangup after the prompt", c.EndReason())
	}
	if score := heardPrompt(t, c.Heard(5*time.Second), "goodbye"); score < 0.7 {
		t.Errorf("caller did not hear the on_failure prompt (correlation %.2f)", score)
	}
	if rec := lastRecord(t, w.h, 1); rec.HangupCause != "prompt_played" {
		t.Errorf("record: %+v", rec)
	}
}

func TestAnnouncementToCallee(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{})
	start := time.Now()
	c, err := w.call("+34910000015", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := prompt.Builtin("press-one")
	if took, plays := time.Since(start), time.Duration(len(p))*time.Second/8000; took < plays {
		t.Errorf("caller connected after %s, before the %s announcement ended", took, plays)
	}
	bc := incoming(t, bob)
	if score := heardPrompt(t, bc.Heard(5*time.Second), "press-one"); score < 0.7 {
		t.Errorf("callee did not hear the announcement (correlation %.2f)", score)
	}
	if score := heardPrompt(t, c.Heard(5*time.Second), "press-one"); score > 0.5 {
		t.Errorf("the caller heard the announcement too (correlation %.2f)", score)
	}
	hangup(t, c)
}

// TestTransfer: the callee of an extension with transfer: true sends the
// caller to another extension, by dialling 0 and its two-digit code or by a
// SIP REFER; without transfer the digits do nothing.
func TestTransfer(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Play: testphone.Tone(1000)})
	bob := w.user("bob", "pb", testphone.Behavior{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, how := range []string{"dtmf", "refer"} {
		c, err := w.call("+34910000016", "+34911222333", "")
		if err != nil {
			t.Fatal(err)
		}
		bc := incoming(t, bob)
		if how == "dtmf" { // an unknown code: "not available" to the callee, the call stays
			if err := bc.SendDTMF(ctx, "099"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2500 * time.Millisecond)
			if score := heardPrompt(t, bc.Heard(2500*time.Millisecond), "not-available"); score < 0.7 {
				t.Errorf("unknown code: the callee did not hear 'not available' (%.2f)", score)
			}
			if bc.EndReason() != testphone.EndNone {
				t.Fatalf("unknown code ended the call: %s", bc.EndReason())
			}
		}
		switch how {
		case "dtmf":
			// The transfer may hang bob up while his last digit's end
			// packets are still going out.
			if err := bc.SendDTMF(ctx, "021"); err != nil && bc.EndReason() == testphone.EndNone {
				t.Fatal(err)
			}
		case "refer":
			if code, err := bc.Refer(ctx, "sip:21@"+w.h.addr); err != nil || code != 202 {
				t.Fatalf("REFER: %d %v", code, err)
			}
		}
		waitEnded(t, bc, 5*time.Second)
		ac := incoming(t, alice)
		if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
			t.Errorf("%s: the caller does not hear alice after the transfer: %v", how, err)
		}
		if got := c.DTMFReceived(); got != "" {
			t.Errorf("%s: the callee's transfer keys reached the caller: %q", how, got)
		}
		if c.IsAnswered() && c.EndReason() != testphone.EndNone {
			t.Errorf("%s: the caller's call ended: %s", how, c.EndReason())
		}
		hangup(t, c)
		waitEnded(t, ac, 5*time.Second)
		rec := lastRecord(t, w.h, i+1)
		if rec.AnsweredBy != "user:alice" || !slices.ContainsFunc(rec.Trace, func(s string) bool { return strings.Contains(s, "user:bob transfers the caller to seq") }) {
			t.Errorf("%s: record answered_by=%q trace=%q", how, rec.AnsweredBy, rec.Trace)
		}
	}
	// Without transfer: true, 0 + code is just DTMF passed to the caller.
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	if err := ac.SendDTMF(ctx, "022"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDTMF(ctx, "022"); err != nil {
		t.Errorf("DTMF not relayed to the caller: %v", err)
	}
	if ac.EndReason() != testphone.EndNone {
		t.Errorf("the callee was hung up without transfer: true (%s)", ac.EndReason())
	}
	hangup(t, c)
}

// TestRecording: recording: always records from the bridge, manual starts
// when the callee dials # 7 and plays the notice to both sides; the file
// is stereo with the caller's audio on the left and the callee's on the
// right.
func TestRecording(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1000)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, number := range []string{"+34910000017", "+34910000018"} {
		c, err := w.call(number, "+34911222333", "", testphone.DialOptions{Play: testphone.Tone(425)()})
		if err != nil {
			t.Fatal(err)
		}
		bc := incoming(t, bob)
		if number == "+34910000018" {
			time.Sleep(300 * time.Millisecond) // talk before recording starts
			if err := bc.SendDTMF(ctx, "#7"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second) // the notice plays to both sides
			for who, call := range map[string]*testphone.Call{"caller": c, "callee": bc} {
				if score := heardPrompt(t, call.Heard(3*time.Second), "press-one"); score < 0.7 {
					t.Errorf("the %s did not hear the recording notice (correlation %.2f)", who, score)
				}
			}
		}
		time.Sleep(time.Second)
		hangup(t, c)
		rec := lastRecord(t, w.h, i+1)
		if rec.Recording == "" {
			t.Fatalf("%s: no recording in the record: %+v", number, rec)
		}
		left, right, err := media.ReadStereoWAV(rec.Recording)
		if err != nil {
			t.Fatalf("%s: %v", number, err)
		}
		tail := func(s []int16) []int16 { return s[max(0, len(s)-4000):] } // the last 0.5 s: after any notice
		if f, ok := media.DominantFrequency(tail(left), []float64{425, 1000}); !ok || f != 425 {
			t.Errorf("%s: left channel %v %v, want the caller's 425 Hz", number, f, ok)
		}
		if f, ok := media.DominantFrequency(tail(right), []float64{425, 1000}); !ok || f != 1000 {
			t.Errorf("%s: right channel %v %v, want the callee's 1000 Hz", number, f, ok)
		}
		if secs := float64(len(left)) / 8000; secs < 0.8 {
			t.Errorf("%s: recording of %.1fs", number, secs)
		}
		if fi, err := os.Stat(rec.Recording); err != nil || rec.RecordingBytes != fi.Size() ||
			math.Abs(rec.RecordingLength.Seconds()-float64(len(left))/8000) > 0.05 {
			t.Errorf("%s: record says %s / %d bytes for the file (%v)", number, rec.RecordingLength, rec.RecordingBytes, err)
		}
	}
}

// TestVoiceCaptcha: a caller whose reputation reaches the rule's threshold
// is answered and asked for a 3-digit code; typing it continues the rules
// (the call reaches the group), failing twice plays goodbye and hangs up.
func TestVoiceCaptcha(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Play: testphone.Tone(1000)})
	spam := testphone.DialOptions{Headers: map[string]string{"X-Spam-Score": "70"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := w.call("+34910000019", "+34911222333", "", spam)
	if err != nil {
		t.Fatalf("captcha answers the call: %v", err)
	}
	time.Sleep(4 * time.Second) // "please enter the code", then the three digits
	if score := heardPrompt(t, c.Heard(4*time.Second), "enter-code"); score < 0.7 {
		t.Errorf("no 'please enter the code' prompt (correlation %.2f)", score)
	}
	if err := c.SendDTMF(ctx, "456"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatalf("after the right code the call does not reach alice: %v", err)
	}
	hangup(t, c)
	rec := lastRecord(t, w.h, 1)
	if rec.Outcome != "routed" || rec.AnsweredBy != "user:alice" || !sippTraceHas(rec, "captcha passed: true") {
		t.Errorf("passed captcha record: %+v", rec)
	}

	c, err = w.call("+34910000019", "+34911222333", "", spam)
	if err != nil {
		t.Fatal(err)
	}
	for _, wait := range []time.Duration{4 * time.Second, 5 * time.Second} {
		time.Sleep(wait) // the code read out (again, after "the code was not correct")
		if err := c.SendDTMF(ctx, "111"); err != nil {
			t.Fatal(err)
		}
	}
	waitEnded(t, c, 15*time.Second)
	if c.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("failed captcha: end reason %s", c.EndReason())
	}
	if score := heardPrompt(t, c.Heard(3*time.Second), "goodbye"); score < 0.7 {
		t.Errorf("no goodbye after a failed captcha (correlation %.2f)", score)
	}
	if rec := lastRecord(t, w.h, 2); rec.Outcome != "captcha_failed" {
		t.Errorf("failed captcha record: %+v", rec)
	}
}

// TestIVR: a menu option, keypad entry into a call variable that a
// programmable destination (${dest}) resolves, and an entry that resolves to
// nothing, which runs the extension's on_failure with the reason traced.
func TestIVR(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Play: testphone.Tone(1000)})
	w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1500)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, tt := range []struct{ keys, want string }{
		{"9", "user:alice"},  // option 9: the seq group, alice first
		{"102#", "user:bob"}, // ${dest} = 102, bob's extension
		{"555#", "prompt"},   // nothing has that code: on_failure prompt:bye
	} {
		c, err := w.call("+34910000020", "+34911222333", "")
		if err != nil {
			t.Fatalf("%s: the IVR answers: %v", tt.keys, err)
		}
		time.Sleep(500 * time.Millisecond)
		if score := heardPrompt(t, c.Heard(500*time.Millisecond), "please-hold"); score < 0.5 {
			t.Logf("%s: menu prompt correlation %.2f", tt.keys, score)
		}
		if err := c.SendDTMF(ctx, tt.keys); err != nil {
			t.Fatal(err)
		}
		switch tt.want {
		case "prompt":
			select {
			case <-c.Ended():
			case <-time.After(10 * time.Second):
				hangup(t, c)
				t.Fatalf("%s: call did not end; trace %q", tt.keys, lastRecord(t, w.h, i+1).Trace)
			}
			if score := heardPrompt(t, c.Heard(3*time.Second), "goodbye"); score < 0.7 {
				t.Errorf("%s: on_failure prompt not heard (%.2f)", tt.keys, score)
			}
		default:
			freq := map[string]float64{"user:alice": 1000, "user:bob": 1500}[tt.want]
			if err := c.WaitForTone(ctx, freq, 200*time.Millisecond); err != nil {
				t.Errorf("%s: not connected to %s: %v", tt.keys, tt.want, err)
			}
			hangup(t, c)
		}
		rec := lastRecord(t, w.h, i+1)
		if tt.want != "prompt" && rec.AnsweredBy != tt.want {
			t.Errorf("%s: answered by %q, want %s; trace %q", tt.keys, rec.AnsweredBy, tt.want, rec.Trace)
		}
		if tt.want == "prompt" && !sippTraceHas(rec, `${dest} = "555" is not an extension, code or E.164 number`) {
			t.Errorf("%s: trace lacks the reason: %q", tt.keys, rec.Trace)
		}
	}
}

// TestVoicemail: on_failure voicemail:USER answers, plays the greeting and
// a beep, and records what the caller says into a file for the user.
func TestVoicemail(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000021", "+34911222333", "")
	if err != nil {
		t.Fatalf("voicemail answers: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 100*time.Millisecond); err != nil {
		t.Fatalf("no beep: %v", err)
	}
	if score := heardPrompt(t, c.Heard(4*time.Second), "leave-message"); score < 0.7 {
		t.Errorf("no greeting (correlation %.2f)", score)
	}
	time.Sleep(600 * time.Millisecond) // the beep ends
	c.Play(media.Sine(425))
	time.Sleep(1500 * time.Millisecond)
	// # ends the message; the hang-up may overtake the digit's end packets.
	if err := c.SendDTMF(ctx, "#"); err != nil && c.EndReason() == testphone.EndNone {
		t.Fatal(err)
	}
	waitEnded(t, c, 5*time.Second)
	rec := lastRecord(t, w.h, 1)
	if rec.Voicemail == "" || rec.HangupCause != "voicemail_left" {
		t.Fatalf("record: %+v", rec)
	}
	left, _, err := media.ReadStereoWAV(rec.Voicemail)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := media.DominantFrequency(left[max(0, len(left)-4000):], []float64{425, 1000}); !ok || f != 425 {
		t.Errorf("voicemail holds %v %v, want the caller's 425 Hz", f, ok)
	}
	if !strings.Contains(rec.Voicemail, "/voicemail/alice/") {
		t.Errorf("voicemail stored at %s, want it under alice", rec.Voicemail)
	}
}

// TestQueue: when every member has failed the caller is answered, hears the
// queue message once and then ringing while the members are retried; a
// member who answers within max_wait gets the call, and a caller who hangs
// up in the queue is recorded as abandoned.
func TestQueue(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000022", "+34911222333", "")
	if err != nil {
		t.Fatalf("the queue answers: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if score := heardPrompt(t, c.Heard(2500*time.Millisecond), "please-hold"); score < 0.7 {
		t.Errorf("no queue message (correlation %.2f)", score)
	}
	alice.SetBehavior(testphone.Behavior{Play: testphone.Tone(1000)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatalf("a retried member's answer does not reach the caller: %v", err)
	}
	hangup(t, c)
	if rec := lastRecord(t, w.h, 1); rec.AnsweredBy != "user:alice" || !sippTraceHas(rec, "queue: answered after") {
		t.Errorf("queued call: %+v", rec)
	}

	alice.SetBehavior(testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err = w.call("+34910000022", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	hangup(t, c)
	if rec := lastRecord(t, w.h, 2); rec.HangupCause != "abandoned" || !sippTraceHas(rec, "queue: the caller hung up after waiting") {
		t.Errorf("abandoned call: cause %q trace %q", rec.HangupCause, rec.Trace)
	}
}

// TestConfirm: with confirm: true a callee who does not press 1 within 5 s
// of the announcement counts as no answer (a mobile's voicemail picking up)
// and the group moves on; one who presses 1 is connected.
func TestConfirm(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	bob := w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1000)})
	c, err := w.carrier.StartCall(context.Background(), "sip:+34910000023@"+w.h.addr, testphone.DialOptions{FromUser: "+34911222333"})
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	waitEnded(t, ac, 10*time.Second) // no 1 pressed: hung up
	if c.IsAnswered() {
		t.Fatal("the caller was connected to a callee who did not confirm")
	}
	bc := incoming(t, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	time.Sleep(1500 * time.Millisecond) // the announcement
	if err := bc.SendDTMF(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Answered():
	case <-time.After(5 * time.Second):
		t.Fatal("the caller was not connected after bob pressed 1")
	}
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Errorf("caller does not hear bob: %v", err)
	}
	hangup(t, c)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "user:bob" || !sippTraceHas(rec, "user:alice did not press 1") || !sippTraceHas(rec, "user:bob pressed 1") {
		t.Errorf("record: answered_by %q trace %q", rec.AnsweredBy, rec.Trace)
	}
}

// TestVoicemailOwnGreeting: a user's own greeting (the prompt
// voicemail-USER) replaces the built-in one.
func TestVoicemailOwnGreeting(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000024", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 100*time.Millisecond); err != nil {
		t.Fatalf("no beep: %v", err)
	}
	heard := c.Heard(4 * time.Second)
	if own, builtin := heardPrompt(t, heard, "not-available"), heardPrompt(t, heard, "leave-message"); own < 0.7 || builtin > 0.5 {
		t.Errorf("greeting: own %.2f, built-in %.2f", own, builtin)
	}
	hangup(t, c)
}

// TestSIPInfoDTMF: key presses sent as SIP INFO application/dtmf-relay work
// like RFC 4733 events: they drive an IVR, a callee's transfer code, and
// reach the other leg as telephone-events; other bodies are refused.
func TestSIPInfoDTMF(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Play: testphone.Tone(1000)})
	bob := w.user("bob", "pb", testphone.Behavior{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The caller chooses option 9 of the IVR by INFO.
	c, err := w.call("+34910000020", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendInfoDTMF(ctx, "9"); err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Errorf("IVR option by INFO: not connected to alice: %v", err)
	}
	// In the bridge, alice's INFO digits reach the caller as RFC 4733.
	if err := ac.SendInfoDTMF(ctx, "5#"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDTMF(ctx, "5#"); err != nil {
		t.Errorf("INFO digits not passed to the caller: %v", err)
	}
	for _, bad := range []struct {
		ct, body string
		code     int
	}{
		{"application/dtmf-relay", "Signal=X\r\n", 400},
		{"application/vnd.example", "hello", 415},
	} {
		if code, _ := ac.SendInfo(ctx, bad.ct, []byte(bad.body)); code != bad.code {
			t.Errorf("INFO %s %q: %d, want %d", bad.ct, bad.body, code, bad.code)
		}
	}
	if ac.EndReason() != testphone.EndNone || c.EndReason() != testphone.EndNone {
		t.Errorf("bad INFO ended the call: %s / %s", ac.EndReason(), c.EndReason())
	}
	hangup(t, c)
	waitEnded(t, ac, 5*time.Second)

	// The callee transfers with 0 + code sent by INFO.
	c, err = w.call("+34910000016", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	bc := incoming(t, bob)
	if err := bc.SendInfoDTMF(ctx, "021"); err != nil && bc.EndReason() == testphone.EndNone {
		t.Fatal(err)
	}
	waitEnded(t, bc, 5*time.Second)
	ac = incoming(t, alice)
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Errorf("transfer by INFO: the caller does not hear alice: %v", err)
	}
	hangup(t, c)
	waitEnded(t, ac, 5*time.Second)
	rec := lastRecord(t, w.h, 2)
	if !sippTraceHas(rec, "user:bob transfers the caller to seq (dialled 0 21)") {
		t.Errorf("trace %q", rec.Trace)
	}
}

// TestPark: calls sent to a park lot wait in the lowest free orbit hearing
// "parked in orbit 7 0 1" and music; a user dialling the orbit is bridged
// to the call; an empty orbit is 404; a full lot and the lot's timeout
// send the call to return_to.
func TestPark(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{})
	carol := w.user("carol", "pc", testphone.Behavior{Play: testphone.Tone(1200)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, err := w.call("+34910000025", "+34911222333", "", testphone.DialOptions{Play: testphone.Tone(700)()})
	if err != nil {
		t.Fatal(err)
	}
	second, err := w.call("+34910000025", "+34911222444", "", testphone.DialOptions{Play: testphone.Tone(900)()})
	if err != nil {
		t.Fatal(err)
	}
	// The lot is full: a third call goes straight to return_to.
	third, err := w.call("+34910000025", "+34911222555", "")
	if err != nil {
		t.Fatal(err)
	}
	cc := incoming(t, carol)
	if err := third.WaitForTone(ctx, 1200, 200*time.Millisecond); err != nil {
		t.Errorf("full lot: not connected to return_to: %v", err)
	}
	hangup(t, third)
	waitEnded(t, cc, 5*time.Second)

	if err := second.WaitForTone(ctx, 523.25, 300*time.Millisecond); err != nil {
		t.Errorf("no hold music in orbit 702: %v", err)
	}
	if score := heardPrompt(t, second.Heard(5*time.Second), "parked"); score < 0.7 {
		t.Errorf("'you have been parked in orbit' not heard (%.2f)", score)
	}
	// bob picks up orbit 702: the second caller, both ways.
	pick, err := bob.Dial(ctx, "sip:702@"+w.h.addr, testphone.DialOptions{Play: testphone.Tone(1500)()})
	if err != nil {
		t.Fatalf("bob dials orbit 702: %v", err)
	}
	if err := pick.WaitForTone(ctx, 900, 200*time.Millisecond); err != nil {
		t.Errorf("bob does not hear the caller parked in 702: %v", err)
	}
	if err := second.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
		t.Errorf("the parked caller does not hear bob: %v", err)
	}
	hangup(t, second)
	waitEnded(t, pick, 5*time.Second)
	if _, err := bob.Dial(ctx, "sip:702@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 404 {
		t.Errorf("empty orbit: %v, want 404", err)
	}

	// Nobody picks up orbit 701 within 6 s: it goes to carol.
	cc = incoming(t, carol)
	if err := first.WaitForTone(ctx, 1200, 200*time.Millisecond); err != nil {
		t.Errorf("timeout: not connected to return_to: %v", err)
	}
	hangup(t, first)
	waitEnded(t, cc, 5*time.Second)

	recs := w.h.waitCalls("acme", 5)
	byCaller := map[string]store.CallRecord{}
	for _, r := range recs {
		byCaller[r.Caller] = r
	}
	if r := byCaller["+34911222444"]; r.AnsweredBy != "user:bob" || !sippTraceHas(r, "picked up from orbit 702 by user:bob") || !sippTraceHas(r, "parked in orbit 702 of lot") {
		t.Errorf("picked-up call: answered_by %q trace %q", r.AnsweredBy, r.Trace)
	}
	if r := byCaller["+34911222333"]; r.AnsweredBy != "user:carol" || !sippTraceHas(r, "orbit 701: nobody picked up within 6s") {
		t.Errorf("timed-out call: answered_by %q trace %q", r.AnsweredBy, r.Trace)
	}
	if r := byCaller["+34911222555"]; r.AnsweredBy != "user:carol" || !sippTraceHas(r, "every orbit (701-702) is taken") {
		t.Errorf("full lot: answered_by %q trace %q", r.AnsweredBy, r.Trace)
	}
}

// t38SDP is a T.38 offer or answer with its UDPTL stream at addr.
func t38SDP(addr netip.AddrPort) []byte {
	return fmt.Appendf(nil, "v=0\r\no=fax 1 2 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\n"+
		"m=image %[2]d udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n"+
		"a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxDatagram:400\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n",
		addr.Addr(), addr.Port())
}

// imageAddr is the UDPTL address of the m=image stream of an SDP.
func imageAddr(t *testing.T, sdp []byte) netip.AddrPort {
	t.Helper()
	var ip string
	var port int
	for _, line := range strings.Split(string(sdp), "\r\n") {
		if v, ok := strings.CutPrefix(line, "c=IN IP4 "); ok {
			ip = v
		}
		if v, ok := strings.CutPrefix(line, "m=image "); ok {
			fmt.Sscanf(v, "%d", &port)
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || port == 0 {
		t.Fatalf("no image stream in\n%s", sdp)
	}
	return netip.AddrPortFrom(a, uint16(port))
}

func udptlSocket(t *testing.T, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg from one UDPTL socket to addr until the other socket
// receives it (UDP may lose the first datagrams while the relay latches).
func exchange(t *testing.T, from *net.UDPConn, addr netip.AddrPort, into *net.UDPConn, msg string) {
	t.Helper()
	buf := make([]byte, 1500)
	for range 10 {
		if _, err := from.WriteToUDPAddrPort([]byte(msg), addr); err != nil {
			t.Fatal(err)
		}
		_ = into.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := into.ReadFromUDPAddrPort(buf)
		if err == nil {
			if string(buf[:n]) != msg {
				t.Fatalf("received %q, want %q", buf[:n], msg)
			}
			return
		}
	}
	t.Fatalf("%q never arrived", msg)
}

// TestFax: a call to a fax passes G.711 through untouched — the fax gets
// the caller's codec first, so nothing is transcoded, no ringback is
// played, DTMF is passed on — and the fax machine's T.38 re-INVITE is
// relayed end to end, with the UDPTL datagrams passed through both ways.
func TestFax(t *testing.T) {
	w := newWorld(t)
	callerT38 := udptlSocket(t, carrierIP)
	faxT38 := udptlSocket(t, pstnIP)
	saw := make(chan []byte, 1)
	w.carrier.SetBehavior(testphone.Behavior{OnReoffer: func(offer []byte) (int, []byte) {
		saw <- offer
		return 200, t38SDP(callerT38.LocalAddr().(*net.UDPAddr).AddrPort())
	}})
	w.pstn.SetBehavior(testphone.Behavior{Play: testphone.Tone(2100)}) // CED
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, err := w.call("+34910000026", "+34911222333", "", testphone.DialOptions{Codecs: []media.Codec{media.PCMA}, Play: testphone.Tone(1100)()}) // CNG
	if err != nil {
		t.Fatal(err)
	}
	fc := incoming(t, w.pstn)
	if offer := string(fc.Invite().Body()); !strings.Contains(offer, "m=audio") || !strings.Contains(offer, "RTP/AVP 8 0") {
		t.Errorf("the fax is not offered the caller's A-law first:\n%s", offer)
	}
	if slices.Contains(c.Provisionals(), 183) {
		t.Errorf("early media (a prompt or ringback) on a fax call: %v", c.Provisionals())
	}
	if err := c.WaitForTone(ctx, 2100, 200*time.Millisecond); err != nil {
		t.Errorf("the caller does not hear the fax's CED: %v", err)
	}
	if err := fc.WaitForTone(ctx, 1100, 200*time.Millisecond); err != nil {
		t.Errorf("the fax does not hear the caller's CNG: %v", err)
	}
	if err := fc.SendDTMF(ctx, "5"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDTMF(ctx, "5"); err != nil {
		t.Errorf("DTMF not passed through: %v", err)
	}

	// The fax machine switches to T.38.
	res, err := fc.Reoffer(ctx, t38SDP(faxT38.LocalAddr().(*net.UDPAddr).AddrPort()))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("T.38 re-INVITE: %v %v", res, err)
	}
	var callerSaw []byte
	select {
	case callerSaw = <-saw:
	default:
	}
	if callerSaw == nil || !strings.Contains(string(callerSaw), "m=image") || !strings.Contains(string(callerSaw), "T38FaxUdpEC:t38UDPRedundancy") {
		t.Fatalf("the caller did not get the T.38 offer:\n%s", callerSaw)
	}
	toCaller := imageAddr(t, res.Body()) // where the fax sends UDPTL
	toFax := imageAddr(t, callerSaw)     // where the caller sends UDPTL
	if toCaller.Addr() == pstnIP || toFax.Addr() == carrierIP {
		t.Errorf("UDPTL bypasses Switchboard: fax -> %v, caller -> %v", toCaller, toFax)
	}
	exchange(t, faxT38, toCaller, callerT38, "\x00\x01udptl-from-fax")
	exchange(t, callerT38, toFax, faxT38, "\x00\x02udptl-from-caller")
	// A re-INVITE the other side refuses comes back with its status; the
	// call stays up.
	if res, err := c.Reoffer(ctx, []byte("v=0\r\no=- 1 3 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n")); err != nil || res.StatusCode != 488 {
		t.Errorf("refused re-INVITE: %v %v, want 488", res, err)
	}
	if c.EndReason() != testphone.EndNone || fc.EndReason() != testphone.EndNone {
		t.Errorf("a refused re-INVITE ended the call: %s / %s", c.EndReason(), fc.EndReason())
	}
	hangup(t, c)
	waitEnded(t, fc, 5*time.Second)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "fax1" || !sippTraceHas(rec, "re-INVITE from fax1 relayed to the caller: switched to T.38") ||
		!sippTraceHas(rec, "re-INVITE from the caller not relayed to fax1: 488") {
		t.Errorf("record: answered_by %q trace %q", rec.AnsweredBy, rec.Trace)
	}
}

// TestFaxHangupDuringReoffer: a caller who hangs up while a relayed T.38
// re-INVITE waits for its answer ends the fax's leg at once, not when the
// re-INVITE times out (10 s).
func TestFaxHangupDuringReoffer(t *testing.T) {
	w := newWorld(t)
	offered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	w.carrier.SetBehavior(testphone.Behavior{OnReoffer: func([]byte) (int, []byte) {
		close(offered)
		<-release // the caller's side never answers the offer in time
		return 488, nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := w.call("+34910000026", "+34911222333", "", testphone.DialOptions{Codecs: []media.Codec{media.PCMA}})
	if err != nil {
		t.Fatal(err)
	}
	fc := incoming(t, w.pstn)
	go func() { _, _ = fc.Reoffer(ctx, t38SDP(netip.MustParseAddrPort("127.0.0.3:40000"))) }()
	select {
	case <-offered:
	case <-ctx.Done():
		t.Fatal("the re-INVITE never reached the caller")
	}
	hangup(t, c)
	waitEnded(t, fc, 5*time.Second)
	if rec := lastRecord(t, w.h, 1); rec.HangupCause != "caller_bye" {
		t.Errorf("hangup cause %q, want caller_bye; trace %q", rec.HangupCause, rec.Trace)
	}
}

// TestSetVariableThroughAPI: PUT /api/v1/{account}/calls/{id}/variables/{name}
// sets ${dest} on a live call, and the IVR option that goes to ${dest}
// then reaches that extension.
func TestSetVariableThroughAPI(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1500)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	token, err := w.h.st.CreateToken(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(api.NewHandler(api.Options{Tokens: w.h.st, Calls: w.h.srv.Engine()}))
	defer web.Close()
	put := func(id, value string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, web.URL+"/api/v1/acme/calls/"+id+"/variables/dest", strings.NewReader(`{"value":"`+value+`"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}

	c, err := w.call("+34910000027", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	live := w.h.srv.Engine().Live("acme")
	if len(live) != 1 || live[0].Number != "+34910000027" || live[0].Caller != "+34911222333" {
		t.Fatalf("live calls %+v", live)
	}
	if code := put(live[0].ID, "102"); code != 200 {
		t.Fatalf("PUT variable: %d", code)
	}
	if err := c.SendDTMF(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
		t.Errorf("${dest} set by the API did not reach bob: %v", err)
	}
	hangup(t, c)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "user:bob" {
		t.Errorf("answered by %q; trace %q", rec.AnsweredBy, rec.Trace)
	}
	if code := put(live[0].ID, "103"); code != 404 {
		t.Errorf("PUT on an ended call: %d, want 404", code)
	}
}

// TestBadPromptsAndDTMFFloodsKeepCallsUp: a prompt whose file is not a WAV
// and one whose file vanished after the configuration was applied are left
// out with a clear error, and the calls that use them go on (ringing falls
// back to tones, the announcement is skipped, the IVR still takes keys);
// floods of DTMF, as RFC 4733 and as SIP INFO, leave a bridged call up.
func TestBadPromptsAndDTMFFloodsKeepCallsUp(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.wav")
	vanished := filepath.Join(dir, "vanished.wav")
	if err := os.WriteFile(broken, []byte("RIFF\x24\x00\x00\x00WAVEfmt garbage that is not a format chunk"), 0o644); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(builtinDir(t), "please-hold.wav"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vanished, good, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	doc := fmt.Sprintf(`account: acme
domain: acme.test
trunks:
  carrier: { address: "sip:127.0.0.3:5999", inbound_from: ["127.0.0.2/32"] }
users:
  bob: { extension: "102", password: pb }
prompts:
  broken:   { file: "%s" }
  vanished: { file: "%s" }
extensions:
  brk: { members: ["user:bob"], ringing: prompt:broken, announcement: prompt:vanished, transfer: true, recording: manual }
ivrs:
  menu: { prompt: prompt:vanished, options: { "1": brk }, retries: 2 }
numbers:
  "+34910000001": { extension: brk }
  "+34910000002": { extension: menu }
`, broken, vanished)
	h := startServer(t, doc, harnessOptions{beforeStart: func() {
		if err := os.Remove(vanished); err != nil {
			t.Fatal(err)
		}
	}})
	w := &world{t: t, h: h, carrier: newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: carrierIP})}
	bob := w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1500), AnswerAfter: 300 * time.Millisecond})

	for i, number := range []string{"+34910000001", "+34910000002"} {
		c, err := w.call(number, "+34911222333", "", testphone.DialOptions{Play: testphone.Tone(700)()})
		if err != nil {
			t.Fatalf("%s: %v", number, err)
		}
		if number == "+34910000002" { // the IVR without its prompt still takes the key
			if err := c.SendDTMF(ctx, "1"); err != nil {
				t.Fatal(err)
			}
		}
		bc := incoming(t, bob)
		if err := c.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
			t.Fatalf("%s: not connected to bob: %v", number, err)
		}
		// Floods from both sides: the call stays up and carries audio.
		if err := bc.FloodDTMF(ctx, strings.Repeat("0123456789*#", 4)); err != nil {
			t.Fatalf("callee flood: %v", err)
		}
		if err := c.FloodDTMF(ctx, strings.Repeat("#7*0", 10)); err != nil {
			t.Fatalf("caller flood: %v", err)
		}
		for range 40 {
			if _, err := bc.SendInfo(ctx, "application/dtmf-relay", []byte("Signal=0\r\nDuration=40\r\n")); err != nil {
				t.Fatalf("INFO flood: %v", err)
			}
		}
		if c.EndReason() != testphone.EndNone || bc.EndReason() != testphone.EndNone {
			t.Fatalf("%s: a flood ended the call: %s / %s", number, c.EndReason(), bc.EndReason())
		}
		if err := c.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
			t.Errorf("%s: the caller no longer hears bob after the floods: %v", number, err)
		}
		if err := bc.WaitForTone(ctx, 700, 200*time.Millisecond); err != nil {
			t.Errorf("%s: bob no longer hears the caller after the floods: %v", number, err)
		}
		hangup(t, c)
		waitEnded(t, bc, 5*time.Second)
		rec := lastRecord(t, h, i+1)
		if rec.AnsweredBy != "user:bob" {
			t.Errorf("%s: answered by %q; trace %q", number, rec.AnsweredBy, rec.Trace)
		}
		if number == "+34910000001" && (!sippTraceHas(rec, "ringing prompt:broken", "ringback tones instead") || !sippTraceHas(rec, "announcement prompt:vanished", "connecting without it")) {
			t.Errorf("%s: the trace does not say which prompt failed: %q", number, rec.Trace)
		}
	}
}
