package sipserver

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

// TestExtensionToIVRAndPark: an individual extension whose destination is
// an IVR or a park lot takes the call there (SPEC §1: a target may be any
// IVR or park lot), reached from a number and by a user dialling its code,
// instead of ringing back forever.
func TestExtensionToIVRAndPark(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1500)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i, dial := range []func() (*testphone.Call, error){
		func() (*testphone.Call, error) { return w.call("+34910000028", "+34911222333", "") },
		func() (*testphone.Call, error) { return alice.Dial(ctx, "sip:25@"+w.h.addr, testphone.DialOptions{}) },
	} {
		c, err := dial()
		if err != nil {
			t.Fatalf("call %d: the IVR behind extension desk does not answer: %v", i+1, err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := c.SendDTMF(ctx, "2"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
			t.Errorf("call %d: option 2 did not connect bob: %v", i+1, err)
		}
		hangup(t, c)
		rec := lastRecord(t, w.h, i+1)
		if rec.AnsweredBy != "user:bob" || !sippTraceHas(rec, "desk is an individual extension -> out") || !sippTraceHas(rec, "ivr out") {
			t.Errorf("call %d: answered_by=%q trace=%q", i+1, rec.AnsweredBy, rec.Trace)
		}
	}

	c, err := w.call("+34910000029", "+34911222444", "")
	if err != nil {
		t.Fatalf("the park lot behind extension bay does not answer: %v", err)
	}
	if err := c.WaitForTone(ctx, 523.25, 300*time.Millisecond); err != nil {
		t.Errorf("no hold music in the lot: %v", err)
	}
	hangup(t, c)
	if rec := lastRecord(t, w.h, 3); !sippTraceHas(rec, "bay is an individual extension -> lot") || !sippTraceHas(rec, "orbit 701") {
		t.Errorf("park record trace %q", rec.Trace)
	}
}

// TestCallerIDAfterIVR: a user who reaches an external number through an
// IVR option is presented as the account's service number, as when dialling
// it directly; a carrier's caller through the same IVR keeps their number
// (caller_id: original).
func TestCallerIDAfterIVR(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	w.pstn.SetBehavior(testphone.Behavior{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name string
		dial func() (*testphone.Call, error)
		want string
	}{
		{"user", func() (*testphone.Call, error) { return alice.Dial(ctx, "sip:25@"+w.h.addr, testphone.DialOptions{}) }, "+34910000099"},
		{"carrier", func() (*testphone.Call, error) { return w.call("+34910000028", "+34911222333", "") }, "+34911222333"},
	} {
		c, err := tt.dial()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := c.SendDTMF(ctx, "1"); err != nil {
			t.Fatal(err)
		}
		pc := incoming(t, w.pstn)
		if got := pc.Invite().From().Address.User; got != tt.want {
			t.Errorf("%s through the IVR is presented to the trunk as %q, want %s", tt.name, got, tt.want)
		}
		hangup(t, c)
		waitEnded(t, pc, 5*time.Second)
	}
}

// TestSippExtensionToIVR: the same on the wire with sipp: a carrier call
// to a number whose individual extension's destination is an IVR is
// answered by the IVR, sipp presses 1 (RFC 4733 from a pcap), and the
// option reaches the callee behind the trunk (a sipp UAS); a registered
// user (the test phone) taking the same IVR to the trunk presents the
// service number there.
func TestSippExtensionToIVR(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	uas := startSipp(ctx, t, "carrier", sippOptions{scenario: "uas_answer.xml", rtpEcho: true, args: []string{"-m", "2"}})
	dir, err := filepath.Abs("../prompt/builtin")
	if err != nil {
		t.Fatal(err)
	}
	h := startServer(t, fmt.Sprintf(`account: acme
domain: acme.test
defaults: { trunk: carrier, service_number: "+34910000099", allowed_destinations: ["+34*"] }
trunks:
  carrier: { address: "sip:%s", inbound_from: ["127.0.0.1/32"] }
users:
  alice: { extension: "101", password: pa }
prompts:
  hold: { file: "%s/please-hold.wav" }
extensions:
  desk: { code: "25", destination: menu }
ivrs:
  menu: { prompt: prompt:hold, options: { "1": "+34600000003" }, retries: 2 }
numbers:
  "+34910000000": { extension: desk }
`, uas.uasAddr(), dir))
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_dtmf.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	rec := sippOneCall(h)
	if rec.AnsweredBy != "+34600000003" || !sippTraceHas(rec, "desk is an individual extension -> menu") {
		t.Errorf("record answered_by=%q trace=%q", rec.AnsweredBy, rec.Trace)
	}

	// The user's phone is not on a trunk address: 127.0.0.5.
	alice := newPhone(t, testphone.Config{Name: "alice", User: "alice", Password: "pa", Domain: "acme.test", Registrar: h.addr, IP: netip.MustParseAddr("127.0.0.5")})
	if code, err := alice.Register(ctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register alice: %d %v", code, err)
	}
	c, err := alice.Dial(ctx, "sip:25@"+h.addr, testphone.DialOptions{})
	if err != nil {
		t.Fatalf("alice dials the IVR's code: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.SendDTMF(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(uas.received("INVITE")) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	hangup(t, c)
	uas.expectSuccess()
	invites := uas.received("INVITE")
	if len(invites) != 2 {
		t.Fatalf("the trunk received %d INVITEs, want 2", len(invites))
	}
	if from := invites[1].header("From"); !strings.Contains(from, "sip:+34910000099@") {
		t.Errorf("the user's call through the IVR reached the trunk From %q, want the service number +34910000099", from)
	}
}
