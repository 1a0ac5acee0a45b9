package sipserver

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

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
  desk:   { code: "25", destination: out }
  bay:    { destination: lot }
faxes:
  fax1: { destination: "sip:fax@%[1]s" }
parks:
  lot: { orbits: "701-702", timeout: 6s, return_to: "user:carol" }
ivrs:
  out:
    prompt: prompt:hold
    options: { "1": "+34600000003", "2": "user:bob" }
    retries: 3
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
  "+34910000028": { extension: desk }
  "+34910000029": { extension: bay }
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
