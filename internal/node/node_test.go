package node_test

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

func TestMain(m *testing.M) {
	// Short SIP timers keep CANCEL/timeout paths fast in tests.
	sip.SetTimers(100*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	os.Exit(m.Run())
}

// carrierIP is where the carrier's calls come from: the trunk's inbound_from.
var carrierIP = netip.MustParseAddr("127.0.0.2")

// acmeDoc is the account of these tests. +34910000002 screens its callers:
// high reputation is rejected busy, medium gets a caller name prefix, none
// goes straight through, so each level gives a different decision.
const acmeDoc = `
account: acme
domain: acme.test
defaults: { caller_id: original, trunk: carrier, allowed_destinations: ["+34*"] }
trunks:
  carrier: { address: "sip:127.0.0.3:5060", inbound_from: ["127.0.0.2/32"] }
users:
  alice: { extension: "101", password: pa }
  bob:   { extension: "102", password: pb }
numbers:
  "+34910000001": { extension: "user:alice" }
  "+34910000002":
    extension: "user:bob"
    tags: [sales]
    rules:
      - { prefix: "*", weight: 10, action: reject-busy, reputation: high, tags: [blocked] }
      - { prefix: "*", weight: 20, action: cnam-prefix, cnam_prefix: "SUSPECT ", reputation: medium, tags: [suspect] }
`

func newPhone(t *testing.T, cfg testphone.Config) *testphone.Phone {
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

// user starts a registered phone for an acme user.
func user(t *testing.T, s *nodetest.Server, name, password string, b testphone.Behavior) *testphone.Phone {
	t.Helper()
	p := newPhone(t, testphone.Config{Name: name, User: name, Password: password, Domain: "acme.test", Registrar: s.SIPAddr})
	p.SetBehavior(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code, err := p.Register(ctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register %s: %d %v", name, code, err)
	}
	return p
}

func carrier(t *testing.T) *testphone.Phone {
	t.Helper()
	return newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: carrierIP})
}

// dial places a carrier call to number from caller (with a display name);
// it returns once the call is answered or has failed.
func dial(t *testing.T, s *nodetest.Server, c *testphone.Phone, number, caller, name string) (*testphone.Call, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Dial(ctx, "sip:"+number+"@"+s.SIPAddr, testphone.DialOptions{FromUser: caller, FromDisplay: name})
}

func hangup(t *testing.T, c *testphone.Call) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil {
		t.Fatalf("hangup: %v", err)
	}
}

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

func TestRunServer(t *testing.T) {
	t.Parallel()
	s := nodetest.Run(t, acmeDoc)

	res, err := http.Get(s.HTTPURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d, want 200", res.StatusCode)
	}

	alice := user(t, s, "alice", "pa", testphone.Behavior{})
	c, err := dial(t, s, carrier(t), "+34910000001", "+34600999888", "Caller")
	if err != nil {
		t.Fatalf("carrier call: %v", err)
	}
	if in := incoming(t, alice); !in.IsAnswered() {
		t.Errorf("alice's phone did not answer: %s", in.EndReason())
	}
	hangup(t, c)
	s.WaitCalls(t, "acme", 1)
	recs := s.Calls("acme")
	if len(recs) != 1 {
		t.Fatalf("%d call records, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Outcome != "routed" || rec.AnsweredBy != "user:alice" || rec.Number != "+34910000001" || rec.Caller != "+34600999888" {
		t.Errorf("record: outcome %q answered by %q number %q caller %q, want routed, user:alice, +34910000001, +34600999888; trace %q",
			rec.Outcome, rec.AnsweredBy, rec.Number, rec.Caller, rec.Trace)
	}
}

// TestLiveCallsScreenLikeRoute places real calls from a caller on the
// account's reputation list and from a flooding caller, and shows that each
// call's decision is the one the node's explanation (the API's and
// `route`'s) gave just before it.
func TestLiveCallsScreenLikeRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A call bob declines gets on_failure tones until RingTimeout: keep
	// those short, so that 11 calls fit well within the flood window.
	s := nodetest.Run(t, acmeDoc, nodetest.Options{RingTimeout: 300 * time.Millisecond})
	bob := user(t, s, "bob", "pb", testphone.Behavior{})
	carrierPhone := carrier(t)
	const number = "+34910000002"
	calls := 0

	// place explains the call, places it, and checks that the record says
	// what the explanation said.
	place := func(caller, name string) (*routing.Explanation, store.CallRecord, *testphone.Call, error) {
		t.Helper()
		ex, err := s.Accounts.Explain(ctx, "acme", routing.Request{Number: number, Caller: caller, CallerName: name})
		if err != nil {
			t.Fatalf("explain: %v", err)
		}
		c, err := dial(t, s, carrierPhone, number, caller, name)
		if err == nil {
			hangup(t, c)
		}
		calls++
		rec := s.WaitCalls(t, "acme", calls)[0]
		t.Logf("call %d from %s: explained %s (%d), recorded %s, carrier got %d", calls, caller, ex.Outcome, ex.SIPStatus, rec.Outcome, testphone.StatusCode(err))
		sameDecision(t, ex, rec)
		return ex, rec, c, err
	}

	// A listed caller at medium: the reject-busy rule (high) is skipped,
	// the cnam-prefix rule (medium) fires, and bob gets the call.
	const callerA = "+34600111222"
	if err := s.Store.SetReputation(ctx, "acme", callerA, config.LevelMedium); err != nil {
		t.Fatal(err)
	}
	// What `switchboard route --account acme` says (its default --captcha
	// pass): the store's list, no flood history.
	routeEx, err := accounts.Explain(ctx, s.Store, "acme", routing.Request{Number: number, Caller: callerA, CallerName: "Alice", Captcha: routing.CaptchaPassed})
	if err != nil {
		t.Fatal(err)
	}
	ex, rec, _, err := place(callerA, "Alice")
	if err != nil {
		t.Fatalf("call from the listed caller: %v", err)
	}
	if ex.Outcome != routing.OutcomeRouted || ex.CallerName != "SUSPECT Alice" || !slices.Equal(ex.Tags, []string{"sales", "suspect"}) {
		t.Errorf("listed caller: explained %s, name %q, tags %q; want routed, \"SUSPECT Alice\", [sales suspect]", ex.Outcome, ex.CallerName, ex.Tags)
	}
	if in := incoming(t, bob); in.Invite().From().DisplayName != ex.CallerName {
		t.Errorf("bob saw caller name %q, explained %q", in.Invite().From().DisplayName, ex.CallerName)
	}
	if rec.AnsweredBy != "user:bob" {
		t.Errorf("listed caller's call answered by %q, want user:bob", rec.AnsweredBy)
	}
	// route's decision is the node's, and so the call's; its trace differs
	// only in the caller line, which states the captcha result it assumed.
	listed := "reputation: " + callerA + " is on the account's list as medium"
	wantTrace := slices.Clone(ex.Trace)
	for i, l := range wantTrace {
		if strings.HasPrefix(l, "caller ") && !strings.HasPrefix(l, "caller name:") {
			wantTrace[i] = l + ", captcha result if asked: passed"
		}
	}
	if routeEx.Outcome != ex.Outcome || routeEx.SIPStatus != ex.SIPStatus || routeEx.Destination != ex.Destination ||
		routeEx.CallerName != ex.CallerName || !slices.Equal(routeEx.Tags, ex.Tags) ||
		!slices.Equal(routeEx.RulesFired, ex.RulesFired) || !slices.EqualFunc(routeEx.Attempts, ex.Attempts, slices.Equal) ||
		!slices.Equal(routeEx.Trace, wantTrace) || !slices.Contains(rec.Trace, listed) {
		t.Errorf("route: %+v\nnode:  %+v\ncall trace: %q", routeEx, ex, rec.Trace)
	}

	// A flooding caller: the first 10 calls within the minute go through
	// (bob declines them, the caller hears the on_failure tones), the 11th
	// is high and rejected busy.
	bob.SetBehavior(testphone.Behavior{Mode: testphone.Reject, Code: 603})
	const callerB = "+34600333444"
	for i := 1; i <= routing.FloodLimit+1; i++ {
		ex, rec, c, err := place(callerB, "Flood")
		status := testphone.StatusCode(err)
		if i <= routing.FloodLimit {
			if ex.Outcome != routing.OutcomeRouted || ex.CallerName != "Flood" || !slices.Equal(ex.Tags, []string{"sales"}) {
				t.Errorf("flood call %d: explained %s, name %q, tags %q; want routed, \"Flood\", [sales]", i, ex.Outcome, ex.CallerName, ex.Tags)
			}
			if in := incoming(t, bob); in.Invite().From().DisplayName != ex.CallerName {
				t.Errorf("flood call %d: bob saw caller name %q, explained %q", i, in.Invite().From().DisplayName, ex.CallerName)
			}
			if status == 0 || status == 486 {
				t.Errorf("flood call %d: the carrier got %d (%v), want bob's refusal", i, status, err)
			}
			continue
		}
		if ex.Outcome != routing.OutcomeRejected || ex.SIPStatus != 486 || !slices.Equal(ex.Tags, []string{"sales", "blocked"}) {
			t.Errorf("flood call %d: explained %s (%d), tags %q; want rejected (486), [sales blocked]", i, ex.Outcome, ex.SIPStatus, ex.Tags)
		}
		if status != ex.SIPStatus {
			t.Errorf("flood call %d: the carrier got %d (%v), explained %d", i, status, err, ex.SIPStatus)
		}
		if c != nil && c.IsAnswered() {
			t.Errorf("flood call %d was answered", i)
		}
		flood := "reputation: " + callerB + " placed 11 calls to the account within 1m0s (flood guard): high"
		if !slices.Contains(rec.Trace, flood) {
			t.Errorf("flood call %d: no %q in the trace %q", i, flood, rec.Trace)
		}
		select {
		case in := <-bob.Incoming():
			t.Errorf("flood call %d reached bob (%s)", i, in.CallID())
		default:
		}
	}
}

// sameDecision checks that a call's record carries the decision ex
// explained: outcome, number, caller, caller name and tags; the same
// reputation notes; and every line of ex's trace, bar the attempt plan's
// notes, in order.
func sameDecision(t *testing.T, ex *routing.Explanation, rec store.CallRecord) {
	t.Helper()
	if rec.Outcome != string(ex.Outcome) || rec.Number != ex.Number || rec.Caller != ex.Caller ||
		rec.CallerName != ex.CallerName || !slices.Equal(rec.Tags, ex.Tags) {
		t.Errorf("call %s from %s: record outcome %q number %q caller %q name %q tags %q\nexplained outcome %q number %q caller %q name %q tags %q",
			rec.ID, rec.Caller, rec.Outcome, rec.Number, rec.Caller, rec.CallerName, rec.Tags,
			ex.Outcome, ex.Number, ex.Caller, ex.CallerName, ex.Tags)
	}
	notes := func(trace []string) []string {
		var out []string
		for _, l := range trace {
			if strings.HasPrefix(l, "reputation: ") {
				out = append(out, l)
			}
		}
		return out
	}
	if got, want := notes(rec.Trace), notes(ex.Trace); !slices.Equal(got, want) {
		t.Errorf("call %s from %s: reputation notes %q, explained %q", rec.ID, rec.Caller, got, want)
	}
	i := 0
	for _, l := range ex.Trace {
		if strings.HasPrefix(l, "attempts:") {
			continue
		}
		for i < len(rec.Trace) && rec.Trace[i] != l {
			i++
		}
		if i == len(rec.Trace) {
			t.Errorf("call %s from %s: explained trace line %q not in the record's trace (in order)\nrecord:    %q\nexplained: %q",
				rec.ID, rec.Caller, l, rec.Trace, ex.Trace)
			return
		}
		i++
	}
}
