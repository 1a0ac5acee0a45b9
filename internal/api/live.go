package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/store"
)

// Hub fans an account's live events out to its Server-Sent Events
// streams (GET /api/v1/{account}/events): the calls' events and users'
// registrations. Publishing never blocks: a stream that does not keep up
// loses events (counted in Dropped), never the call that published them.
// With a Relay, the events of this node are also handed to the other
// nodes, and theirs come in through Deliver: every node's streams see the
// whole cluster.
type Hub struct {
	mu     sync.Mutex
	subs   map[string]map[*stream]struct{}
	closed chan struct{}
	seq    atomic.Uint64
	relay  atomic.Pointer[Relay]
	// Dropped counts events a slow stream did not take.
	Dropped atomic.Uint64
}

// Relay carries a node's live events to the other nodes.
type Relay struct {
	// Active says whether another node is there to hear: when none is,
	// an event nobody here watches is not even encoded.
	Active func() bool
	// Send hands one event (its JSON) of account on; it must not block.
	Send func(account string, event []byte)
}

type stream struct{ ch chan []byte }

// streamBuffer is how many events a stream may be behind.
const streamBuffer = 256

// NewHub returns a hub with no streams.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[*stream]struct{}{}, closed: make(chan struct{})}
}

// SetRelay makes the hub relay its events to the other nodes.
func (h *Hub) SetRelay(r Relay) { h.relay.Store(&r) }

// Publish sends one event to the account's streams, and to the other
// nodes through the relay.
func (h *Hub) Publish(account, typ string, data any) {
	r := h.relay.Load()
	relay := r != nil && r.Active()
	h.mu.Lock()
	watched := len(h.subs[account]) > 0
	h.mu.Unlock()
	if !watched && !relay {
		return // nobody watches: no encoding either
	}
	body, err := json.Marshal(map[string]any{"type": typ, "time": time.Now().UTC(), "data": data})
	if err != nil {
		return
	}
	if relay {
		r.Send(account, body)
	}
	h.deliver(account, typ, body)
}

// Deliver sends an event another node published (Relay.Send's) to this
// node's streams of account.
func (h *Hub) Deliver(account string, event []byte) {
	var e struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(event, &e) != nil || e.Type == "" {
		return
	}
	h.deliver(account, e.Type, event)
}

func (h *Hub) deliver(account, typ string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[account]
	if len(subs) == 0 {
		return
	}
	msg := fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", h.seq.Add(1), typ, body)
	for s := range subs {
		select {
		case s.ch <- msg:
		default:
			h.Dropped.Add(1)
		}
	}
}

// Close ends every stream (at shutdown: the HTTP server waits for them).
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
	default:
		close(h.closed)
	}
}

func (h *Hub) subscribe(account string) (*stream, func()) {
	s := &stream{ch: make(chan []byte, streamBuffer)}
	h.mu.Lock()
	if h.subs[account] == nil {
		h.subs[account] = map[*stream]struct{}{}
	}
	h.subs[account][s] = struct{}{}
	h.mu.Unlock()
	return s, func() {
		h.mu.Lock()
		delete(h.subs[account], s)
		if len(h.subs[account]) == 0 {
			delete(h.subs, account)
		}
		h.mu.Unlock()
	}
}

// CallEvent publishes a call's events (call.Config.Events): the types of
// the webhooks, and call.started so that a live view sees a call arrive.
func (h *Hub) CallEvent(ev call.Event) {
	data := map[string]any{"call": ev.Call}
	var typ string
	switch ev.Kind {
	case call.EventStarted:
		typ = "call.started"
		data["number"], data["caller"] = ev.Record.Number, ev.Record.Caller
	case call.EventRinging:
		typ, data["leg"] = "call.ringing", ev.Leg
	case call.EventAnswered:
		typ, data["leg"] = "call.answered", ev.Leg
	case call.EventTransferred:
		typ, data["leg"], data["target"] = "call.transferred", ev.Leg, ev.Target
	case call.EventRecording:
		typ = "recording.ready"
	case call.EventVoicemail:
		typ, data["user"] = "voicemail.created", ev.Record.VoicemailUser
	case call.EventEnded:
		typ = "call.completed"
		data["outcome"], data["answered_by"], data["hangup_cause"] = ev.Record.Outcome, ev.Record.AnsweredBy, string(ev.Cause)
	default:
		return
	}
	h.Publish(ev.Account, typ, data)
}

// Registration publishes a user's devices after a REGISTER:
// registration.changed with the count (0: the user is offline).
func (h *Hub) Registration(account, user string, devices int) {
	h.Publish(account, "registration.changed", map[string]any{"user": user, "devices": devices})
}

// heartbeat keeps idle streams open through proxies.
const heartbeat = 15 * time.Second

// events is GET /api/v1/{account}/events: a text/event-stream of the
// account's live events until the client goes or the server stops.
func (a *server) events(w http.ResponseWriter, r *http.Request, _ store.Token) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	if !a.accountExists(w, r.Context(), r.PathValue("account")) {
		return
	}
	s, unsubscribe := a.o.Hub.subscribe(r.PathValue("account"))
	defer unsubscribe()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": connected\n\n")
	fl.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.o.Hub.closed:
			return
		case msg := <-s.ch:
			if _, err := w.Write(msg); err != nil {
				return
			}
			fl.Flush()
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// liveJSON is a call in progress as calls?state=live lists it.
type liveJSON struct {
	ID     string        `json:"id"`
	Number string        `json:"number,omitempty"`
	Caller string        `json:"caller"`
	Start  time.Time     `json:"start"`
	Node   string        `json:"node,omitempty"`
	Legs   []liveLegJSON `json:"legs"`
}

type liveLegJSON struct {
	Member string    `json:"member"`
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
}

// liveCalls answers calls?state=live from the engine.
func (a *server) liveCalls(w http.ResponseWriter, r *http.Request) {
	out := []liveJSON{}
	for _, c := range a.o.Calls.Live(r.PathValue("account")) {
		j := liveJSON{ID: c.ID, Number: c.Number, Caller: c.Caller, Start: c.Start, Node: c.Node, Legs: []liveLegJSON{}}
		for _, l := range c.Legs {
			j.Legs = append(j.Legs, liveLegJSON{Member: l.Member, State: l.State, Since: l.Since})
		}
		out = append(out, j)
	}
	writeJSON(w, map[string]any{"calls": out})
}
