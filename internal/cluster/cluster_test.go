package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

// The account of the tests. Calls from the carrier (carrierIP, the
// trunk's inbound_from) reach the nodes only through Kamailio: the nodes
// see Kamailio's address and classify the call by X-Switchboard-Source.
const (
	deskNumber = "+34910000001" // rings alice
	rotaNumber = "+34910000002" // a rotating group of alice, bob, carol
	outNumber  = "+34910000003" // dialled out through the trunk to the far end
)

var users = []struct{ name, password string }{{"alice", "pw-alice"}, {"bob", "pw-bob"}, {"carol", "pw-carol"}}

func accountYAML(farEnd string) string {
	if farEnd == "" {
		farEnd = net.JoinHostPort(farEndIP, "5060")
	}
	return fmt.Sprintf(`account: acme
domain: acme.test
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:%s", inbound_from: [%s] }
users:
  alice: { extension: "101", password: pw-alice }
  bob: { extension: "102", password: pw-bob }
  carol: { extension: "103", password: pw-carol }
extensions:
  desk: { destination: "user:alice" }
  rota:
    type: group
    members: ["user:alice", "user:bob", "user:carol"]
    distribution: rotating
    timeout: 5s
  out: { destination: "+34600000003" }
numbers:
  %q: { extension: desk }
  %q: { extension: rota }
  %q: { extension: out }
`, farEnd, inboundFrom(), deskNumber, rotaNumber, outNumber)
}

// inboundFrom is the trunk's inbound_from: the carrier's address.
func inboundFrom() string {
	return `"` + carrierIP + `/32"`
}

// newPhone starts a phone for user on phoneIP that registers through the
// proxy and answers at once, playing freq.
func newPhone(t *testing.T, c *cluster, user, password string, freq float64) *testphone.Phone {
	t.Helper()
	p, err := testphone.New(ctxFor(t, 5*time.Second), testphone.Config{
		Name: user, User: user, Password: password, Domain: "acme.test",
		Registrar: c.Proxy, IP: netip.MustParseAddr(phoneIP), RTPPortMin: 47000, RTPPortMax: 47999,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.SetBehavior(testphone.Behavior{Play: testphone.Tone(freq)})
	if code, err := p.Register(ctxFor(t, 10*time.Second), time.Minute); err != nil {
		t.Fatalf("%s: REGISTER through Kamailio: %d %v", user, code, err)
	}
	return p
}

func newCarrierPhone(t *testing.T) *testphone.Phone {
	t.Helper()
	p, err := testphone.New(ctxFor(t, 5*time.Second), testphone.Config{
		Name: "carrier", User: "carrier", IP: netip.MustParseAddr(carrierIP), RTPPortMin: 48000, RTPPortMax: 48999,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// answeredBy is the node whose Contact is in a call's 200 OK.
func answeredBy(c *cluster, call *testphone.Call) *node {
	res := call.Response()
	if res == nil || res.Contact() == nil {
		return nil
	}
	a := res.Contact().Address
	return c.node(net.JoinHostPort(a.Host, strconv.Itoa(a.Port)))
}

// metric reads one sample of a node's /metrics (0 if absent).
func metric(t *testing.T, n *node, name string) float64 {
	t.Helper()
	res, err := (&http.Client{Timeout: 2 * time.Second}).Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.id, err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// nextIncoming waits for the phone's next incoming call.
func nextIncoming(ctx context.Context, p *testphone.Phone) (*testphone.Call, error) {
	select {
	case c := <-p.Incoming():
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no incoming call: %w", p.Config().Name, ctx.Err())
	}
}

// TestRegistrationServesCallOnOtherNode: alice registers through Kamailio,
// so through one node (its REGISTER's Call-ID picks it); the carrier's
// calls to her number arrive through Kamailio on each node in turn. The
// call that lands on the node that did not take her REGISTER finds her
// binding in the database and reaches her through her Path (Kamailio):
// she rings, answers, and audio flows both ways.
func TestRegistrationServesCallOnOtherNode(t *testing.T) {
	c := startCluster(t, clusterOptions{config: accountYAML("")})
	alice := newPhone(t, c, "alice", "pw-alice", 800)
	var registrar *node
	for _, n := range c.nodes {
		if metric(t, n, "switchboard_registrations_total") > 0 {
			if registrar != nil {
				t.Fatalf("both %s and %s count alice's registration", registrar.id, n.id)
			}
			registrar = n
		}
	}
	if registrar == nil {
		t.Fatal("no node counts alice's registration (switchboard_registrations_total)")
	}
	t.Logf("alice registered through Kamailio on %s", registrar.id)

	carrier := newCarrierPhone(t)
	served := map[string]bool{}
	for i := 0; i < 4 && len(served) < len(c.nodes); i++ {
		ctx := ctxFor(t, 15*time.Second)
		call, err := carrier.Dial(ctx, "sip:"+deskNumber+"@"+c.Proxy, testphone.DialOptions{
			FromUser: fmt.Sprintf("+3460000%04d", i), Play: testphone.Tone(1000)()})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		n := answeredBy(c, call)
		if n == nil {
			t.Fatalf("call %d: answered by no node of the cluster (Contact %v)", i, call.Response().Contact())
		}
		in, err := nextIncoming(ctx, alice)
		if err != nil {
			t.Fatalf("call %d on %s: %v", i, n.id, err)
		}
		if err := call.WaitForTone(ctx, 800, 200*time.Millisecond); err != nil {
			t.Errorf("call %d on %s: the carrier does not hear alice: %v", i, n.id, err)
		}
		if err := in.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
			t.Errorf("call %d on %s: alice does not hear the carrier: %v", i, n.id, err)
		}
		if err := call.Hangup(ctx); err != nil {
			t.Errorf("call %d: hangup: %v", i, err)
		}
		select {
		case <-in.Ended():
		case <-ctx.Done():
			t.Errorf("call %d: alice's leg did not end after the carrier hung up", i)
		}
		where := "the node that took her REGISTER"
		if n != registrar {
			where = "the other node"
		}
		t.Logf("call %d: arrived on %s (%s); alice rang, answered, audio both ways", i, n.id, where)
		served[n.id] = true
	}
	if len(served) < len(c.nodes) {
		t.Fatalf("the calls reached only %v: Kamailio did not spread them over the nodes", served)
	}
}

// TestRotatingGroupAcrossNodes: six calls to a rotating group arrive
// through Kamailio on the two nodes in turn; each starts one member
// further than the previous call did, whichever node it is on (the
// counter is in the database): every member is rung in turn, never twice
// in a row, and each call rings one member only (the first answers).
func TestRotatingGroupAcrossNodes(t *testing.T) {
	c := startCluster(t, clusterOptions{config: accountYAML("")})
	phones := make([]*testphone.Phone, len(users))
	for i, u := range users {
		phones[i] = newPhone(t, c, u.name, u.password, 800)
	}
	carrier := newCarrierPhone(t)
	var rung []int
	var nodes []string
	for i := range 6 {
		ctx := ctxFor(t, 15*time.Second)
		call, err := carrier.Dial(ctx, "sip:"+rotaNumber+"@"+c.Proxy, testphone.DialOptions{
			FromUser: fmt.Sprintf("+3460001%04d", i)})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		n := answeredBy(c, call)
		if n == nil {
			t.Fatalf("call %d: answered by no node of the cluster", i)
		}
		member := -1
		for j, p := range phones {
			select {
			case in := <-p.Incoming():
				if member >= 0 {
					t.Errorf("call %d rang both %s and %s", i, users[member].name, users[j].name)
				}
				member = j
				_ = in
			default:
			}
		}
		if member < 0 {
			t.Fatalf("call %d on %s was answered but no member rang", i, n.id)
		}
		if err := call.Hangup(ctx); err != nil {
			t.Errorf("call %d: hangup: %v", i, err)
		}
		t.Logf("call %d: %s rang %s", i, n.id, users[member].name)
		rung = append(rung, member)
		nodes = append(nodes, n.id)
	}
	for i := 1; i < len(rung); i++ {
		if want := (rung[i-1] + 1) % len(users); rung[i] != want {
			t.Errorf("call %d rang %s after %s: want %s", i, users[rung[i]].name, users[rung[i-1]].name, users[want].name)
		}
		if nodes[i] == nodes[i-1] {
			t.Errorf("calls %d and %d both on %s: they should alternate (round-robin)", i-1, i, nodes[i])
		}
	}
}
