package call

import (
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// EventKind is what happened in a call.
type EventKind uint8

// Event kinds, in the order a call goes through them.
const (
	EventStarted     EventKind = iota + 1 // a call arrived and is being routed
	EventRinging                          // an outbound leg rings (Leg)
	EventAnswered                         // a leg answered and is bridged to the caller (Leg)
	EventTransferred                      // the callee transferred the caller (Leg, Target)
	EventRecording                        // a recording was finished (Record.Recording)
	EventVoicemail                        // a voicemail was stored (Record.Voicemail)
	EventEnded                            // the call ended (Cause, Record)

	// EventWaveEnded: a wave of attempts is over without an answer (its
	// legs stop ringing). It updates the live view only.
	EventWaveEnded EventKind = 100
)

var eventNames = [...]string{"", "started", "ringing", "answered", "transferred", "recording", "voicemail", "ended"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && k > 0 {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one step of a call. Metrics, webhooks and the live view all
// observe calls through Config.Events.
type Event struct {
	Kind    EventKind
	Time    time.Time
	Call    string // the call record's id
	Account string
	Leg     string // the member as configured ("user:alice", "+34600000003"), for leg events
	Target  string // EventTransferred: where the caller goes
	Cause   Cause  // EventEnded
	// Record is the call record as it stands; with EventEnded it is final.
	// Observers must not modify it or keep it past the call.
	Record *store.CallRecord
}

// emit hands an event to the observer, on the call's goroutine: observers
// must not block.
func (c *call) emit(kind EventKind, leg, target string) {
	if c.in.FromPeer {
		return
	}
	ev := Event{Kind: kind, Time: time.Now(), Call: c.rec.ID, Account: c.rec.Account,
		Leg: leg, Target: target, Cause: c.cause, Record: &c.rec}
	if l, ok := c.e.live.Load(c.rec.ID); ok {
		l.(*live).observe(ev)
	}
	if c.e.cfg.Events != nil && kind != EventWaveEnded {
		c.e.cfg.Events(ev)
	}
}
