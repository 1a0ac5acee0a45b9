package sipserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

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

// TestBadPromptsAndDTMFFloodsKeepCallsUp: a prompt whose file is not a WAV
// and one whose file vanished after the configuration was applied are left
// out with a clear error, and the calls that use them go on (ringing falls
// back to tones, the announcement is skipped, the IVR still takes keys);
// floods of DTMF, as RFC 4733 and as SIP INFO, leave a bridged call up.
func TestBadPromptsAndDTMFFloodsKeepCallsUp(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.wav")
	vanished := filepath.Join(dir, "vanished.wav")
	good, err := os.ReadFile(filepath.Join(builtinDir(t), "please-hold.wav"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{broken, vanished} {
		if err := os.WriteFile(f, good, 0o644); err != nil {
			t.Fatal(err)
		}
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
	// Both files are valid WAVs when the configuration is validated; then
	// one is overwritten with garbage and the other removed.
	h := startServer(t, doc, harnessOptions{beforeStart: func() {
		if err := os.WriteFile(broken, []byte("RIFF\x24\x00\x00\x00WAVEfmt garbage that is not a format chunk"), 0o644); err != nil {
			t.Fatal(err)
		}
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
