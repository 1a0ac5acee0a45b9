package events

import (
	"log/slog"
	"time"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/store"
)

// Sink is where a Recorder puts events (store.CallWriter, the journal that
// also writes the call records: one account's events and records go to
// the database in the order they happened).
type Sink interface {
	// Enqueue queues an event without blocking; false when it cannot.
	Enqueue(ev store.Event) bool
}

var _ Sink = (*store.CallWriter)(nil)

// Webhook returns an account's webhook URL; false (or "") when it has
// none, and then its events are not recorded. It runs on the calls'
// goroutines: it must be quick and never block (a lookup in the accounts'
// current view).
type Webhook func(account string) (url string, ok bool)

// Recorder turns calls' events into webhook events for the outbox. Its
// methods never block: the sink queues what they make. The events of a
// call's end (call.completed with the record, call.missed) are made by
// Final, in the transaction that writes the record.
type Recorder struct {
	sink    Sink
	webhook Webhook
	log     *slog.Logger
}

// NewRecorder records into sink the events of the accounts with a webhook.
func NewRecorder(sink Sink, webhook Webhook, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{sink: sink, webhook: webhook, log: log.With("component", "webhooks")}
}

// CallEvent is the observer for call.Config.Events. It maps a call's
// events to webhook events (ringing, answered, transferred, recording
// ready, voicemail created) for accounts with a webhook URL, on the call's
// goroutine, and never blocks. (Its end is Final's.)
func (r *Recorder) CallEvent(ev call.Event) {
	if ev.Record == nil || ev.Kind < call.EventRinging || ev.Kind >= call.EventEnded || !r.wanted(ev.Account) {
		return
	}
	var (
		typ  string
		data any
		rec  = ev.Record
	)
	switch ev.Kind {
	case call.EventRinging:
		typ, data = TypeCallRinging, Leg{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, Leg: ev.Leg}
	case call.EventAnswered:
		typ, data = TypeCallAnswered, Leg{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, Leg: ev.Leg}
	case call.EventTransferred:
		typ, data = TypeCallTransferred, Leg{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, Leg: ev.Leg,
			Target: ev.Target}
	case call.EventRecording:
		typ = TypeRecordingReady
		data = Media{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, CallerName: rec.CallerName,
			URL:           "/api/v1/" + ev.Account + "/calls/" + ev.Call + "/recording",
			LengthSeconds: rec.RecordingLength.Seconds(), Bytes: rec.RecordingBytes}
	case call.EventVoicemail:
		typ = TypeVoicemailCreated
		data = Media{Call: ev.Call, Number: rec.Number, Caller: rec.Caller, CallerName: rec.CallerName,
			User: rec.VoicemailUser, URL: "/api/v1/" + ev.Account + "/voicemails/" + ev.Call + "/audio"}
	default:
		return
	}
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	r.record(ev.Account, typ, t, data)
}

// Final returns the events of a finished call record (CallWriterOptions.
// Events): call.completed with the record, and call.missed when it is a
// missed call (store.CallRecord.Missed).
func (r *Recorder) Final(rec *store.CallRecord) []store.Event {
	if !r.wanted(rec.Account) {
		return nil
	}
	c := NewCall(rec)
	var evs []store.Event
	add := func(typ string) {
		if ev, err := NewEvent(rec.Account, typ, rec.End, c); err != nil {
			r.log.Error("encode webhook event", "account", rec.Account, "type", typ, "err", err)
		} else {
			evs = append(evs, ev)
		}
	}
	add(TypeCallCompleted)
	if rec.Missed() {
		add(TypeCallMissed)
	}
	return evs
}

func (r *Recorder) wanted(account string) bool {
	url, ok := r.webhook(account)
	return ok && url != ""
}

// Enqueue records an event of any type (message events) for an account
// with a webhook URL; data, encoded here, is its "data". It never blocks,
// and reports whether the event was queued: false when the account has no
// webhook URL, data does not encode or the sink refused it.
func (r *Recorder) Enqueue(account, typ string, data any) bool {
	if !r.wanted(account) {
		return false
	}
	return r.record(account, typ, time.Now(), data)
}

func (r *Recorder) record(account, typ string, created time.Time, data any) bool {
	ev, err := NewEvent(account, typ, created, data)
	if err != nil {
		r.log.Error("encode webhook event", "account", account, "type", typ, "err", err)
		return false
	}
	return r.sink.Enqueue(ev)
}
