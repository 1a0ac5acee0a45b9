package sms

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/routing"
)

const planDoc = `
account: acme
domain: acme.example
defaults:
  trunk: carrier
  service_number: "+15550100"
  allowed_destinations: ["+1*"]
trunks:
  carrier:
    address: sip:127.0.0.1:5099
    inbound_from: ["127.0.0.1/32"]
numbers:
  "+15550100": {extension: sales, sms_extension: team}
  "+15550111": {extension: user:alice, sms_extension: user:alice}
  "+15550122": {extension: user:bob}
users:
  alice: {extension: "201", password: secret-a, sms: true}
  bob: {extension: "202", password: secret-b, sms: true}
  carol: {extension: "203", password: secret-c}
extensions:
  sales: {code: "10", members: [user:alice, user:bob]}
  team: {code: "11", members: [user:bob, user:alice, bob]}
`

func planSnapshot(t *testing.T) *routing.Snapshot {
	t.Helper()
	doc, err := config.Parse([]byte(planDoc), "plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := routing.Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func code(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestCheckContent(t *testing.T) {
	cases := []struct {
		ct   string
		body string
		want int
	}{
		{"text/plain", "hello", 0},
		{"text/plain; charset=UTF-8", "héllo ✓", 0},
		{"Text/Plain;charset=us-ascii", "hi", 0},
		{"text/plain", strings.Repeat("a", MaxBody), 0},
		{"text/plain", strings.Repeat("a", MaxBody+1), 413},
		{"text/plain; charset=iso-8859-1", "hi", 415},
		{"application/vnd.3gpp.sms", "hi", 415},
		{"message/cpim", "hi", 415},
		{"", "hi", 415},
		{"text/plain", "\xff\xfe", 400},
	}
	for _, c := range cases {
		if got := code(errOrNil(CheckContent(c.ct, []byte(c.body)))); got != c.want {
			t.Errorf("CheckContent(%q, %d bytes) = %d; want %d", c.ct, len(c.body), got, c.want)
		}
	}
}

// errOrNil keeps a nil *Error from becoming a non-nil error.
func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

func TestScheduleNext(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := DefaultSchedule
	cases := []struct {
		failures int
		now      time.Time
		want     time.Duration // after now; -1: no more tries
	}{
		{1, created, 30 * time.Second},
		{2, created.Add(30 * time.Second), 2 * time.Minute},
		{3, created.Add(3 * time.Minute), 10 * time.Minute},
		{4, created.Add(13 * time.Minute), 30 * time.Minute},
		{50, created.Add(24 * time.Hour), 30 * time.Minute},
		{140, created.Add(71*time.Hour + 30*time.Minute), 30 * time.Minute}, // exactly at the end: still tried
		{141, created.Add(71*time.Hour + 31*time.Minute), -1},
	}
	for _, c := range cases {
		next, ok := s.Next(c.failures, created, c.now)
		got := time.Duration(-1)
		if ok {
			got = next.Sub(c.now)
		}
		if got != c.want {
			t.Errorf("Next(%d, +%v) = %v; want %v", c.failures, c.now.Sub(created), got, c.want)
		}
	}
	if _, ok := (Schedule{}).Next(1, created, created); ok {
		t.Error("an empty schedule retried")
	}
}

func TestRecipientsAndFromNumber(t *testing.T) {
	doc := planSnapshot(t).Doc()
	cases := map[string]string{
		"team":       "[alice bob]",
		"user:alice": "[alice]",
		"alice":      "[alice]",
		"nobody":     "[]",
	}
	for target, want := range cases {
		if got := fmt.Sprint(Recipients(doc, target)); got != want {
			t.Errorf("Recipients(%q) = %s; want %s", target, got, want)
		}
	}
	for user, want := range map[string]string{"alice": "+15550111", "bob": "+15550100"} {
		if got := FromNumber(doc, user); got != want {
			t.Errorf("FromNumber(%s) = %q; want %q", user, got, want)
		}
	}
}

func TestInboundPlan(t *testing.T) {
	doc := planSnapshot(t).Doc()
	now := time.Now()
	cases := []struct {
		number, ct, body string
		wantCode         int
		wantUsers        string
	}{
		{"+15550100", "text/plain", "hi", 0, "[alice bob]"},
		{"15550111", "text/plain", "hi", 0, "[alice]"}, // normalised as for calls
		{"0015550111", "text/plain", "hi", 0, "[alice]"},
		{"+15550122", "text/plain", "hi", 404, ""}, // a number without sms_extension
		{"+15559999", "text/plain", "hi", 404, ""},
		{"alice", "text/plain", "hi", 404, ""},
		{"+15550100", "text/html", "hi", 415, ""},
		{"+15550100", "text/plain", strings.Repeat("x", 1401), 413, ""},
	}
	for _, c := range cases {
		p, err := Inbound(doc, c.number, "15557777", c.ct, []byte(c.body), "", now)
		if got := code(err); got != c.wantCode {
			t.Errorf("Inbound(%s, %s) = %v; want %d", c.number, c.ct, err, c.wantCode)
			continue
		}
		if err != nil {
			continue
		}
		var users []string
		for _, d := range p.Deliveries {
			users = append(users, d.User)
		}
		if fmt.Sprint(users) != c.wantUsers || p.Message.From != "+15557777" || p.Message.Direction != "inbound" {
			t.Errorf("Inbound(%s) = users %v, message %+v", c.number, users, p.Message)
		}
	}
}

func TestOutboundPlan(t *testing.T) {
	snap := planSnapshot(t)
	now := time.Now()
	cases := []struct {
		user, dialled string
		wantCode      int
		want          string // direction from to trunk users
	}{
		{"alice", "+15557777", 0, "outbound +15550111 +15557777 carrier []"},
		{"bob", "15557777", 0, "outbound +15550100 +15557777 carrier []"}, // no number of his own: the service number
		{"alice", "+445550000", 403, ""},                                  // not in allowed_destinations
		{"carol", "+15557777", 403, ""},                                   // sms: false
		{"alice", "202", 0, "internal 201 202  [bob]"},
		{"alice", "11", 0, "internal 201 11  [alice bob]"},
		{"alice", "nobody", 404, ""},
	}
	for _, c := range cases {
		p, err := Outbound(snap, c.user, c.dialled, "text/plain", []byte("hi"), "", now)
		if got := code(err); got != c.wantCode {
			t.Errorf("Outbound(%s → %s) = %v; want %d", c.user, c.dialled, err, c.wantCode)
			continue
		}
		if err != nil {
			continue
		}
		var users []string
		trunk := ""
		for _, d := range p.Deliveries {
			if d.Trunk != "" {
				trunk = d.Trunk
			} else {
				users = append(users, d.User)
			}
		}
		m := p.Message
		got := fmt.Sprintf("%s %s %s %s %v", m.Direction, m.From, m.To, trunk, fmt.Sprint(users))
		if users == nil {
			got = fmt.Sprintf("%s %s %s %s []", m.Direction, m.From, m.To, trunk)
		}
		if got != c.want || m.Sender != c.user {
			t.Errorf("Outbound(%s → %s) = %q (sender %s); want %q", c.user, c.dialled, got, m.Sender, c.want)
		}
	}
}

func TestPlanEventsOnlyWithWebhook(t *testing.T) {
	doc := planSnapshot(t).Doc()
	p, err := Inbound(doc, "+15550100", "+15557777", "text/plain", []byte("hi"), "", time.Now())
	if err != nil || len(p.Events) != 0 {
		t.Fatalf("no webhook: events %v, %v", p.Events, err)
	}
	doc.Defaults.Webhook = "https://hooks.example/sms"
	p, err = Inbound(doc, "+15550100", "+15557777", "text/plain", []byte("hi"), "", time.Now())
	if err != nil || len(p.Events) != 1 || p.Events[0].Type != TypeMessageReceived || !strings.Contains(string(p.Events[0].Body), `"body":"hi"`) {
		t.Fatalf("webhook: events %+v, %v", p.Events, err)
	}
}
