// Package events delivers an account's events to its webhook URL.
//
// A Recorder observes calls (call.Config.Events) and turns their events
// into webhook events; it never blocks a call: it hands them to the calls'
// journal (store.CallWriter), which writes them to the database's outbox
// in batches together with the call records — a call's final events in
// the very transaction of its record. A Dispatcher reads the outbox and POSTs each event,
// signed (Sign, Verify), to the account's webhook URL, retrying with
// exponential backoff and jitter until a deadline; one account's events go
// out in order, and a slow or failing receiver holds back only its own
// account. Every attempt is logged in the outbox (store.Deliveries), and
// since an event leaves the outbox only once a receiver has answered 2xx,
// a restart loses none: delivery is at least once, and the event's id lets
// receivers drop duplicates.
//
// CheckURL and the dispatcher's dialer refuse loopback, private and other
// internal addresses (SSRF), unless the node allows them.
package events

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/store"
)

// Event types. Message events come with SMS.
const (
	TypeCallRinging      = "call.ringing"
	TypeCallAnswered     = "call.answered"
	TypeCallTransferred  = "call.transferred"
	TypeCallCompleted    = "call.completed"
	TypeCallMissed       = "call.missed"
	TypeVoicemailCreated = "voicemail.created"
	TypeRecordingReady   = "recording.ready"
)

// Payload is the JSON document POSTed for every event. Receivers decode
// Data by Type.
type Payload struct {
	ID      string          `json:"id"` // the same in every attempt: de-duplicate by it
	Type    string          `json:"type"`
	Created time.Time       `json:"created"`
	Account string          `json:"account"`
	Data    json.RawMessage `json:"data"`
}

// Call is a call record, the data of call.completed (and call.missed).
type Call struct {
	ID              string     `json:"id"`
	Number          string     `json:"number"`
	Caller          string     `json:"caller"`
	CallerName      string     `json:"caller_name"`
	Start           time.Time  `json:"start"`
	Answer          *time.Time `json:"answer,omitempty"`
	End             *time.Time `json:"end,omitempty"`
	DurationSeconds float64    `json:"duration_seconds"`
	Outcome         string     `json:"outcome"`
	AnsweredBy      string     `json:"answered_by"`
	HangupCause     string     `json:"hangup_cause"`
	Tags            []string   `json:"tags"`
	Extension       string     `json:"extension,omitempty"`
	Direction       string     `json:"direction,omitempty"`
}

// NewCall copies the fields of a call record that webhooks show.
func NewCall(r *store.CallRecord) Call {
	c := Call{ID: r.ID, Number: r.Number, Caller: r.Caller, CallerName: r.CallerName, Start: r.Start,
		DurationSeconds: r.Duration.Seconds(), Outcome: r.Outcome, AnsweredBy: r.AnsweredBy,
		HangupCause: r.HangupCause, Tags: append([]string{}, r.Tags...), Extension: r.Extension, Direction: r.Direction}
	if !r.Answer.IsZero() {
		a := r.Answer
		c.Answer = &a
	}
	if !r.End.IsZero() {
		e := r.End
		c.End = &e
	}
	return c
}

// Leg is the data of call.ringing, call.answered and call.transferred: the
// call, and the member that rings or answered ("user:alice",
// "+34600000003"), or transferred the caller to Target.
type Leg struct {
	Call   string `json:"call"`
	Number string `json:"number"`
	Caller string `json:"caller"`
	Leg    string `json:"leg"`
	Target string `json:"target,omitempty"`
}

// Media is the data of voicemail.created and recording.ready: the call and
// the API path of the audio.
type Media struct {
	Call          string  `json:"call"`
	Number        string  `json:"number"`
	Caller        string  `json:"caller"`
	CallerName    string  `json:"caller_name"`
	User          string  `json:"user,omitempty"` // voicemail: the user it is for
	URL           string  `json:"url"`            // e.g. /api/v1/acme/voicemails/ID/audio
	LengthSeconds float64 `json:"length_seconds,omitempty"`
	Bytes         int64   `json:"bytes,omitempty"`
}

// NewEvent builds the outbox event of one webhook event: a new id, and
// the body that is POSTed (a Payload with data as its Data).
func NewEvent(account, typ string, created time.Time, data any) (store.Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return store.Event{}, err
	}
	created = created.UTC().Truncate(time.Microsecond) // as the outbox keeps it
	id := uuid.NewString()
	body, err := json.Marshal(Payload{ID: id, Type: typ, Created: created, Account: account, Data: raw})
	if err != nil {
		return store.Event{}, err
	}
	return store.Event{ID: id, Account: account, Type: typ, Created: created, Body: body}, nil
}
