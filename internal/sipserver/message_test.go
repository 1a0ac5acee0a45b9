package sipserver

// SMS on the wire: sipp plays the carrier sending MESSAGEs, the phones
// that register and receive them, a user sending one and the carrier
// taking it. The server is the harness's with the internal/sms service
// attached, as internal/node attaches it.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/sms"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// smsScenarios is where the MESSAGE scenarios are, relative to the
// top-level testdata/sipp that sippScenario reads.
const smsScenarios = "../../internal/sipserver/testdata/sipp/"

// startSMS starts a harness server with an SMS service that retries on
// schedule (and polls every 20 ms).
func startSMS(t *testing.T, doc string, schedule sms.Schedule) *harness {
	t.Helper()
	h := startServer(t, doc)
	attachSMS(t, h, schedule, 3*time.Second)
	return h
}

// attachSMS starts an SMS service on h's server (deliveries taken for
// lease).
func attachSMS(t *testing.T, h *harness, schedule sms.Schedule, lease time.Duration) {
	t.Helper()
	svc := sms.New(sms.Config{Store: h.st, Accounts: h.srv.accts, Devices: h.srv.Devices(), Client: h.srv.DialogUA().Client,
		Log: h.srv.log, Schedule: schedule, Poll: 20 * time.Millisecond, Lease: lease, Timeout: 3 * time.Second})
	h.srv.SetMessages(svc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

var (
	fastRetry = sms.Schedule{Steps: []time.Duration{50 * time.Millisecond}, Every: 100 * time.Millisecond, For: time.Minute}
	slowRetry = sms.Schedule{Steps: []time.Duration{time.Hour}, Every: time.Hour, For: 72 * time.Hour}
)

// smsDoc: the carrier sends from loopback; +34910000000 takes SMS for
// alice, +34910000001 for the group team (alice, bob), +34910000002 takes
// calls only.
const smsDoc = `account: acme
domain: acme.test
trunks:
  carrier: { address: "sip:127.0.0.1:9", inbound_from: ["127.0.0.1/32"] }
users:
  alice: { extension: "101", password: s3cret, sms: true }
  bob: { extension: "102", password: b0bpass, sms: true }
extensions:
  team: { code: "20", members: [user:alice, user:bob] }
numbers:
  "+34910000000": { extension: "user:alice", sms_extension: "user:alice" }
  "+34910000001": { extension: team, sms_extension: team }
  "+34910000002": { extension: "user:bob" }
`

// smsDevice starts a phone for user: a sipp UAS that takes MESSAGEs
// (scenario), registered on its port by a second sipp.
func smsDevice(ctx context.Context, t *testing.T, h *harness, name, user, password, scenario string) *sipp {
	t.Helper()
	phone := startSipp(ctx, t, name, sippOptions{scenario: smsScenarios + scenario})
	reg := startSipp(ctx, t, name+"-register", sippOptions{
		scenario: "register_contact.xml", remote: h.addr, service: user,
		keys: map[string]string{"domain": "acme.test", "contact_port": strconv.Itoa(phone.port)},
		args: []string{"-au", user, "-ap", password},
	})
	reg.expectSuccess()
	return phone
}

// carrierSMS sends a MESSAGE from the carrier (times 1, or 2: the same
// one again on a new transaction) and returns the status it was answered
// with.
func carrierSMS(ctx context.Context, t *testing.T, h *harness, to, ctype, body string, times int) int {
	t.Helper()
	scenario := "message_trunk.xml"
	if times == 2 {
		scenario = "message_trunk_twice.xml"
	}
	uac := startSipp(ctx, t, "carrier", sippOptions{
		scenario: smsScenarios + scenario, remote: h.addr, service: to,
		keys: map[string]string{"from": "+34911111111", "ctype": ctype, "body": body},
	})
	uac.expectSuccess()
	if sent := uac.sent("MESSAGE "); len(sent) != times ||
		(times == 2 && sent[0].header("Via") == sent[1].header("Via")) {
		t.Fatalf("carrier sent %d MESSAGEs (want %d, each on its own branch)", len(sent), times)
	}
	var code int
	answers := uac.received("SIP/2.0 ")
	if len(answers) != times {
		t.Errorf("carrier got %d answers, want %d", len(answers), times)
	}
	for _, m := range answers {
		c, _ := strconv.Atoi(strings.Fields(m.line())[1])
		if code != 0 && c != code {
			t.Errorf("answered %d, then %d", code, c)
		}
		code = c
	}
	return code
}

// smsMessages lists acme's messages, newest first.
func smsMessages(t *testing.T, h *harness) []store.Message {
	t.Helper()
	ms, _, err := h.st.Messages(context.Background(), store.MessageFilter{Account: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// waitMessage waits until acme's newest message is in state, and returns
// it with its deliveries.
func waitMessage(t *testing.T, h *harness, state string, delivered int) *store.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var m *store.Message
		if ms := smsMessages(t, h); len(ms) > 0 {
			var err error
			if m, err = h.st.Message(context.Background(), "acme", ms[0].ID); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, d := range m.Deliveries {
				if d.State == store.MessageDelivered {
					n++
				}
			}
			if m.State == state && n >= delivered {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in state %s with %d deliveries delivered within 10s: %+v", state, delivered, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDeviceGot checks the MESSAGE a phone received.
func checkDeviceGot(t *testing.T, phone *sipp, user, from, body string) {
	t.Helper()
	m := phone.mustReceive("MESSAGE ")
	if !strings.Contains(m.header("From"), "sip:"+from+"@acme.test") || !strings.Contains(m.header("To"), "sip:"+user+"@acme.test") {
		t.Errorf("%s got From %q To %q; want %s to %s", phone.name, m.header("From"), m.header("To"), from, user)
	}
	if !strings.HasPrefix(m.header("Content-Type"), "text/plain") || !strings.Contains(m.text, body) {
		t.Errorf("%s got %q", phone.name, m.text)
	}
}

func TestSMSFromTrunkToUserWithTwoDevices(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startSMS(t, smsDoc, fastRetry)
	desk := smsDevice(ctx, t, h, "desk", "alice", "s3cret", "message_device.xml")
	mobile := smsDevice(ctx, t, h, "mobile", "alice", "s3cret", "message_device.xml")
	if code := carrierSMS(ctx, t, h, "+34910000000", "text/plain;charset=UTF-8", "hello from the carrier ✓", 1); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	desk.expectSuccess()
	mobile.expectSuccess()
	checkDeviceGot(t, desk, "alice", "+34911111111", "hello from the carrier ✓")
	checkDeviceGot(t, mobile, "alice", "+34911111111", "hello from the carrier ✓")
	m := waitMessage(t, h, store.MessageDelivered, 2)
	if m.Direction != store.DirectionInbound || m.Number != "+34910000000" || m.From != "+34911111111" ||
		strings.TrimSpace(m.Body) != "hello from the carrier ✓" || len(m.Deliveries) != 2 {
		t.Errorf("message = %+v", m)
	}
	for _, d := range m.Deliveries {
		if d.User != "alice" || d.Attempts != 1 || d.Log[0].Status != 200 {
			t.Errorf("delivery = %+v", d)
		}
	}
}

func TestSMSFromTrunkToGroup(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startSMS(t, smsDoc, fastRetry)
	alice := smsDevice(ctx, t, h, "alice", "alice", "s3cret", "message_device.xml")
	bob := smsDevice(ctx, t, h, "bob", "bob", "b0bpass", "message_device.xml")
	if code := carrierSMS(ctx, t, h, "34910000001", "text/plain", "to the team", 1); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	alice.expectSuccess()
	bob.expectSuccess()
	checkDeviceGot(t, alice, "alice", "+34911111111", "to the team")
	checkDeviceGot(t, bob, "bob", "+34911111111", "to the team")
	m := waitMessage(t, h, store.MessageDelivered, 2)
	if m.Number != "+34910000001" {
		t.Errorf("number %q: the Request-URI is normalised as for calls", m.Number)
	}
}

func TestSMSOfflineUserGetsItOnRegistering(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	// Retries an hour apart: only the registration can deliver it in time.
	h := startSMS(t, smsDoc, slowRetry)
	if code := carrierSMS(ctx, t, h, "+34910000000", "text/plain", "while you were out", 1); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	// The worker looks for a device, finds none and waits.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := h.st.Message(context.Background(), "acme", smsMessages(t, h)[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Deliveries) == 1 && m.Deliveries[0].Attempts == 1 {
			if d := m.Deliveries[0]; m.State != store.MessageQueued || d.Device != "" || d.Log[0].Error != "no registered device" {
				t.Fatalf("offline: message %s, delivery %+v", m.State, d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attempt recorded: %+v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
	phone := smsDevice(ctx, t, h, "phone", "alice", "s3cret", "message_device.xml")
	phone.expectSuccess()
	checkDeviceGot(t, phone, "alice", "+34911111111", "while you were out")
	m := waitMessage(t, h, store.MessageDelivered, 1)
	if d := m.Deliveries[0]; !strings.Contains(d.Device, strconv.Itoa(phone.port)) || d.Attempts != 2 {
		t.Errorf("delivery = %+v; want it to the phone's Contact, on the second attempt", d)
	}
}

func TestSMSDeviceAnswers480Then200(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startSMS(t, smsDoc, fastRetry)
	phone := smsDevice(ctx, t, h, "phone", "alice", "s3cret", "message_device_480.xml")
	if code := carrierSMS(ctx, t, h, "+34910000000", "text/plain", "try again", 1); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	phone.expectSuccess()
	m := waitMessage(t, h, store.MessageDelivered, 1)
	d := m.Deliveries[0]
	if d.Attempts != 2 || d.Log[0].Status != 480 || d.Log[0].Error != "480 Temporarily Unavailable" || d.Log[1].Status != 200 {
		t.Errorf("delivery = %+v; want 480 then 200", d)
	}
	got := phone.received("MESSAGE ")
	if len(got) != 2 || got[0].header("Call-ID") != got[1].header("Call-ID") || got[0].header("CSeq") == got[1].header("CSeq") {
		t.Errorf("the retry is not the same Call-ID with the next CSeq: %d MESSAGEs", len(got))
	}
}

func TestSMSRefused(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startSMS(t, smsDoc, fastRetry)
	for _, c := range []struct {
		name, to, ctype, body string
		want                  int
	}{
		{"oversized", "+34910000000", "text/plain", strings.Repeat("x", sms.MaxBody+1), 413},
		{"content type", "+34910000000", "application/vnd.3gpp.sms", "binary", 415},
		{"unknown number", "+34919999999", "text/plain", "hi", 404},
		{"number without sms", "+34910000002", "text/plain", "hi", 404},
	} {
		if got := carrierSMS(ctx, t, h, c.to, c.ctype, c.body, 1); got != c.want {
			t.Errorf("%s: answered %d, want %d", c.name, got, c.want)
		}
	}
	if ms := smsMessages(t, h); len(ms) != 0 {
		t.Errorf("refused messages were stored: %+v", ms)
	}
	// From an address that is no trunk's, naming no domain of ours.
	other := startSMS(t, strings.Replace(smsDoc, "127.0.0.1/32", "192.0.2.1/32", 1), fastRetry)
	if got := carrierSMS(ctx, t, other, "+34910000000", "text/plain", "hi", 1); got != 403 {
		t.Errorf("untrusted source: answered %d, want 403", got)
	}
}

func TestSMSRetransmissionStoredOnce(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startSMS(t, smsDoc, slowRetry)
	if code := carrierSMS(ctx, t, h, "+34910000000", "text/plain", "only once", 2); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	if ms := smsMessages(t, h); len(ms) != 1 {
		t.Fatalf("%d messages stored for one MESSAGE sent twice, want 1", len(ms))
	}
}

// smsOutboundDoc: alice's number is +34910000000; the carrier takes SMS
// at carrier with digest auth, and sends from an address that is not
// loopback (so that the users' MESSAGEs are not taken for the carrier's).
func smsOutboundDoc(carrier string) string {
	return fmt.Sprintf(`account: acme
domain: acme.test
defaults: { trunk: carrier, service_number: "+34910000009", allowed_destinations: ["+34*"] }
trunks:
  carrier: { address: "sip:%s", username: acme, password: secret, inbound_from: ["192.0.2.1/32"] }
users:
  alice: { extension: "101", password: s3cret, sms: true }
  bob: { extension: "102", password: b0bpass, sms: true }
numbers:
  "+34910000000": { extension: "user:alice", sms_extension: "user:alice" }
`, carrier)
}

// userSMS sends a MESSAGE as user from sipp, on the address of a phone of
// the user's that registers first (only a registered source may send as a
// user), and returns the final answer's code.
func userSMS(ctx context.Context, t *testing.T, h *harness, user, password, to, body string) int {
	t.Helper()
	p := newPhone(t, testphone.Config{Name: user, User: user, Password: password, Domain: "acme.test", Registrar: h.addr})
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if code, err := p.Register(rctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register %s: %d %v", user, code, err)
	}
	uac := startSipp(ctx, t, user+"-sends", sippOptions{
		scenario: smsScenarios + "message_user.xml", remote: h.addr, service: to,
		keys: map[string]string{"user": user, "domain": "acme.test", "body": body},
		args: []string{"-au", user, "-ap", password},
	})
	uac.expectSuccess()
	res := uac.received("SIP/2.0 ")
	if len(res) == 0 {
		return 0
	}
	code, _ := strconv.Atoi(strings.Fields(res[len(res)-1].line())[1])
	return code
}

func TestSMSFromUserThroughTrunk(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	carrier := startSipp(ctx, t, "carrier", sippOptions{scenario: smsScenarios + "message_trunk_auth.xml"})
	h := startSMS(t, smsOutboundDoc(carrier.uasAddr()), fastRetry)
	if code := userSMS(ctx, t, h, "alice", "s3cret", "+34600000003", "out to the world"); code != 202 {
		t.Fatalf("alice's MESSAGE answered %d, want 202", code)
	}
	carrier.expectSuccess()
	m := waitMessage(t, h, store.MessageDelivered, 1)
	if m.Direction != store.DirectionOutbound || m.From != "+34910000000" || m.To != "+34600000003" || m.Sender != "alice" {
		t.Errorf("message = %+v", m)
	}
	got := carrier.received("MESSAGE ")
	if len(got) != 2 {
		t.Fatalf("carrier got %d MESSAGEs, want 2 (the challenged one and the authenticated one)", len(got))
	}
	if line := got[0].line(); !strings.HasPrefix(line, "MESSAGE sip:+34600000003@") {
		t.Errorf("Request-URI %q", line)
	}
	if from := got[1].header("From"); !strings.Contains(from, "sip:+34910000000@acme.test") {
		t.Errorf("From %q; want alice's number", from)
	}
	cred := sippDigestParams(got[1].header("Authorization"))
	if cred["username"] != "acme" || cred["realm"] != "carrier" || cred["response"] != sippDigestResponse(cred, "MESSAGE", "secret") {
		t.Errorf("Authorization %q does not answer the challenge as acme", got[1].header("Authorization"))
	}
	if d := m.Deliveries[0]; d.Trunk != "carrier" || d.Log[0].Status != 202 {
		t.Errorf("delivery = %+v", d)
	}
}

func TestSMSFromUserRefusedAndInternal(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startSMS(t, smsOutboundDoc("127.0.0.1:9"), fastRetry)
	if code := userSMS(ctx, t, h, "alice", "s3cret", "+15550100", "abroad"); code != 403 {
		t.Errorf("a destination outside allowed_destinations: %d, want 403", code)
	}
	if ms := smsMessages(t, h); len(ms) != 0 {
		t.Errorf("a refused message was stored: %+v", ms)
	}
	bob := smsDevice(ctx, t, h, "bob", "bob", "b0bpass", "message_device.xml")
	if code := userSMS(ctx, t, h, "alice", "s3cret", "102", "hi bob"); code != 202 {
		t.Fatalf("alice to 102: %d, want 202", code)
	}
	bob.expectSuccess()
	checkDeviceGot(t, bob, "bob", "101", "hi bob")
	m := waitMessage(t, h, store.MessageDelivered, 1)
	if m.Direction != store.DirectionInternal || m.Sender != "alice" || m.To != "102" {
		t.Errorf("message = %+v", m)
	}
}

// TestSMSQueuedSurvivesRestart: a node was killed with two messages in
// the database, one of them taken for an attempt it never finished. The
// next node to run delivers both: the due one at start, the taken one
// when its lease is over. (The kill is simulated by the claim left
// behind: the service is started on a database in that state.)
func TestSMSQueuedSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	doc := smsDoc + `  "+34910000003": { extension: "user:bob", sms_extension: "user:bob" }` + "\n"
	h := startServer(t, doc) // no SMS service yet: the node that died
	alice := smsDevice(ctx, t, h, "alice", "alice", "s3cret", "message_device.xml")
	bob := smsDevice(ctx, t, h, "bob", "bob", "b0bpass", "message_device.xml")
	snap := h.srv.accts.View()
	acct, _ := snap.Account("acme")
	now := time.Now()
	for _, to := range []string{"+34910000000", "+34910000003"} {
		p, err := sms.Inbound(acct.Snap.Doc(), to, "+34911111111", "text/plain", []byte("before the crash "+to), "", now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.st.InsertMessage(ctx, &p.Message, p.Deliveries, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The dead node had taken one of them for an attempt, for 700 ms.
	due, err := h.st.TakeDueDeliveries(ctx, now, 700*time.Millisecond, 1)
	if err != nil || len(due) != 1 {
		t.Fatalf("take: %+v, %v", due, err)
	}
	taken := due[0].Message.To
	attachSMS(t, h, slowRetry, 700*time.Millisecond) // the restarted node
	alice.expectSuccess()
	bob.expectSuccess()
	var ms []store.Message
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms = smsMessages(t, h)
		if len(ms) == 2 && ms[0].State == store.MessageDelivered && ms[1].State == store.MessageDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages after the restart: %+v", ms)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range ms {
		if m.To == taken && m.Updated.Sub(now) < 700*time.Millisecond {
			t.Errorf("the taken message was delivered %v after the crash, before its lease ended", m.Updated.Sub(now))
		}
	}
	checkDeviceGot(t, alice, "alice", "+34911111111", "before the crash")
	checkDeviceGot(t, bob, "bob", "+34911111111", "before the crash")
}

// instanceRegister registers (expires "0": unregisters) a phone of user
// by its RFC 5626 instance, its Contact on port.
func instanceRegister(ctx context.Context, t *testing.T, h *harness, name, user, password, instance string, port int, expires string) {
	t.Helper()
	reg := startSipp(ctx, t, name+"-register", sippOptions{
		scenario: smsScenarios + "message_register_instance.xml", remote: h.addr, service: user,
		keys: map[string]string{"domain": "acme.test", "contact_port": strconv.Itoa(port), "instance": instance, "expires": expires},
		args: []string{"-au", user, "-ap", password},
	})
	reg.expectSuccess()
}

// waitDelivery waits until cond holds of the message id, and returns it.
func waitDelivery(t *testing.T, h *harness, id, what string, cond func(*store.Message) bool) *store.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := h.st.Message(context.Background(), "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s: %+v", what, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSMSDeviceBackUnderNewContact: a phone that answered 480 registers
// again under a new Contact (the same RFC 5626 instance, which replaces
// its binding). The delivery queued for the old binding moves to the new
// one at once (no waiting for its retry an hour later): the phone gets
// the message once, with the Call-ID of the first attempt and the next
// CSeq, and nothing is left retrying the old address. Then a user's
// second phone that answered 480 leaves (unregisters) while the first has
// the message: its delivery is retired, not retried for three days.
func TestSMSDeviceBackUnderNewContact(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	doc := smsDoc + `  "+34910000003": { extension: "user:bob", sms_extension: "user:bob" }` + "\n"
	h := startSMS(t, doc, slowRetry)
	const phone = "urn:uuid:6f1c0b6e-3c9a-4d51-9c1e-0a1b2c3d4e5f"
	before := startSipp(ctx, t, "before", sippOptions{scenario: smsScenarios + "message_device_480_once.xml"})
	instanceRegister(ctx, t, h, "before", "alice", "s3cret", phone, before.port, "3600")
	if code := carrierSMS(ctx, t, h, "+34910000000", "text/plain", "follow me", 1); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	before.expectSuccess()
	id := smsMessages(t, h)[0].ID
	waitDelivery(t, h, id, "the 480 recorded", func(m *store.Message) bool {
		return len(m.Deliveries) == 1 && m.Deliveries[0].Attempts == 1
	})

	after := startSipp(ctx, t, "after", sippOptions{scenario: smsScenarios + "message_device.xml"})
	instanceRegister(ctx, t, h, "after", "alice", "s3cret", phone, after.port, "3600")
	after.expectSuccess()
	checkDeviceGot(t, after, "alice", "+34911111111", "follow me")
	m := waitMessage(t, h, store.MessageDelivered, 1)
	if len(m.Deliveries) != 1 {
		t.Fatalf("%d deliveries, want the one, moved: %+v", len(m.Deliveries), m.Deliveries)
	}
	d := m.Deliveries[0]
	if !strings.Contains(d.Device, ":"+strconv.Itoa(after.port)) || d.Attempts != 2 || d.Log[0].Status != 480 || d.Log[1].Status != 200 {
		t.Errorf("delivery = %+v; want 480 at the old Contact, then 200 at the new", d)
	}
	first, again := before.received("MESSAGE ")[0], after.received("MESSAGE ")
	if len(again) != 1 || again[0].header("Call-ID") != first.header("Call-ID") || again[0].header("CSeq") == first.header("CSeq") {
		t.Errorf("the phone got %d MESSAGEs under its new Contact; want one, the first's Call-ID with the next CSeq", len(again))
	}

	// bob: a desk phone that takes it, a tablet that answers 480 and then
	// leaves.
	desk := startSipp(ctx, t, "desk", sippOptions{scenario: smsScenarios + "message_device.xml"})
	instanceRegister(ctx, t, h, "desk", "bob", "b0bpass", "urn:uuid:00000000-0000-0000-0000-00000000de5c", desk.port, "3600")
	tablet := startSipp(ctx, t, "tablet", sippOptions{scenario: smsScenarios + "message_device_480_once.xml"})
	const tab = "urn:uuid:00000000-0000-0000-0000-0000000007ab"
	instanceRegister(ctx, t, h, "tablet", "bob", "b0bpass", tab, tablet.port, "3600")
	if code := carrierSMS(ctx, t, h, "+34910000003", "text/plain", "for bob", 1); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	desk.expectSuccess()
	tablet.expectSuccess()
	checkDeviceGot(t, desk, "bob", "+34911111111", "for bob")
	id = smsMessages(t, h)[0].ID
	waitDelivery(t, h, id, "desk 200, tablet 480", func(m *store.Message) bool {
		return m.State == store.MessageDelivered && len(m.Deliveries) == 2 && m.Deliveries[0].Attempts == 1 && m.Deliveries[1].Attempts == 1
	})
	instanceRegister(ctx, t, h, "tablet-leaves", "bob", "b0bpass", tab, tablet.port, "0")
	m = waitDelivery(t, h, id, "the tablet's delivery retired", func(m *store.Message) bool {
		for _, d := range m.Deliveries {
			if d.State == store.MessageQueued {
				return false
			}
		}
		return true
	})
	for _, d := range m.Deliveries {
		tablets := strings.Contains(d.Device, ":"+strconv.Itoa(tablet.port))
		if tablets && (d.State != store.MessageRetired || d.Attempts != 1) || !tablets && d.State != store.MessageDelivered {
			t.Errorf("delivery = %+v; want the desk's delivered, the tablet's retired", d)
		}
	}
	if m.State != store.MessageDelivered {
		t.Errorf("message %s, want delivered", m.State)
	}
}

// FuzzMessage feeds what a MESSAGE's sender controls (the Request-URI
// user, From, To, Content-Type, the body) through the parser, the
// handler's reading of it, the SMS planning and the answer: no panic; an
// accepted message is text/plain UTF-8 of at most 1,400 bytes for one of
// the numbers; every refusal is one of the codes the handler answers.
func FuzzMessage(f *testing.F) {
	doc, err := config.Parse([]byte(smsDoc), "fuzz.yaml")
	if err != nil {
		f.Fatal(err)
	}
	snap, err := routing.Compile(doc)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("+34910000000", "<sip:+34911111111@127.0.0.2>;tag=a", "<sip:+34910000000@sb>", "text/plain;charset=UTF-8", []byte("hello ✓"))
	f.Add("0034910000001", "sip:x@y", "<sip:1@h>;tag=b", "text/plain; charset=latin1", []byte("hi"))
	f.Add("102", "<sip:alice@acme.test>;tag=c", "<sip:102@acme.test>", "application/vnd.3gpp.sms", []byte{0xff, 0x00})
	f.Add("", "<>", "", "", []byte(strings.Repeat("x", 1401)))
	f.Fuzz(func(t *testing.T, user, from, to, ctype string, body []byte) {
		raw := fmt.Sprintf("MESSAGE sip:%s@127.0.0.1 SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKfuzz\r\nFrom: %s\r\nTo: %s\r\n"+
			"Call-ID: fuzz\r\nCSeq: 1 MESSAGE\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", user, from, to, ctype, len(body))
		msg, err := sip.ParseMessage(append([]byte(raw), body...))
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		in, err := readMessage(req)
		if err == nil {
			var p *sms.Plan
			p, err = sms.Inbound(doc, in.To, in.From, in.ContentType, in.Body, in.Dedup, time.Now())
			if err == nil {
				if m := p.Message; len(m.Body) > sms.MaxBody || !utf8.ValidString(m.Body) || doc.Numbers[m.Number].SMSExtension == "" || len(p.Deliveries) == 0 {
					t.Fatalf("accepted %+v", m)
				}
			}
			if _, uerr := sms.Outbound(snap, "alice", in.To, in.ContentType, in.Body, in.Dedup, time.Now()); uerr != nil {
				if c, _ := sms.ErrorCode(uerr); c != 400 && c != 403 && c != 404 && c != 413 && c != 415 {
					t.Fatalf("a user's message refused with %d: %v", c, uerr)
				}
			}
		}
		res := call.Response(req, messageError(err))
		switch res.StatusCode {
		case 202, 400, 404, 413, 415, 481:
		default:
			t.Fatalf("answered %d (%v)", res.StatusCode, err)
		}
	})
}

// TestSMSTrunkRefusalFailsTheMessage: the carrier's final answer is the
// message's state — a 403 fails it at once (no retry), with the
// message.failed webhook event queued with it.
func TestSMSTrunkRefusalFailsTheMessage(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	carrier := startSipp(ctx, t, "carrier", sippOptions{scenario: smsScenarios + "message_trunk_reject.xml"})
	doc := strings.Replace(smsOutboundDoc(carrier.uasAddr()), "defaults: { ", `defaults: { webhook: "https://hooks.example/sms", `, 1)
	h := startSMS(t, doc, fastRetry)
	if code := userSMS(ctx, t, h, "alice", "s3cret", "+34600000003", "refused"); code != 202 {
		t.Fatalf("alice's MESSAGE answered %d, want 202", code)
	}
	carrier.expectSuccess()
	m := waitMessage(t, h, store.MessageFailed, 0)
	if d := m.Deliveries[0]; d.Attempts != 1 || d.State != store.MessageFailed || d.Log[0].Status != 403 {
		t.Errorf("delivery = %+v; want one attempt, 403, failed", d)
	}
	evs, err := h.st.QueuedEvents(context.Background(), "acme", 10)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		if e.Type == sms.TypeMessageFailed && !strings.Contains(string(e.Body), m.ID) {
			t.Errorf("message.failed is not about %s: %s", m.ID, e.Body)
		}
	}
	if fmt.Sprint(types) != "[message.received message.failed]" {
		t.Errorf("webhook events %v; want message.received, message.failed", types)
	}
}

// TestSMSLoad: the carrier sends MESSAGEs at a rate to ten users with a
// registered phone each; every one must arrive, and the time from sending
// to the phone's receiving is reported (p50/p99/max). make test runs a
// short load (20/s for 3 s: under -race beside other packages' tests a
// message costs tens of milliseconds of CPU) and checks only that all
// arrive; the
// performance run of the SMS issue, whose p99 must be under 50 ms, is
// SWITCHBOARD_SMS_LOAD=1 [SMS_LOAD_RATE=200] [SMS_LOAD_SECONDS=30] go test
// -run TestSMSLoad ./internal/sipserver.
func TestSMSLoad(t *testing.T) {
	full := os.Getenv("SWITCHBOARD_SMS_LOAD") != ""
	rate, seconds := 20, 3
	if full {
		rate, seconds = 200, 30
	}
	if v, err := strconv.Atoi(os.Getenv("SMS_LOAD_RATE")); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("SMS_LOAD_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	const users = 10
	var doc strings.Builder
	doc.WriteString("account: acme\ndomain: acme.test\ntrunks:\n  carrier: { address: \"sip:127.0.0.1:9\", inbound_from: [\"127.0.0.1/32\"] }\nusers:\n")
	for i := range users {
		fmt.Fprintf(&doc, "  u%d: { extension: \"%d\", password: pw%d, sms: true }\n", i, 200+i, i)
	}
	doc.WriteString("numbers:\n")
	for i := range users {
		fmt.Fprintf(&doc, "  \"+3491000010%d\": { extension: \"user:u%d\", sms_extension: \"user:u%d\" }\n", i, i, i)
	}
	h := startSMS(t, doc.String(), fastRetry)
	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	got := make(chan struct{}, rate*seconds)
	for i := range users {
		p := newPhone(t, testphone.Config{Name: fmt.Sprint("u", i), User: fmt.Sprint("u", i), Password: fmt.Sprint("pw", i), Domain: "acme.test", Registrar: h.addr})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if code, err := p.Register(ctx, time.Hour); err != nil || code != 200 {
			t.Fatalf("register u%d: %d %v", i, code, err)
		}
		cancel()
		go func() {
			for req := range p.Messages() {
				var seq, sent int64
				if _, err := fmt.Sscanf(string(req.Body()), "%d %d", &seq, &sent); err == nil {
					mu.Lock()
					latencies = append(latencies, time.Since(time.Unix(0, sent)))
					mu.Unlock()
					got <- struct{}{}
				}
			}
		}()
	}
	carrier := newPhone(t, testphone.Config{Name: "carrier", User: "carrier"})
	total := rate * seconds
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	var refused atomic.Int64
	start := time.Now()
	for i := range total {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			body := fmt.Sprintf("%d %d", i, time.Now().UnixNano())
			if code, _ := carrier.SendMessage(ctx, fmt.Sprintf("sip:+3491000010%d@%s", i%users, h.addr), body, testphone.DialOptions{FromUser: "+34911111111"}); code != 202 {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)
	deadline := time.After(30 * time.Second)
	for n := 0; n < total-int(refused.Load()); n++ {
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("%d of %d messages reached a phone within 30 s of the last", n, total)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(float64(len(latencies)-1)*p)] }
	t.Logf("%d MESSAGEs at %d/s in %v (%d not answered 202); delivered %d; send-to-phone p50 %v, p99 %v, max %v",
		total, rate, sendTime.Round(time.Millisecond), refused.Load(), len(latencies), pct(0.5), pct(0.99), latencies[len(latencies)-1])
	if refused.Load() > 0 {
		t.Errorf("%d MESSAGEs were not accepted", refused.Load())
	}
	if p99 := pct(0.99); full && p99 > 50*time.Millisecond {
		t.Errorf("p99 %v, want under 50 ms", p99)
	}
}
