package sipserver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/security"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// tollFraudDoc is an account whose users may dial Spain; %[1]s is the PSTN
// phone behind the trunk, %[2]s the rest of the defaults (the caps), %[3]s
// the built-in prompts' directory.
const tollFraudDoc = `
account: acme
domain: acme.test
defaults: { service_number: "+34910000099", trunk: carrier, allowed_destinations: ["+34*"]%[2]s }
trunks:
  carrier: { address: "sip:%[1]s", inbound_from: ["127.0.0.2/32"] }
users:
  alice: { extension: "101", password: pa }
  bob:   { extension: "102", password: pb }
prompts:
  hold: { file: "%[3]s/please-hold.wav" }
extensions:
  desk:  { destination: "user:bob" }
  front: { code: "31", destination: entry }
  dyn:   { destination: "${dest}", on_failure: prompt:hold }
ivrs:
  entry: { prompt: prompt:hold, collect: { variable: dest, min_digits: 3, max_digits: 15, terminator: "#", timeout: 2s }, next: dyn }
numbers:
  "+34910000000": { extension: desk }
  "+34910000001": { extension: front }
`

// securityLog is the server's log as the node has it: every security event
// is counted, as switchboard_security_events_total counts them (node.go
// wraps its logger in the same security.Counting), and the lines are kept.
type securityLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	counts map[security.Kind]int
}

func (l *securityLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *securityLog) logger() *slog.Logger {
	l.counts = map[security.Kind]int{}
	h := slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn})
	return slog.New(security.Counting(h, func(k security.Kind) {
		l.mu.Lock()
		l.counts[k]++
		l.mu.Unlock()
	}))
}

// events returns the toll_fraud lines logged so far and the count of them.
func (l *securityLog) events() (lines []string, counted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(l.buf.String()) {
		// A call's logger puts its call_id before event=.
		if strings.Contains(line, `msg="security event" `) && strings.Contains(line, " event=toll_fraud ") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines, l.counts[security.TollFraud]
}

// expect checks that the toll_fraud events are the n so far, the newest
// containing each of want.
func (l *securityLog) expect(t *testing.T, n int, want ...string) {
	t.Helper()
	lines, counted := l.events()
	if len(lines) != n || counted != n {
		t.Fatalf("%d toll_fraud lines (%d counted), want %d:\n%s", len(lines), counted, n, strings.Join(lines, "\n"))
	}
	for _, w := range want {
		if !strings.Contains(lines[n-1], w) {
			t.Errorf("toll_fraud line %q lacks %q", lines[n-1], w)
		}
	}
}

// tollFraudWorld is a server for doc (tollFraudDoc with the caps given)
// whose log is kept, with alice registered and the PSTN phone answering.
type tollFraudWorld struct {
	srv    *Server
	engine *call.Engine
	addr   string
	log    *securityLog
	alice  *testphone.Phone
	pstn   *testphone.Phone
}

// newTollFraudWorld starts the server as startServer does, with a logger
// of its own (the harness's writes nowhere) and the default guard: these
// few calls stay within its rate limit.
func newTollFraudWorld(t *testing.T, caps string) *tollFraudWorld {
	t.Helper()
	w := &tollFraudWorld{log: &securityLog{}}
	w.pstn = newPhone(t, testphone.Config{Name: "pstn", User: "pstn", IP: pstnIP})
	w.pstn.SetBehavior(testphone.Behavior{})
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "sb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	applyYAML(t, st, fmt.Sprintf(tollFraudDoc, w.pstn.Addr(), caps, builtinDir(t)))
	log := w.log.logger()
	dir := accounts.New(accounts.Config{Store: st, Log: log})
	if err := dir.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	w.srv, err = Listen(Config{
		Accounts: dir,
		Contacts: st,
		Log:      log,
		SIPAddr:  "127.0.0.1:" + strconv.Itoa(port),
		Secret:   []byte("test-secret-0123456789"),
	})
	if err != nil {
		t.Fatal(err)
	}
	rtpMin := 20000 + (port%20)*500
	alloc, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), rtpMin, rtpMin+499)
	if err != nil {
		t.Fatal(err)
	}
	w.engine = call.New(call.Config{
		UA: w.srv.DialogUA(), Media: alloc, MediaIP: netip.MustParseAddr("127.0.0.1"),
		Devices: w.srv.Devices(), Records: st, Counters: st, Log: log, Recordings: t.TempDir(),
	})
	w.srv.Serve(w.engine)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.srv.Shutdown(ctx)
	})
	w.addr = w.srv.UDPAddr().String()
	w.alice = newPhone(t, testphone.Config{Name: "alice", User: "alice", Password: "pa", Domain: "acme.test", Registrar: w.addr})
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if code, err := w.alice.Register(rctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register alice: %d %v", code, err)
	}
	return w
}

// dialOut has alice dial number; the PSTN phone's side is returned with
// her call when it was connected.
func (w *tollFraudWorld) dialOut(t *testing.T, number string) (*testphone.Call, *testphone.Call, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := w.alice.Dial(ctx, "sip:"+number+"@"+w.addr, testphone.DialOptions{})
	if err != nil {
		return nil, nil, err
	}
	return c, incoming(t, w.pstn), nil
}

// refusedForLimit checks that err is a 403 saying the outbound call limit.
func refusedForLimit(t *testing.T, err error, what string) {
	t.Helper()
	se, ok := err.(*testphone.StatusError)
	if !ok || se.Code != 403 {
		t.Fatalf("%s: %v, want 403", what, err)
	}
	if h := se.Response.GetHeader("Warning"); h == nil || !strings.Contains(h.Value(), "outbound call limit") {
		t.Errorf("%s: 403 without a Warning naming the outbound call limit: %v", what, h)
	}
}

// waitActive waits until the engine has n calls in progress: a call is
// counted out of its account's caps before it leaves that count.
func (w *tollFraudWorld) waitActive(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for w.engine.Active() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in progress, want %d", w.engine.Active(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTollFraudConcurrentCap: with max_outbound_calls: 2, a user's third
// call out while two are up is refused 403 (Warning: outbound call limit)
// and logged once as a toll_fraud security event naming the cap, the
// account, the user and the number; calls to extensions are not capped;
// once one of the two hangs up (the callee's BYE, here) a new call goes out.
func TestTollFraudConcurrentCap(t *testing.T) {
	w := newTollFraudWorld(t, ", max_outbound_calls: 2, max_outbound_per_hour: 0")
	c1, p1, err := w.dialOut(t, "+34600000001")
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	c2, _, err := w.dialOut(t, "+34600000002")
	if err != nil {
		t.Fatalf("second call: %v", err)
	}
	_, _, err = w.dialOut(t, "+34600000003")
	refusedForLimit(t, err, "third call with two up")
	w.log.expect(t, 1, "source=127.0.0.1", "reason=outbound_limit", "cap=concurrent", "limit=2",
		"account=acme", "user=alice", "destination=+34600000003")

	// A call to an extension is no outbound call: it is not capped.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bob := newPhone(t, testphone.Config{Name: "bob", User: "bob", Password: "pb", Domain: "acme.test", Registrar: w.addr})
	if code, err := bob.Register(ctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register bob: %d %v", code, err)
	}
	cb, err := w.alice.Dial(ctx, "sip:102@"+w.addr, testphone.DialOptions{})
	if err != nil {
		t.Fatalf("alice calls bob with the cap reached: %v", err)
	}
	incoming(t, bob)
	hangup(t, cb)
	w.waitActive(t, 2)

	hangup(t, p1) // the far end hangs up: the call ends whichever side ends it
	waitEnded(t, c1, 5*time.Second)
	w.waitActive(t, 1)
	c4, _, err := w.dialOut(t, "+34600000004")
	if err != nil {
		t.Fatalf("a call after one of the two ended: %v", err)
	}
	_, _, err = w.dialOut(t, "+34600000005")
	refusedForLimit(t, err, "a third call again")
	w.log.expect(t, 2, "cap=concurrent", "destination=+34600000005")
	hangup(t, c2)
	hangup(t, c4)
}

// TestTollFraudHourlyCap: with max_outbound_per_hour: 3, a user's fourth
// call out within the hour is refused 403 although none is up any more,
// and logged once as a toll_fraud event with cap=hourly; a refused call
// does not count, so the fifth is refused the same way.
func TestTollFraudHourlyCap(t *testing.T) {
	w := newTollFraudWorld(t, ", max_outbound_per_hour: 3")
	for i := range 3 {
		c, _, err := w.dialOut(t, fmt.Sprintf("+3460000000%d", i+1))
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		hangup(t, c)
	}
	w.waitActive(t, 0)
	_, _, err := w.dialOut(t, "+34600000004")
	refusedForLimit(t, err, "fourth call in the hour")
	w.log.expect(t, 1, "reason=outbound_limit", "cap=hourly", "limit=3", "account=acme", "user=alice", "destination=+34600000004")
	_, _, err = w.dialOut(t, "+34600000005")
	refusedForLimit(t, err, "fifth call in the hour")
	w.log.expect(t, 2, "cap=hourly")
}

// TestTollFraudRefusalsLogged: the guards that were there before the caps
// log one toll_fraud event each: a user dialling a number outside
// allowed_destinations (403), and an INVITE from an address that is no
// trunk for a domain we do not serve (403).
func TestTollFraudRefusalsLogged(t *testing.T) {
	w := newTollFraudWorld(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.alice.Dial(ctx, "sip:+19005550100@"+w.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 403 {
		t.Fatalf("premium number: %v, want 403", err)
	}
	w.log.expect(t, 1, "source=127.0.0.1", "reason=destination_not_allowed", "account=acme", "user=alice", "destination=+19005550100")

	stranger := newPhone(t, testphone.Config{Name: "stranger", User: "x", Domain: "elsewhere.test", IP: netip.MustParseAddr("127.0.0.7")})
	if _, err := stranger.Dial(ctx, "sip:+34600000001@"+w.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 403 {
		t.Fatalf("stranger: %v, want 403", err)
	}
	w.log.expect(t, 2, "source=127.0.0.7", "destination=+34600000001")

	// Within the default caps, an allowed call goes out and logs nothing.
	c, _, err := w.dialOut(t, "+34600000001")
	if err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	hangup(t, c)
	w.log.expect(t, 2)
}

// TestTollFraudVariable: a number typed into an IVR's collect and dialled
// through ${dest} must pass allowed_destinations: a user's premium number
// is refused (the call runs on_failure) and logged once as a toll_fraud
// event; a carrier's caller typing one is refused the same way with no
// security event (its source is the trunk); a number in Spain goes out.
func TestTollFraudVariable(t *testing.T) {
	w := newTollFraudWorld(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carrier := newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: carrierIP})
	for _, tt := range []struct {
		name   string
		dial   func() (*testphone.Call, error)
		keys   string
		events int
	}{
		{"user, premium", func() (*testphone.Call, error) { return w.alice.Dial(ctx, "sip:31@"+w.addr, testphone.DialOptions{}) }, "0019005550100#", 1},
		{"carrier, premium", func() (*testphone.Call, error) {
			return carrier.Dial(ctx, "sip:+34910000001@"+w.addr, testphone.DialOptions{FromUser: "+34911222333"})
		}, "0019005550100#", 1},
		{"user, Spain", func() (*testphone.Call, error) { return w.alice.Dial(ctx, "sip:31@"+w.addr, testphone.DialOptions{}) }, "0034600000001#", 1},
	} {
		c, err := tt.dial()
		if err != nil {
			t.Fatalf("%s: the IVR does not answer: %v", tt.name, err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := c.SendDTMF(ctx, tt.keys); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(tt.name, "Spain") {
			pc := incoming(t, w.pstn)
			hangup(t, c)
			waitEnded(t, pc, 5*time.Second)
		} else {
			waitEnded(t, c, 15*time.Second) // on_failure: the prompt, then hang up
			select {
			case pc := <-w.pstn.Incoming():
				t.Errorf("%s: the premium number was dialled: %v", tt.name, pc.Invite().Recipient)
			default:
			}
		}
		w.log.expect(t, tt.events)
		if tt.name == "user, premium" {
			w.log.expect(t, 1, "source=127.0.0.1", "reason=destination_not_allowed", "variable=dest", "destination=+19005550100", "user=alice")
		}
	}
}
