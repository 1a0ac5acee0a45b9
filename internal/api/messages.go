package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/sms"
	"github.com/switchboard/switchboard/internal/store"
)

func (a *server) messageRoutes() []route {
	return []route{
		{method: "GET", path: "/{account}/messages", h: a.listMessages},
		{method: "POST", path: "/{account}/messages", h: a.postMessage},
		{method: "GET", path: "/{account}/messages/{id}", h: a.getMessage},
	}
}

// messageJSON is a message of the log; deliveries only in messages/{id}.
type messageJSON struct {
	ID         string                `json:"id"`
	Direction  string                `json:"direction"`
	Number     string                `json:"number,omitempty"`
	From       string                `json:"from"`
	To         string                `json:"to"`
	User       string                `json:"user,omitempty"` // the sender (outbound, internal)
	Body       string                `json:"body"`
	State      string                `json:"state"`
	Created    time.Time             `json:"created"`
	Updated    time.Time             `json:"updated"`
	Deliveries []messageDeliveryJSON `json:"deliveries,omitempty"`
}

type messageDeliveryJSON struct {
	ID          string               `json:"id"`
	User        string               `json:"user,omitempty"`
	Device      string               `json:"device,omitempty"` // "" while the user has no registered device
	Trunk       string               `json:"trunk,omitempty"`
	State       string               `json:"state"`
	Attempts    int                  `json:"attempts"`
	NextAttempt *time.Time           `json:"next_attempt,omitempty"`
	LastError   string               `json:"last_error,omitempty"`
	Log         []messageAttemptJSON `json:"log"`
}

type messageAttemptJSON struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
}

func toMessageJSON(m *store.Message) messageJSON {
	j := messageJSON{ID: m.ID, Direction: m.Direction, Number: m.Number, From: m.From, To: m.To, User: m.Sender,
		Body: m.Body, State: m.State, Created: m.Created.UTC(), Updated: m.Updated.UTC()}
	for _, d := range m.Deliveries {
		dj := messageDeliveryJSON{ID: d.ID, User: d.User, Device: d.Device, Trunk: d.Trunk, State: d.State,
			Attempts: d.Attempts, LastError: d.LastError, Log: []messageAttemptJSON{}}
		if d.State == store.MessageQueued {
			next := d.Next.UTC()
			dj.NextAttempt = &next
		}
		for _, at := range d.Log {
			dj.Log = append(dj.Log, messageAttemptJSON{At: at.At.UTC(), Status: at.Status, Error: at.Error})
		}
		j.Deliveries = append(j.Deliveries, dj)
	}
	return j
}

// listMessages is the message log, newest first: ?number=, ?user=,
// ?direction=, ?state=, ?from=, ?to=, ?limit=, ?cursor=.
func (a *server) listMessages(w http.ResponseWriter, r *http.Request, _ store.Token) {
	q := r.URL.Query()
	f := store.MessageFilter{Account: r.PathValue("account"), Number: q.Get("number"), User: q.Get("user"),
		Direction: q.Get("direction"), State: q.Get("state"), Cursor: q.Get("cursor")}
	if n, ok := routing.NormalizeNumber(f.Number); ok {
		f.Number = n
	}
	switch f.Direction {
	case "", store.DirectionInbound, store.DirectionOutbound, store.DirectionInternal:
	default:
		writeError(w, badRequest("direction is inbound, outbound or internal",
			fieldError{Path: "direction", Message: "inbound, outbound or internal"}))
		return
	}
	switch f.State {
	case "", store.MessageQueued, store.MessageDelivered, store.MessageFailed:
	default:
		writeError(w, badRequest("state is queued, delivered or failed", fieldError{Path: "state", Message: "queued, delivered or failed"}))
		return
	}
	var err error
	if f.From, f.To, err = timeRange(q); err != nil {
		writeError(w, err)
		return
	}
	if f.Limit, err = pageLimit(q.Get("limit")); err != nil {
		writeError(w, err)
		return
	}
	list, next, err := a.o.Store.Messages(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	out := struct {
		Messages []messageJSON `json:"messages"`
		Next     string        `json:"next,omitempty"`
	}{Messages: []messageJSON{}, Next: next}
	for i := range list {
		out.Messages = append(out.Messages, toMessageJSON(&list[i]))
	}
	writeJSON(w, out)
}

// getMessage is one message with its deliveries and their attempts.
func (a *server) getMessage(w http.ResponseWriter, r *http.Request, _ store.Token) {
	m, err := a.o.Store.Message(r.Context(), r.PathValue("account"), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, toMessageJSON(m))
}

// postMessage takes an SMS for one of the account's numbers as if a trunk
// had sent it: stored, and delivered by the SMS service of whichever node
// finds it due first (202).
func (a *server) postMessage(w http.ResponseWriter, r *http.Request, _ store.Token) {
	var in struct {
		Number string `json:"number"`
		From   string `json:"from"`
		Body   string `json:"body"`
	}
	if !decodeJSON(w, r, &in) {
		return
	}
	var missing []fieldError
	for _, f := range []struct{ path, v string }{{"number", in.Number}, {"from", in.From}, {"body", in.Body}} {
		if f.v == "" {
			missing = append(missing, fieldError{Path: f.path, Message: "required"})
		}
	}
	if len(missing) > 0 {
		writeError(w, badRequest("number, from and body are required", missing...))
		return
	}
	account := r.PathValue("account")
	doc, _, err := a.o.Store.LoadConfig(r.Context(), account)
	if err != nil {
		writeError(w, err)
		return
	}
	p, err := sms.Inbound(doc, in.Number, in.From, "text/plain;charset=UTF-8", []byte(in.Body), "", a.o.Now())
	var se *sms.Error
	if errors.As(err, &se) {
		path := "number"
		if se.Code == http.StatusRequestEntityTooLarge || se.Code == http.StatusBadRequest {
			path = "body"
		}
		writeProblem(w, se.Code, se.Reason, fieldError{Path: path, Message: se.Reason})
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	m := p.Message
	if _, err := a.o.Store.InsertMessage(r.Context(), &m, p.Deliveries, p.Events); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/"+account+"/messages/"+m.ID)
	writeJSONStatus(w, http.StatusAccepted, toMessageJSON(&m))
}
