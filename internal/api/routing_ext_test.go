package api_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// carrierIP is where the carrier's calls come from: the trunk's inbound_from.
var carrierIP = netip.MustParseAddr("127.0.0.2")

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

// userPhone starts a registered phone for an acme user.
func userPhone(t testing.TB, srv *nodetest.Server, name, password string, b testphone.Behavior) *testphone.Phone {
	t.Helper()
	p := newPhone(t, testphone.Config{Name: name, User: name, Password: password, Domain: "acme.test", Registrar: srv.SIPAddr})
	p.SetBehavior(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code, err := p.Register(ctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register %s: %d %v", name, code, err)
	}
	return p
}

func carrierPhone(t testing.TB) *testphone.Phone {
	t.Helper()
	return newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: carrierIP})
}

// dial places a carrier call to number from caller; it returns once the
// call is answered or has failed.
func dial(t testing.TB, srv *nodetest.Server, carrier *testphone.Phone, number, caller string, opts ...testphone.DialOptions) (*testphone.Call, error) {
	t.Helper()
	var o testphone.DialOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.FromUser = caller
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return carrier.Dial(ctx, "sip:"+number+"@"+srv.SIPAddr, o)
}

func hangup(t testing.TB, c *testphone.Call) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil && c.EndReason() == testphone.EndNone {
		t.Errorf("hangup: %v", err)
	}
}

// incoming waits for a call on p.
func incoming(t testing.TB, p *testphone.Phone, within time.Duration) *testphone.Call {
	t.Helper()
	select {
	case c := <-p.Incoming():
		return c
	case <-time.After(within):
		t.Errorf("no incoming call on %s within %s", p.Config().Name, within)
		return nil
	}
}

// quiet fails the test if p has an incoming call.
func quiet(t testing.TB, p *testphone.Phone, what string) {
	t.Helper()
	select {
	case c := <-p.Incoming():
		t.Errorf("%s: %s's phone rang (%s)", what, p.Config().Name, c.CallID())
	default:
	}
}

// waitCall waits up to 10 s for the record of caller's latest call that
// started at or after since to satisfy ok, and returns it.
func waitCall(t testing.TB, srv *nodetest.Server, caller string, since time.Time, ok func(*store.CallRecord) bool) store.CallRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, _, err := srv.Store.ListCalls(context.Background(), store.CallFilter{Account: "acme", Ended: true, Caller: caller, From: since.Add(-time.Millisecond), Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 && ok(&recs[0]) {
			return recs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished call record from %s within 10s (have %+v)", caller, recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ended(r *store.CallRecord) bool { return !r.End.IsZero() }

// TestAPIRoutingFollows: API writes reach the routing of real SIP calls
// within a second: a rule, its replacement, a location's forwarding and a
// rollback, each followed by a carrier call through the node.
func TestAPIRoutingFollows(t *testing.T) {
	t.Parallel()
	nodetest.EachDB(t, func(t *testing.T, db string) {
		srv := startNode(t, db)
		c := newClient(t, srv, "acme", "ops", false, 4)
		alice := userPhone(t, srv, "alice", alicePW, testphone.Behavior{})
		bob := userPhone(t, srv, "bob", bobPW, testphone.Behavior{})
		carrier := carrierPhone(t)
		const number = "+34910000001"
		const screened = "+34600111222" // the caller the rule is for

		// answeredBy places a call and checks that p answered it and the
		// other phone stayed quiet.
		answeredBy := func(caller string, p, other *testphone.Phone, outcome string) {
			t.Helper()
			since := time.Now()
			call, err := dial(t, srv, carrier, number, caller)
			if err != nil {
				t.Errorf("call from %s: %v, want it answered by %s", caller, err, p.Config().Name)
				return
			}
			if in := incoming(t, p, 5*time.Second); in != nil && !in.IsAnswered() {
				t.Errorf("call from %s: %s's phone did not answer: %s", caller, p.Config().Name, in.EndReason())
			}
			quiet(t, other, "call from "+caller)
			hangup(t, call)
			rec := waitCall(t, srv, caller, since, ended)
			if rec.Outcome != outcome || rec.AnsweredBy != "user:"+p.Config().Name {
				t.Errorf("call from %s: record %s answered by %q, want %s by user:%s; trace %q", caller, rec.Outcome, rec.AnsweredBy, outcome, p.Config().Name, rec.Trace)
			}
		}
		// within places calls from caller until one gets status (0:
		// answered) or 1.5 s have passed since the write at t0.
		within := func(node *nodetest.Server, t0 time.Time, caller string, status int) {
			t.Helper()
			for {
				call, err := dial(t, node, carrier, number, caller)
				got := testphone.StatusCode(err)
				if err == nil {
					hangup(t, call)
				}
				if got == status {
					t.Logf("a call from %s through %s got %d %s after the write", caller, node.SIPAddr, got, time.Since(t0).Round(time.Millisecond))
					return
				}
				if time.Since(t0) > 1500*time.Millisecond {
					t.Errorf("a call from %s through %s got %d (%v) %s after the write, want %d", caller, node.SIPAddr, got, err, time.Since(t0).Round(time.Millisecond), status)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}

		answeredBy(screened, alice, bob, "routed")
		before := version(t, srv)
		// A second node on the same database: configuration changes reach
		// every node within a second (SPEC §8).
		other := nodetest.Run(t, "", nodetest.Options{DB: db, TTS: stubTTS{}})

		// A reject-busy rule for the caller's prefix, appended through the API.
		t0 := time.Now()
		want(t, c.do("PUT", "/acme/numbers/"+number+"/rules/0", `{"prefix":"346001*","weight":10,"action":"reject-busy","tags":["screened"]}`), 200)
		within(srv, t0, screened, 486)
		within(other, t0, screened, 486)
		// The last of those calls was rejected by the rule, and says so.
		if rec := waitCall(t, srv, screened, t0, func(r *store.CallRecord) bool { return ended(r) && r.Outcome == "rejected" }); !slices.Contains(rec.Tags, "screened") {
			t.Errorf("the screened call's record: %s, tags %q", rec.Outcome, rec.Tags)
		}
		for _, p := range []*testphone.Phone{alice, bob} { // drain calls of the polling
			for len(p.Incoming()) > 0 {
				<-p.Incoming()
			}
		}
		// Another caller is not screened.
		answeredBy("+34699000001", alice, bob, "routed")

		// Replace the rule: route that caller to bob.
		t0 = time.Now()
		want(t, c.do("PUT", "/acme/numbers/"+number+"/rules/0", `{"prefix":"346001*","weight":10,"action":"route","extension":"user:bob"}`), 200)
		if time.Since(t0) > time.Second {
			t.Errorf("the write took %s", time.Since(t0))
		}
		answeredBy(screened, bob, alice, "routed")

		// Roll back to the version before the rule: routed to alice again.
		want(t, c.do("POST", "/acme/config/rollback", fmt.Sprintf(`{"version":%d}`, before)), 200)
		answeredBy(screened, alice, bob, "routed")

		// The location's forwarding: the next call is forwarded to bob.
		want(t, c.do("PUT", "/acme/locations/madrid/forward", `{"enabled":true}`), 200)
		answeredBy("+34699000002", bob, alice, "forwarded")
		want(t, c.do("PUT", "/acme/locations/madrid/forward", `{"enabled":false}`), 200)
		answeredBy("+34699000003", alice, bob, "routed")
	})
}
