package registrar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func TestRegister(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			ts := startServer(t)
			server := ts.UDP
			if transport == "TCP" {
				server = ts.TCP
			}
			p := newPhone(t, server, transport)

			req := p.register("alice", "Contact: <sip:alice@192.0.2.10:5062>", "User-Agent: DeskPhone 1.0")
			res := p.do(req)
			if res.StatusCode != sip.StatusUnauthorized {
				t.Fatalf("first REGISTER: got %d, want 401", res.StatusCode)
			}
			chal := challenge(t, res)
			if chal.Realm != testDomain || !chal.SupportsQOP("auth") || chal.Algorithm != "MD5" || chal.Stale {
				t.Fatalf("challenge = %+v", chal)
			}
			res = p.auth(req, res, "alice", "s3cret")
			if res.StatusCode != sip.StatusOK {
				t.Fatalf("REGISTER: got %d %s, want 200", res.StatusCode, res.Reason)
			}
			if got, want := contactExpires(t, res), map[string]int{"sip:alice@192.0.2.10:5062": 3600}; !reflect.DeepEqual(got, want) {
				t.Errorf("200 contacts = %v, want %v", got, want)
			}
			if res.GetHeader("Date") == nil {
				t.Error("200 OK has no Date header")
			}

			// The binding keeps where the REGISTER really came from, so the
			// device is reachable behind NAT (its Contact is a private
			// address here).
			via := req.Via()
			wantSource := net.JoinHostPort(via.Host, fmt.Sprint(via.Port))
			cs, err := ts.Reg.Lookup(context.Background(), testAccount, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 1 {
				t.Fatalf("Lookup = %+v, want 1 contact", cs)
			}
			c := cs[0]
			if c.Account != testAccount || c.User != "alice" || c.URI != "sip:alice@192.0.2.10:5062" ||
				c.Source != wantSource || c.Transport != transport || c.UserAgent != "DeskPhone 1.0" {
				t.Errorf("contact = %+v, want source %s transport %s", c, wantSource, transport)
			}
			if d := time.Until(c.Expires); d < 3590*time.Second || d > 3600*time.Second {
				t.Errorf("contact expires in %v, want ~1h", d)
			}
			out, err := c.NewRequest(sip.OPTIONS)
			if err != nil {
				t.Fatal(err)
			}
			if out.Destination() != wantSource || out.Transport() != transport || out.Recipient.Host != "192.0.2.10" {
				t.Errorf("NewRequest: destination %s transport %s uri %s", out.Destination(), out.Transport(), out.Recipient.String())
			}
			// OnRegister runs after the 200 OK has been sent.
			waitFor(t, "OnRegister(acme, alice)", func() bool {
				return slices.Equal(ts.registrations(), []string{"acme/alice"})
			})

			// A second device registering by extension number, with its
			// own expiry; both are listed.
			p2 := newPhone(t, server, transport)
			res = p2.registerOK(p2.register("101", "Contact: <sip:101@192.0.2.11:5060>;expires=600"), "101", "s3cret")
			want := map[string]int{"sip:alice@192.0.2.10:5062": 3600, "sip:101@192.0.2.11:5060": 600}
			if got := contactExpires(t, res); !reflect.DeepEqual(got, want) {
				t.Errorf("200 contacts = %v, want %v", got, want)
			}
		})
	}
}

func TestRegisterWrongPasswordLockout(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, func(c *serverConfig) { c.now = clock.Now })
	p := newPhone(t, ts.UDP, "UDP")

	req := p.register("alice", "Contact: <sip:alice@127.0.0.1:5099>")
	res := p.do(req)
	for i := 1; i <= 5; i++ {
		if res.StatusCode != sip.StatusUnauthorized {
			t.Fatalf("before attempt %d: got %d, want 401", i, res.StatusCode)
		}
		res = p.auth(req, res, "alice", "wrong")
		clock.Advance(time.Second)
	}
	if res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("5th failure: got %d %s, want 401", res.StatusCode, res.Reason)
	}
	// Locked out: even the right password, and any other request, get 403.
	if res = p.auth(req, res, "alice", "s3cret"); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("locked out: got %d, want 403", res.StatusCode)
	}
	if res = p.do(p.newRequest(sip.OPTIONS, "alice")); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("locked out OPTIONS: got %d, want 403", res.StatusCode)
	}
	if n := len(lookup(t, ts)); n != 0 {
		t.Fatalf("store has %d contacts", n)
	}
	clock.Advance(DefaultLockout - time.Minute)
	if res = p.resend(req); res.StatusCode != sip.StatusForbidden {
		t.Fatalf("still locked out: got %d, want 403", res.StatusCode)
	}

	clock.Advance(time.Minute)
	p.registerOK(p.register("alice", "Contact: <sip:alice@127.0.0.1:5099>"), "alice", "s3cret")
}

func TestRegisterFailuresOutsideWindowDoNotLock(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, func(c *serverConfig) { c.now = clock.Now })
	p := newPhone(t, ts.UDP, "UDP")
	req := p.register("alice", "Contact: <sip:alice@127.0.0.1:5099>")
	res := p.do(req)
	for i := 1; i <= 8; i++ {
		res = p.auth(req, res, "alice", "wrong")
		if res.StatusCode != sip.StatusUnauthorized {
			t.Fatalf("attempt %d: got %d, want 401", i, res.StatusCode)
		}
		clock.Advance(20 * time.Second) // 3 failures a minute
	}
	p.registerOK(p.register("alice", "Contact: <sip:alice@127.0.0.1:5099>"), "alice", "s3cret")
}

// shape is what a scanner can observe of a challenge, minus values that are
// random by design (nonce, tags).
type shape struct {
	Status  int
	Reason  string
	Headers []string
	Realm   string
	Algo    string
	QOP     []string
	Stale   bool
	Opaque  bool
}

func shapeOf(t *testing.T, res *sip.Response) shape {
	t.Helper()
	s := shape{Status: res.StatusCode, Reason: res.Reason}
	for _, h := range res.Headers() {
		s.Headers = append(s.Headers, h.Name())
	}
	if res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired {
		chal := challenge(t, res)
		s.Realm, s.Algo, s.QOP, s.Stale, s.Opaque = chal.Realm, chal.Algorithm, chal.QOP, chal.Stale, chal.Opaque != ""
	}
	return s
}

func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	attempt := func(aor, user, password string) shape {
		req := p.register(aor, "Contact: <sip:x@127.0.0.1:5099>")
		res := p.do(req)
		first := shapeOf(t, res)
		res = p.auth(req, res, user, password)
		got := shapeOf(t, res)
		if !reflect.DeepEqual(first, got) {
			t.Errorf("%s/%s: challenge after failure %+v differs from first challenge %+v", aor, user, got, first)
		}
		return got
	}
	wrong := attempt("alice", "alice", "guess")
	if wrong.Status != sip.StatusUnauthorized {
		t.Fatalf("wrong password: %+v", wrong)
	}
	for _, c := range [][3]string{
		{"alice", "nobody", "guess"}, // unknown auth user
		{"999", "999", "guess"},      // unknown extension
		{"101", "101", "guess"},      // known extension, wrong password
	} {
		if got := attempt(c[0], c[1], c[2]); !reflect.DeepEqual(got, wrong) {
			t.Errorf("%v: %+v, want the same as a wrong password: %+v", c, got, wrong)
		}
	}
	// Four failures so far from this address: one more locks it out,
	// whichever kind it is.
	if got := attempt("777", "777", "x"); got.Status != sip.StatusUnauthorized {
		t.Errorf("5th failure: %+v", got)
	}
	if res := p.do(p.register("alice")); res.StatusCode != sip.StatusForbidden {
		t.Errorf("after 5 failures: got %d, want 403", res.StatusCode)
	}
}

func TestStaleNonce(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, func(c *serverConfig) { c.now = clock.Now })
	p := newPhone(t, ts.UDP, "UDP")

	req := p.register("alice", "Contact: <sip:alice@127.0.0.1:5099>")
	first := p.do(req)
	clock.Advance(5*time.Minute + time.Second)

	// Right password, expired nonce: stale=true, and it is not a failure.
	authorize(t, req, first, "alice", "s3cret", 1, "c1")
	res := p.resend(req)
	if res.StatusCode != sip.StatusUnauthorized || !challenge(t, res).Stale {
		t.Fatalf("expired nonce: got %d stale=%v, want 401 stale=true", res.StatusCode, res.StatusCode == 401 && challenge(t, res).Stale)
	}
	// Wrong password with an expired nonce is just a failure: no stale,
	// which would tell a guesser the password was right.
	authorize(t, req, first, "alice", "guess", 1, "c2")
	if res := p.resend(req); res.StatusCode != sip.StatusUnauthorized || challenge(t, res).Stale {
		t.Fatalf("expired nonce, wrong password: got %d, want 401 without stale", res.StatusCode)
	}
	// The fresh nonce works.
	if res = p.auth(req, res, "alice", "s3cret"); res.StatusCode != sip.StatusOK {
		t.Fatalf("fresh nonce: got %d, want 200", res.StatusCode)
	}
}

func TestNonceCountReplay(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	req := p.register("alice", "Contact: <sip:alice@127.0.0.1:5099>")
	chal := p.do(req)

	authorize(t, req, chal, "alice", "s3cret", 1, "cn")
	if res := p.resend(req); res.StatusCode != sip.StatusOK {
		t.Fatalf("nc=1: got %d, want 200", res.StatusCode)
	}
	// The same Authorization again (a captured REGISTER replayed).
	res := p.resend(req)
	if res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("replayed nc=1: got %d, want 401", res.StatusCode)
	}
	if !challenge(t, res).Stale {
		t.Errorf("replay challenge should be stale=true (client may retry at once)")
	}
	// A lower count is a replay too; a higher one is fine.
	authorize(t, req, chal, "alice", "s3cret", 3, "cn")
	if res := p.resend(req); res.StatusCode != sip.StatusOK {
		t.Fatalf("nc=3: got %d, want 200", res.StatusCode)
	}
	authorize(t, req, chal, "alice", "s3cret", 2, "cn")
	if res := p.resend(req); res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("nc=2 after 3: got %d, want 401", res.StatusCode)
	}
	// Missing cnonce / nc is malformed: challenged (and counted).
	req.RemoveHeader("Authorization")
	req.AppendHeader(sip.NewHeader("Authorization", fmt.Sprintf(
		`Digest username="alice", realm="acme.test", nonce="%s", uri="%s", response="%s", qop=auth`,
		challenge(t, chal).Nonce, req.Recipient.Addr(), strings.Repeat("0", 32))))
	if res := p.resend(req); res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("no cnonce: got %d, want 401", res.StatusCode)
	}
}

func TestUnregister(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	reg := func(headers ...string) *sip.Response {
		return p.registerOK(p.register("alice", headers...), "alice", "s3cret")
	}
	reg("Contact: <sip:alice@127.0.0.1:5001>, <sip:alice@127.0.0.1:5002>", "Expires: 300")
	reg("Contact: <sip:alice@127.0.0.1:5003>")
	if n := len(lookup(t, ts)); n != 3 {
		t.Fatalf("%d contacts, want 3", n)
	}

	// expires=0 on one contact removes just that one.
	res := reg("Contact: <sip:alice@127.0.0.1:5001>;expires=0")
	want := map[string]int{"sip:alice@127.0.0.1:5002": 300, "sip:alice@127.0.0.1:5003": 3600}
	if got := contactExpires(t, res); !reflect.DeepEqual(got, want) {
		t.Fatalf("after expires=0: %v, want %v", got, want)
	}
	// Expires: 0 header removes the contacts listed.
	res = reg("Contact: <sip:alice@127.0.0.1:5002>", "Expires: 0")
	if got := contactExpires(t, res); len(got) != 1 {
		t.Fatalf("after Expires: 0: %v", got)
	}
	// A query (no Contact) lists without changing anything.
	res = reg()
	if got := contactExpires(t, res); len(got) != 1 {
		t.Fatalf("query: %v", got)
	}
	// "Contact: *" needs Expires: 0.
	req := p.register("alice", "Contact: *", "Expires: 60")
	if res := p.auth(req, p.do(req), "alice", "s3cret"); res.StatusCode != sip.StatusBadRequest {
		t.Fatalf("Contact: * with Expires: 60: got %d, want 400", res.StatusCode)
	}
	res = reg("Contact: *", "Expires: 0")
	if got := contactExpires(t, res); len(got) != 0 {
		t.Fatalf("after Contact: *: %v", got)
	}
	if n := len(lookup(t, ts)); n != 0 {
		t.Fatalf("%d contacts left", n)
	}
	// Removing bindings is not a registration.
	waitFor(t, "2 OnRegister calls", func() bool { return len(ts.registrations()) >= 2 })
	time.Sleep(50 * time.Millisecond)
	if got := ts.registrations(); len(got) != 2 {
		t.Errorf("OnRegister called %d times, want 2: %v", len(got), got)
	}
}

func lookup(t *testing.T, ts *testServer) []Contact {
	t.Helper()
	cs, err := ts.Reg.Lookup(context.Background(), testAccount, "alice")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestExpiresLimits(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")

	for _, hdrs := range [][]string{
		{"Contact: <sip:alice@127.0.0.1:5001>", "Expires: 30"},
		{"Contact: <sip:alice@127.0.0.1:5001>;expires=59", "Expires: 3600"},
		// One brief contact rejects the whole request.
		{"Contact: <sip:alice@127.0.0.1:5001>, <sip:alice@127.0.0.1:5002>;expires=1"},
	} {
		req := p.register("alice", hdrs...)
		res := p.auth(req, p.do(req), "alice", "s3cret")
		if res.StatusCode != sip.StatusIntervalToBrief {
			t.Fatalf("%v: got %d, want 423", hdrs, res.StatusCode)
		}
		if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "60" {
			t.Fatalf("%v: Min-Expires = %v, want 60", hdrs, h)
		}
	}
	if n := len(lookup(t, ts)); n != 0 {
		t.Fatalf("423 stored %d contacts", n)
	}

	res := p.registerOK(p.register("alice",
		"Contact: <sip:alice@127.0.0.1:5001>;expires=100000, <sip:alice@127.0.0.1:5002>;expires=60, <sip:alice@127.0.0.1:5003>",
		"Expires: 99999999999"), "alice", "s3cret")
	want := map[string]int{"sip:alice@127.0.0.1:5001": 7200, "sip:alice@127.0.0.1:5002": 60, "sip:alice@127.0.0.1:5003": 7200}
	if got := contactExpires(t, res); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestBindingExpiryReported: OnBindings reports a binding that lapses
// without a REGISTER, each time one does; a refresh moves the report, and
// Close stops them.
func TestBindingExpiryReported(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.minExpires = time.Second })
	p := newPhone(t, ts.UDP, "UDP")
	wait := func(want ...string) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			got := ts.bindingEvents()
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("bindings reported %v, want %v", got, want)
			}
		}
	}
	// The 200 goes out before the report, so each REGISTER's report is
	// awaited before the next is sent.
	p.registerOK(p.register("alice", "Contact: <sip:alice@127.0.0.1:5001>;expires=1, <sip:alice@127.0.0.1:5002>;expires=2"), "alice", "s3cret")
	wait("alice=2")
	p.registerOK(p.register("bob", "Contact: <sip:bob@127.0.0.1:5003>;expires=1"), "bob", "pw2")
	wait("alice=2", "bob=1")
	time.Sleep(600 * time.Millisecond)
	p.registerOK(p.register("bob", "Contact: <sip:bob@127.0.0.1:5003>;expires=1"), "bob", "pw2") // refreshed
	// alice's first binding lapses at 1 s, bob's (refreshed) at 1.6 s,
	// alice's second at 2 s.
	wait("alice=2", "bob=1", "bob=1", "alice=1", "bob=0", "alice=0")
	p.registerOK(p.register("bob", "Contact: <sip:bob@127.0.0.1:5003>;expires=1"), "bob", "pw2")
	ts.Reg.Close()
	time.Sleep(1500 * time.Millisecond)
	wait("alice=2", "bob=1", "bob=1", "alice=1", "bob=0", "alice=0", "bob=1")
}

func TestRegisterOtherUsersAOR(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	for _, aor := range []string{"bob", "102", "nobody"} {
		req := p.register(aor, "Contact: <sip:evil@127.0.0.1:5001>")
		res := p.auth(req, p.do(req), "alice", "s3cret")
		if res.StatusCode != sip.StatusForbidden {
			t.Fatalf("alice registering %s: got %d, want 403", aor, res.StatusCode)
		}
	}
	if cs, _ := ts.Reg.Lookup(context.Background(), testAccount, "bob"); len(cs) != 0 {
		t.Fatalf("bob has contacts %v", cs)
	}
}

func TestRegisterInstanceReplacesBinding(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	const inst = `+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"`
	p.registerOK(p.register("alice", "Contact: <sip:alice@127.0.0.1:5001>;"+inst), "alice", "s3cret")
	p.registerOK(p.register("alice", "Contact: <sip:alice@127.0.0.1:5009>"), "alice", "s3cret")
	// The same phone after a reboot, on a new port.
	res := p.registerOK(p.register("alice", "Contact: <sip:alice@127.0.0.1:6001>;"+inst), "alice", "s3cret")
	want := map[string]int{"sip:alice@127.0.0.1:6001": 3600, "sip:alice@127.0.0.1:5009": 3600}
	if got := contactExpires(t, res); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, c := range lookup(t, ts) {
		if c.URI == "sip:alice@127.0.0.1:6001" && c.InstanceID != "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF" {
			t.Errorf("instance = %q", c.InstanceID)
		}
	}
}

func TestRegisterMaxContacts(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	for i := range 12 {
		p.registerOK(p.register("alice", fmt.Sprintf("Contact: <sip:alice@127.0.0.1:%d>;expires=%d", 5000+i, 100+i)), "alice", "s3cret")
	}
	cs := lookup(t, ts)
	if len(cs) != 10 {
		t.Fatalf("%d contacts, want 10", len(cs))
	}
	for _, c := range cs {
		if c.URI == "sip:alice@127.0.0.1:5000" || c.URI == "sip:alice@127.0.0.1:5001" {
			t.Errorf("%s should have been evicted (closest to expiry)", c.URI)
		}
	}
}

func TestMalformedRegister(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.guard.MaxFailures = -1 })
	for _, tc := range []struct {
		name  string
		extra []string
		want  []int
	}{
		{"no contact no auth", nil, []int{401}},
		{"garbage authorization", []string{"Authorization: !!!garbage!!!"}, []int{400, 401}},
		{"basic auth", []string{"Authorization: Basic YWxpY2U6czNjcmV0"}, []int{400, 401}},
		{"empty digest", []string{"Authorization: Digest"}, []int{400, 401}},
		{"unterminated quote", []string{`Authorization: Digest username="alice, realm="acme.test`}, []int{400, 401}},
		{"bad nc", []string{`Authorization: Digest username="alice", realm="acme.test", nonce="x", uri="sip:a", response="00", qop=auth, nc=zz, cnonce="c"`}, []int{400, 401}},
		{"forged nonce", []string{`Authorization: Digest username="alice", realm="acme.test", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:a", response="00000000000000000000000000000000", qop=auth, nc=00000001, cnonce="c"`}, []int{401}},
		{"duplicate params", []string{`Authorization: Digest username="alice", username="bob", realm="acme.test"`}, []int{400, 401}},
		{"many headers", slices.Repeat([]string{"Authorization: Digest realm=\"acme.test\""}, 20), []int{400, 401}},
		{"huge header", []string{"Authorization: Digest username=\"" + strings.Repeat("a", 6000) + "\""}, []int{400, 401}},
		{"wildcard no expires", []string{"Contact: *"}, []int{400, 401}},
		{"bad expires", []string{"Contact: <sip:alice@127.0.0.1>", "Expires: soon"}, []int{401}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := rawExchange(t, ts.UDP, rawRegister(ts.UDP, tc.extra...), 2*time.Second)
			if res == nil {
				t.Fatal("no response")
			}
			t.Logf("%d %s", res.StatusCode, res.Reason)
			if !slices.Contains(tc.want, res.StatusCode) {
				t.Fatalf("got %d %s, want one of %v", res.StatusCode, res.Reason, tc.want)
			}
		})
	}

	// Requests sipgo cannot parse get no answer but do no harm.
	for _, raw := range []string{
		"REGISTER sip:x SIP/2.0\nVia: garbage\n\n",
		"REGISTER\n\n",
		"\x00\x01\x02 not sip at all",
		strings.Replace(rawRegister(ts.UDP), "To: <sip:alice@acme.test>\n", "", 1),
	} {
		res := rawExchange(t, ts.UDP, raw, 300*time.Millisecond)
		if res != nil && res.StatusCode != 400 {
			t.Errorf("%q: got %d", raw, res.StatusCode)
		}
		t.Logf("%.30q: %v", raw, res != nil)
	}
	// The server is still fine.
	p := newPhone(t, ts.UDP, "UDP")
	p.registerOK(p.register("alice", "Contact: <sip:alice@127.0.0.1:5001>"), "alice", "s3cret")
}

// TestRegisterHandlerMalformed drives HandleRegister directly with requests
// that are authenticated but otherwise wrong.
func TestRegisterHandlerMalformed(t *testing.T) {
	ts := startServer(t)
	send := func(raw string) *sip.Response {
		raw = strings.ReplaceAll(raw, "%LPORT%", "5060")
		req := parseRequest(t, raw, "192.0.2.1:5060")
		tx := newFakeTx()
		ts.Reg.HandleRegister(req, tx)
		res := tx.last()
		if res == nil || res.StatusCode != sip.StatusUnauthorized {
			t.Fatalf("first: %v, want 401", res)
		}
		req = parseRequest(t, raw, "192.0.2.1:5060")
		authorize(t, req, res, "alice", "s3cret", 1, "c")
		tx = newFakeTx()
		ts.Reg.HandleRegister(req, tx)
		if tx.last() == nil {
			t.Fatal("no response")
		}
		return tx.last()
	}
	for _, tc := range []struct {
		extra string
		want  int
	}{
		{"Contact: <tel:+34910000000>\n", 400},
		{"Contact: *, <sip:a@b>\nExpires: 0\n", 400},
		{"Contact: *\n", 400},
		{"Contact: *\nExpires: 0\n", 200},
		{"Contact: *\nExpires: 00\n", 200},
		{"Contact: *\nExpires: zero\n", 400},
		{"Contact: <sip:alice@192.0.2.1>;expires=abc\n", 200},
		{"Contact: <sip:alice@192.0.2.1>\nExpires: -5\n", 200},
		{"Contact: <sip:alice@192.0.2.1>;expires=0\nExpires: 30\n", 200},
		{strings.Repeat("Contact: <sip:alice@192.0.2.1>\n", 25), 403},
	} {
		res := send(rawRegister("127.0.0.1:5060", strings.TrimSuffix(tc.extra, "\n")))
		if res.StatusCode != tc.want {
			t.Errorf("%q: got %d %s, want %d", tc.extra, res.StatusCode, res.Reason, tc.want)
		}
	}
}

func TestMessageProxyAuth(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	req := p.newRequest(sip.MESSAGE, "102", "Content-Type: text/plain")
	req.SetBody([]byte("hello"))
	res := p.do(req)
	if res.StatusCode != sip.StatusProxyAuthRequired || res.GetHeader("Proxy-Authenticate") == nil || res.GetHeader("WWW-Authenticate") != nil {
		t.Fatalf("MESSAGE: got %d, want 407 with Proxy-Authenticate", res.StatusCode)
	}
	if chal := challenge(t, res); chal.Realm != testDomain {
		t.Fatalf("realm %q", chal.Realm)
	}
	res = p.auth(req, res, "102", "pw2")
	if res.StatusCode != sip.StatusOK {
		t.Fatalf("MESSAGE with credentials: got %d, want 200", res.StatusCode)
	}
	if h := res.GetHeader("X-Identity"); h == nil || h.Value() != "acme/bob/102" {
		t.Fatalf("identity = %v", h)
	}
	// Unknown user for MESSAGE: same 407.
	req = p.newRequest(sip.MESSAGE, "555")
	res = p.auth(req, p.do(req), "555", "x")
	if res.StatusCode != sip.StatusProxyAuthRequired {
		t.Fatalf("unknown user MESSAGE: got %d, want 407", res.StatusCode)
	}
}

func TestInviteProxyAuth(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	dialog := &sipgo.DialogUA{
		Client:     p.c,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "102", Host: "127.0.0.1", Port: 5099}},
	}
	invite := func(user, password string) *sip.Response {
		t.Helper()
		ctx := p.ctx()
		sess, err := dialog.WriteInvite(ctx, p.newRequest(sip.INVITE, "102"))
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: user, Password: password})
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) {
			t.Fatalf("WaitAnswer: %v, want a final error response", err)
		}
		return de.Res
	}
	if res := invite("", ""); res.StatusCode != sip.StatusProxyAuthRequired || res.GetHeader("Proxy-Authenticate") == nil {
		t.Fatalf("INVITE without credentials: %d, want 407 with Proxy-Authenticate", res.StatusCode)
	}
	// sipgo's WaitAnswer answers the 407 itself.
	res := invite("102", "pw2")
	if res.StatusCode != sip.StatusBusyHere {
		t.Fatalf("INVITE with credentials: %d, want 486 from the handler", res.StatusCode)
	}
	if h := res.GetHeader("X-Identity"); h == nil || h.Value() != "acme/bob/102" {
		t.Fatalf("identity = %v", h)
	}
	if res := invite("102", "wrong"); res.StatusCode != sip.StatusProxyAuthRequired {
		t.Fatalf("INVITE with a wrong password: %d, want 407", res.StatusCode)
	}
}

func TestFloodBanDropsFlood(t *testing.T) {
	clock := newFakeClock() // frozen: every request is in one window
	ts := startServer(t, func(c *serverConfig) {
		c.now = clock.Now
		c.guard.FloodRequests = 3
	})
	options := func(i int) string {
		return fmt.Sprintf(`OPTIONS sip:%s SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:%%LPORT%%;branch=z9hG4bK-flood-%d
Max-Forwards: 70
From: <sip:scanner@example.com>;tag=f%d
To: <sip:100@acme.test>
Call-ID: flood-%d
CSeq: 1 OPTIONS
Content-Length: 0

`, ts.UDP, i, i, i)
	}
	for i := range 3 {
		if res := rawExchange(t, ts.UDP, options(i), 3*time.Second); res == nil || res.StatusCode != sip.StatusOK {
			t.Fatalf("request %d within the burst: %v", i, res)
		}
	}
	for i := 3; i < 6; i++ {
		if res := rawExchange(t, ts.UDP, options(i), 300*time.Millisecond); res != nil {
			t.Fatalf("request %d over the limit answered %d", i, res.StatusCode)
		}
	}
	clock.Advance(5*time.Minute - time.Second)
	if res := rawExchange(t, ts.UDP, options(6), 300*time.Millisecond); res != nil {
		t.Fatalf("banned source answered %d", res.StatusCode)
	}
	clock.Advance(time.Second)
	if res := rawExchange(t, ts.UDP, options(7), 3*time.Second); res == nil {
		t.Fatal("no answer after the ban")
	}
}
