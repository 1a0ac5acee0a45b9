// Package sms is Switchboard's store and forward for SMS (SPEC §5): a
// message offered by a trunk, the API or a registered user is checked and
// planned here (who gets it, from which number, through which trunk),
// stored with one delivery per recipient device, and delivered by a worker
// that retries on a schedule until the device answers 2xx or the schedule
// runs out. Everything the worker needs is in the database, so a restart
// loses nothing. The planning (this file) is pure.
package sms

import (
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// MaxBody is the largest body accepted, in bytes: ten concatenated SMS
// segments of 140 bytes.
const MaxBody = 1400

// Webhook event types of messages.
const (
	TypeMessageReceived  = "message.received"
	TypeMessageDelivered = "message.delivered"
	TypeMessageFailed    = "message.failed"
)

// Error is a refused message, with the status (SIP and HTTP alike) that
// reports it.
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Reason) }

func refuse(code int, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// CheckContent accepts a text/plain body in UTF-8 of at most MaxBody
// bytes: another type (or charset) is 415, a bigger body 413, a body that
// is not UTF-8 400.
func CheckContent(contentType string, body []byte) *Error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "text/plain" {
		return refuse(415, "only text/plain is accepted")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return refuse(415, "only UTF-8 text is accepted")
	}
	if len(body) > MaxBody {
		return refuse(413, "the body is %d bytes; at most %d are accepted", len(body), MaxBody)
	}
	if !utf8.Valid(body) {
		return refuse(400, "the body is not UTF-8")
	}
	return nil
}

// Schedule is when a delivery that did not succeed is tried again: after
// Steps[i] following the (i+1)th failure, then every Every, as long as the
// next try is within For of the message's arrival.
type Schedule struct {
	Steps []time.Duration
	Every time.Duration
	For   time.Duration
}

// DefaultSchedule retries after 30 s, 2 min and 10 min, then every 30 min,
// for 3 days.
var DefaultSchedule = Schedule{
	Steps: []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute},
	Every: 30 * time.Minute,
	For:   72 * time.Hour,
}

// Next is the time of the try after the failures-th failed one (1 for the
// first) at now, of a message that arrived at created; false when there is
// none (the delivery has failed).
func (s Schedule) Next(failures int, created, now time.Time) (time.Time, bool) {
	delay := s.Every
	if failures >= 1 && failures <= len(s.Steps) {
		delay = s.Steps[failures-1]
	}
	if delay <= 0 {
		return time.Time{}, false
	}
	next := now.Add(delay)
	if next.After(created.Add(s.For)) {
		return time.Time{}, false
	}
	return next, true
}

// Plan is a message ready to be stored: the message, its deliveries (a
// user's Device is "" until the service knows the user's devices) and the
// events of its arrival.
type Plan struct {
	Message    store.Message
	Deliveries []store.MessageDelivery
	Events     []store.Event
}

// Inbound plans a message from outside (a trunk or the API) to one of the
// account's numbers: it goes to the number's sms_extension, a user or
// every member user of a group. The number is normalised as for calls; one
// that the account does not have, or that has no sms_extension, is 404.
func Inbound(doc *config.Document, number, from, contentType string, body []byte, dedup string, now time.Time) (*Plan, error) {
	if e := CheckContent(contentType, body); e != nil {
		return nil, e
	}
	n, ok := routing.NormalizeNumber(number)
	if !ok {
		return nil, refuse(404, "%q is not a number", number)
	}
	num, ok := doc.Numbers[n]
	if !ok || num.SMSExtension == "" {
		return nil, refuse(404, "%s takes no messages", n)
	}
	users := Recipients(doc, num.SMSExtension)
	if len(users) == 0 {
		return nil, refuse(404, "%s takes no messages", n)
	}
	if f, ok := routing.NormalizeNumber(from); ok {
		from = f
	}
	p := newPlan(doc, store.DirectionInbound, n, from, n, "", contentType, body, dedup, now)
	for _, u := range users {
		p.addUser(u)
	}
	return p.received(doc), nil
}

// Outbound plans a registered user's message to what the user dialled: an
// extension code of a user or group (internal, delivered to their
// devices), or an external number, which leaves through the default trunk
// from the number whose sms_extension is the user (else the service
// number), if allowed_destinations allow it.
func Outbound(snap *routing.Snapshot, user, dialled, contentType string, body []byte, dedup string, now time.Time) (*Plan, error) {
	if e := CheckContent(contentType, body); e != nil {
		return nil, e
	}
	doc := snap.Doc()
	u, ok := doc.Users[user]
	if !ok {
		return nil, refuse(403, "no such user")
	}
	sender := u.Extension
	if sender == "" {
		sender = user
	}
	d := snap.Dial(dialled)
	switch d.Kind {
	case routing.DialCode:
		users := Recipients(doc, d.Target)
		if len(users) == 0 {
			return nil, refuse(404, "%s takes no messages", dialled)
		}
		p := newPlan(doc, store.DirectionInternal, "", sender, dialled, user, contentType, body, dedup, now)
		for _, r := range users {
			p.addUser(r)
		}
		return p.received(doc), nil
	case routing.DialExternal:
	case routing.DialRefused:
		return nil, refuse(403, "%s", d.Note)
	default:
		return nil, refuse(404, "%s", d.Note)
	}
	if !u.SMS {
		return nil, refuse(403, "user %s may not send SMS (sms: false)", user)
	}
	trunk, _, ok := snap.DefaultTrunk()
	if !ok {
		return nil, refuse(503, "no trunk to send through")
	}
	from := FromNumber(doc, user)
	if from == "" {
		return nil, refuse(403, "no number to send from: no sms_extension is %s and there is no service_number", user)
	}
	p := newPlan(doc, store.DirectionOutbound, from, from, d.Target, user, contentType, body, dedup, now)
	p.Deliveries = append(p.Deliveries, store.MessageDelivery{ID: uuid.NewString(), Trunk: trunk, Next: now})
	return p.received(doc), nil
}

// FromNumber is the number a user's SMS to an external number is sent
// from: the first (in order) of the account's numbers whose sms_extension
// is the user, else the service number ("" when neither exists).
func FromNumber(doc *config.Document, user string) string {
	var mine []string
	for n, num := range doc.Numbers {
		if strings.TrimPrefix(num.SMSExtension, "user:") == user {
			if _, isUser := doc.Users[user]; isUser {
				mine = append(mine, n)
			}
		}
	}
	if len(mine) > 0 {
		slices.Sort(mine)
		return mine[0]
	}
	if n, ok := routing.NormalizeNumber(doc.Defaults.ServiceNumber); ok {
		return n
	}
	return ""
}

// Recipients are the users a message to target (an sms_extension, or an
// extension code's target: "user:NAME", NAME of a user, or a group) goes
// to, sorted and without repeats.
func Recipients(doc *config.Document, target string) []string {
	name := strings.TrimPrefix(target, "user:")
	if _, ok := doc.Users[name]; ok {
		return []string{name}
	}
	ext, ok := doc.Extensions[target]
	if !ok || ext.EffectiveType() != config.TypeGroup {
		return nil
	}
	var users []string
	for _, m := range ext.Members {
		u := strings.TrimPrefix(m, "user:")
		if _, ok := doc.Users[u]; ok && !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return users
}

func newPlan(doc *config.Document, direction, number, from, to, sender, contentType string, body []byte, dedup string, now time.Time) *Plan {
	now = now.UTC().Truncate(time.Microsecond)
	return &Plan{Message: store.Message{
		ID: uuid.NewString(), Account: doc.Account, Direction: direction, Number: number, From: from, To: to,
		Sender: sender, ContentType: contentType, Body: string(body), State: store.MessageQueued,
		Created: now, Dedup: dedup,
	}}
}

func (p *Plan) addUser(user string) {
	p.Deliveries = append(p.Deliveries, store.MessageDelivery{ID: uuid.NewString(), User: user, Next: p.Message.Created})
}

// received adds message.received when the account has a webhook.
func (p *Plan) received(doc *config.Document) *Plan {
	if ev, ok := Event(doc, TypeMessageReceived, &p.Message); ok {
		p.Events = append(p.Events, ev)
	}
	return p
}

// EventData is the data of a message's webhook events.
type EventData struct {
	ID        string    `json:"id"`
	Direction string    `json:"direction"`
	Number    string    `json:"number,omitempty"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	User      string    `json:"user,omitempty"`
	Body      string    `json:"body"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
}

// Data is a message as its webhook events carry it.
func Data(m *store.Message) EventData {
	return EventData{ID: m.ID, Direction: m.Direction, Number: m.Number, From: m.From, To: m.To, User: m.Sender,
		Body: m.Body, State: m.State, Created: m.Created}
}

// Event is the webhook event typ of m, when the account (doc) has a
// webhook URL.
func Event(doc *config.Document, typ string, m *store.Message) (store.Event, bool) {
	if doc == nil || doc.Defaults.Webhook == "" {
		return store.Event{}, false
	}
	ev, err := events.NewEvent(m.Account, typ, time.Now(), Data(m))
	return ev, err == nil
}
