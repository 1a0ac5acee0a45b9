package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

const smsDoc = `
account: acme
domain: acme.test
defaults: { webhook: "WEBHOOK", trunk: carrier, allowed_destinations: ["+34*"] }
trunks:
  carrier: { address: "sip:127.0.0.3:5060", inbound_from: ["127.0.0.2/32"] }
users:
  alice: { extension: "101", password: "` + alicePW + `", sms: true }
  bob:   { extension: "102", password: "` + bobPW + `", sms: true }
extensions:
  team: { code: "20", members: ["user:alice", "user:bob"] }
numbers:
  "+34910000001": { extension: "user:alice", sms_extension: "user:alice" }
  "+34910000002": { extension: team, sms_extension: team }
  "+34910000003": { extension: team }
`

type messageOut struct {
	ID, Direction, Number, From, To, User, Body, State string
	Created                                            time.Time
	Deliveries                                         []struct {
		User, Device, State string
		Attempts            int
		Log                 []struct {
			Status int
			Error  string
		}
	}
}

// gotMessage waits for a MESSAGE at a phone.
func gotMessage(t *testing.T, p *testphone.Phone) *sip.Request {
	t.Helper()
	select {
	case req := <-p.Messages():
		return req
	case <-time.After(5 * time.Second):
		t.Fatalf("%s got no MESSAGE within 5s", p.Config().Name)
		return nil
	}
}

// TestMessages sends SMS in from the carrier, through the API and from
// one user to another, and reads them back from the message log and the
// webhooks.
func TestMessages(t *testing.T) {
	nodetest.EachDB(t, func(t *testing.T, db string) {
		var (
			mu    sync.Mutex
			hooks = map[string][]string{} // type -> message ids
		)
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var p events.Payload
			if json.Unmarshal(b, &p) == nil && strings.HasPrefix(p.Type, "message.") {
				var m struct{ ID string }
				_ = json.Unmarshal(p.Data, &m)
				mu.Lock()
				hooks[p.Type] = append(hooks[p.Type], m.ID)
				mu.Unlock()
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer recv.Close()
		srv := nodetest.Run(t, strings.Replace(smsDoc, "WEBHOOK", recv.URL+"/hook", 1), nodetest.Options{DB: db, TTS: stubTTS{}})
		c := newClient(t, srv, "acme", "sms", false, 4)
		alice := userPhone(t, srv, "alice", alicePW, testphone.Behavior{})
		bob := userPhone(t, srv, "bob", bobPW, testphone.Behavior{})
		carrier := carrierPhone(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		// From the carrier to alice's number.
		if code, err := carrier.SendMessage(ctx, "sip:34910000001@"+srv.SIPAddr, "hello alice", testphone.DialOptions{FromUser: "+34911111111"}); code != 202 {
			t.Fatalf("carrier MESSAGE: %d, %v; want 202", code, err)
		}
		req := gotMessage(t, alice)
		if string(req.Body()) != "hello alice" || !strings.Contains(req.From().Address.String(), "+34911111111") {
			t.Errorf("alice got %q from %s", req.Body(), req.From().Address.String())
		}

		// Through the API, to the team's number.
		var posted messageOut
		want(t, c.do("POST", "/acme/messages", map[string]string{"number": "34910000002", "from": "+34911111112", "body": "hi team ✓"}), 202).decode(t, &posted)
		if posted.ID == "" || posted.Direction != "inbound" || posted.Number != "+34910000002" || posted.State != "queued" || posted.Body != "hi team ✓" {
			t.Errorf("POST messages = %+v", posted)
		}
		for _, p := range []*testphone.Phone{alice, bob} {
			if req := gotMessage(t, p); string(req.Body()) != "hi team ✓" {
				t.Errorf("%s got %q", p.Config().Name, req.Body())
			}
		}
		wantPaths(t, c.do("POST", "/acme/messages", map[string]string{"number": "+34910000003", "from": "+34911111112", "body": "x"}), 404, "number")
		wantPaths(t, c.do("POST", "/acme/messages", map[string]string{"number": "+34910000002", "from": "+34911111112", "body": strings.Repeat("x", 1401)}), 413, "body")
		wantPaths(t, c.do("POST", "/acme/messages", map[string]string{"number": "+34910000002", "from": "+34911111112"}), 400, "body")

		// alice to bob by his extension: internal.
		if code, err := alice.SendMessage(ctx, "sip:102@"+srv.SIPAddr, "lunch?", testphone.DialOptions{}); code != 202 {
			t.Fatalf("alice MESSAGE to 102: %d, %v; want 202", code, err)
		}
		if req := gotMessage(t, bob); string(req.Body()) != "lunch?" || req.From().Address.User != "101" {
			t.Errorf("bob got %q from %s", req.Body(), req.From().Address.String())
		}
		// alice to a number outside allowed_destinations.
		if code, _ := alice.SendMessage(ctx, "sip:+15550100@"+srv.SIPAddr, "abroad", testphone.DialOptions{}); code != 403 {
			t.Errorf("alice MESSAGE abroad: %d; want 403", code)
		}

		// The log: every message delivered.
		var page struct {
			Messages []messageOut
			Next     string
		}
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			want(t, c.do("GET", "/acme/messages?state=delivered", nil), 200).decode(t, &page)
			if len(page.Messages) == 3 {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("delivered messages: %+v", page.Messages)
			}
		}
		if m := page.Messages[0]; m.Direction != "internal" || m.User != "alice" || m.From != "101" || m.To != "102" {
			t.Errorf("newest message = %+v", m)
		}
		for _, tc := range []struct {
			query string
			n     int
		}{
			{"", 3},
			{"?direction=inbound", 2},
			{"?direction=internal", 1},
			{"?user=bob", 2},
			{"?user=alice", 3},
			{"?number=%2B34910000001", 1},
			{"?number=34910000002", 1},
			{"?state=queued", 0},
			{"?from=" + posted.Created.Add(-time.Millisecond).Format(time.RFC3339Nano), 2},
			{"?to=" + posted.Created.Format(time.RFC3339Nano), 1},
		} {
			want(t, c.do("GET", "/acme/messages"+tc.query, nil), 200).decode(t, &page)
			if len(page.Messages) != tc.n {
				t.Errorf("GET messages%s: %d messages, want %d", tc.query, len(page.Messages), tc.n)
			}
		}
		wantPaths(t, c.do("GET", "/acme/messages?state=sent", nil), 400, "state")
		wantPaths(t, c.do("GET", "/acme/messages?direction=up", nil), 400, "direction")
		seen := map[string]bool{}
		for q, pages := "?limit=1", 0; pages < 5; pages++ {
			want(t, c.do("GET", "/acme/messages"+q, nil), 200).decode(t, &page)
			for _, m := range page.Messages {
				seen[m.ID] = true
			}
			if page.Next == "" {
				if pages != 2 || len(seen) != 3 {
					t.Errorf("pages of 1: %d pages, %d messages", pages+1, len(seen))
				}
				break
			}
			q = "?limit=1&cursor=" + page.Next
		}

		var one messageOut
		want(t, c.do("GET", "/acme/messages/"+posted.ID, nil), 200).decode(t, &one)
		if one.State != "delivered" || len(one.Deliveries) != 2 {
			t.Fatalf("messages/%s = %+v", posted.ID, one)
		}
		for _, d := range one.Deliveries {
			if d.State != "delivered" || d.Device == "" || len(d.Log) == 0 || d.Log[len(d.Log)-1].Status != 200 {
				t.Errorf("delivery = %+v", d)
			}
		}
		want(t, c.do("GET", "/acme/messages/nope", nil), 404)

		// The webhooks: received and delivered for each.
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			r, d := len(hooks["message.received"]), len(hooks["message.delivered"])
			mu.Unlock()
			if r == 3 && d == 3 {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("webhooks: %d message.received, %d message.delivered; want 3 and 3", r, d)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(strings.Join(hooks["message.delivered"], " "), posted.ID) {
			t.Errorf("no message.delivered for %s: %v", posted.ID, hooks)
		}
	})
}

// TestMessagesTwoNodes: two nodes on one PostgreSQL database. Messages
// accepted by either are delivered to a device registered on the other,
// each exactly once.
func TestMessagesTwoNodes(t *testing.T) {
	db := nodetest.PostgresURL(t)
	a := nodetest.Run(t, strings.Replace(smsDoc, "WEBHOOK", "", 1), nodetest.Options{DB: db, TTS: stubTTS{}})
	b := nodetest.Run(t, "", nodetest.Options{DB: db, TTS: stubTTS{}})
	alice := userPhone(t, b, "alice", alicePW, testphone.Behavior{}) // registered through b
	bob := userPhone(t, a, "bob", bobPW, testphone.Behavior{})       // through a
	carrier := carrierPhone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 5
	for i := range n {
		if code, err := carrier.SendMessage(ctx, "sip:+34910000001@"+a.SIPAddr, "to a", testphone.DialOptions{FromUser: "+34911111111"}); code != 202 {
			t.Fatalf("MESSAGE %d to node a: %d, %v", i, code, err)
		}
	}
	cb := newClient(t, b, "acme", "sms-b", false, 1)
	for range n {
		want(t, cb.do("POST", "/acme/messages", map[string]string{"number": "+34910000002", "from": "+34911111112", "body": "to b"}), 202)
	}
	count := func(p *testphone.Phone, body string, want int) {
		t.Helper()
		got := 0
		quiet := time.After(10 * time.Second)
		for got < want {
			select {
			case req := <-p.Messages():
				if string(req.Body()) == body {
					got++
				}
				t.Logf("%s got %q (Call-ID %s, CSeq %s)", p.Config().Name, req.Body(), req.CallID().Value(), req.CSeq().Value())
			case <-quiet:
				t.Fatalf("%s got %d %q, want %d", p.Config().Name, got, body, want)
			}
		}
	}
	count(alice, "to a", n)
	count(alice, "to b", n)
	count(bob, "to b", n)
	// Nothing twice: no more MESSAGEs for a while.
	select {
	case req := <-alice.Messages():
		t.Errorf("alice got one more: %q (Call-ID %s, CSeq %s)", req.Body(), req.CallID().Value(), req.CSeq().Value())
	case req := <-bob.Messages():
		t.Errorf("bob got one more: %q (Call-ID %s, CSeq %s)", req.Body(), req.CallID().Value(), req.CSeq().Value())
	case <-time.After(1500 * time.Millisecond):
	}
	ca := newClient(t, a, "acme", "sms-a", false, 1)
	var page struct{ Messages []messageOut }
	want(t, ca.do("GET", "/acme/messages?state=delivered&limit=100", nil), 200).decode(t, &page)
	if len(page.Messages) != 2*n {
		t.Errorf("%d delivered messages, want %d", len(page.Messages), 2*n)
	}
}

// refusingTrunk is a carrier's SIP side that answers every MESSAGE 403
// Forbidden; it returns its address and the MESSAGEs it got.
func refusingTrunk(t *testing.T) (string, chan *sip.Request) {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("refusing-trunk"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close(); uc.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *sip.Request, 8)
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", nil))
		select {
		case got <- req:
		default:
		}
	})
	go func() { _ = srv.ServeUDP(uc) }()
	return uc.LocalAddr().String(), got
}

// TestMessageFailedWebhook: alice's SMS to an external number, which the
// carrier refuses (403): the message fails at once, and message.failed,
// about it and in state failed, reaches the account's webhook receiver
// signed with the secret the API rotated to, after message.received.
func TestMessageFailedWebhook(t *testing.T) {
	nodetest.EachDB(t, func(t *testing.T, db string) {
		type hook struct {
			p         events.Payload
			body, sig string
		}
		hooks := make(chan hook, 16)
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var p events.Payload
			if json.Unmarshal(b, &p) == nil && strings.HasPrefix(p.Type, "message.") {
				hooks <- hook{p, string(b), r.Header.Get(events.SignatureHeader)}
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer recv.Close()
		trunk, trunkGot := refusingTrunk(t)
		doc := strings.Replace(smsDoc, "WEBHOOK", recv.URL+"/hook", 1)
		doc = strings.Replace(doc, `address: "sip:127.0.0.3:5060"`, `address: "sip:`+trunk+`"`, 1)
		srv := nodetest.Run(t, doc, nodetest.Options{DB: db, TTS: stubTTS{}})
		c := newClient(t, srv, "acme", "sms-failed", false, 1)
		var rot struct{ Secret string }
		want(t, c.do("POST", "/acme/webhook/secret", nil), 200).decode(t, &rot)
		alice := userPhone(t, srv, "alice", alicePW, testphone.Behavior{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if code, err := alice.SendMessage(ctx, "sip:+34600000003@"+srv.SIPAddr, "refused by the carrier", testphone.DialOptions{}); code != 202 {
			t.Fatalf("alice's MESSAGE: %d, %v; want 202", code, err)
		}
		select {
		case req := <-trunkGot:
			if req.From().Address.User != "+34910000001" || req.Recipient.User != "+34600000003" {
				t.Errorf("the trunk got a MESSAGE from %s to %s", req.From().Address.String(), req.Recipient.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the trunk got no MESSAGE")
		}
		var types []string
		var failed struct {
			ID, State, Direction, From, To, Body string
		}
		for failed.ID == "" {
			select {
			case h := <-hooks:
				types = append(types, h.p.Type)
				if err := events.Verify(h.sig, []byte(h.body), [][]byte{[]byte(rot.Secret)}, time.Now(), time.Minute); err != nil {
					t.Errorf("%s: signature %q does not verify with the rotated secret: %v", h.p.Type, h.sig, err)
				}
				if h.p.Type == "message.failed" {
					if err := json.Unmarshal(h.p.Data, &failed); err != nil || failed.ID == "" {
						t.Fatalf("message.failed data %s: %v", h.p.Data, err)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no message.failed within 10 s; got %v", types)
			}
		}
		if fmt.Sprint(types) != "[message.received message.failed]" {
			t.Errorf("events %v; want message.received, then message.failed", types)
		}
		var m messageOut
		want(t, c.do("GET", "/acme/messages/"+failed.ID, nil), 200).decode(t, &m)
		if failed.State != "failed" || m.State != "failed" || failed.Direction != "outbound" || failed.From != "+34910000001" ||
			failed.To != "+34600000003" || failed.Body != "refused by the carrier" {
			t.Errorf("message.failed data %+v; the message is %s", failed, m.State)
		}
		if len(m.Deliveries) != 1 || m.Deliveries[0].Attempts != 1 || m.Deliveries[0].Log[0].Status != 403 {
			t.Errorf("deliveries %+v; want one attempt, answered 403", m.Deliveries)
		}
	})
}
