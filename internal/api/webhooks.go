package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// secretOverlap is how long the previous webhook secret stays valid after
// a rotation, so receivers can switch without losing a delivery.
const secretOverlap = 24 * time.Hour

func (a *server) webhookRoutes() []route {
	return []route{
		{method: "POST", path: "/{account}/webhook/secret", h: a.rotateSecret},
		{method: "GET", path: "/{account}/webhook/deliveries", h: a.listDeliveries},
		{method: "POST", path: "/{account}/webhook/deliveries/{id}/replay", h: a.replay},
	}
}

// rotateSecret makes a new signing secret and returns it (the only way to
// read one); the previous one stays valid for secretOverlap.
func (a *server) rotateSecret(w http.ResponseWriter, r *http.Request, _ store.Token) {
	account := r.PathValue("account")
	if !a.accountExists(w, r.Context(), account) {
		return
	}
	secret, err := a.o.Store.RotateWebhookSecret(r.Context(), account, secretOverlap)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, map[string]any{"secret": secret, "previous_valid_for_seconds": int(secretOverlap.Seconds())})
}

type deliveryJSON struct {
	Event     string    `json:"event"`
	Type      string    `json:"type"`
	State     string    `json:"state"`
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
	URL       string    `json:"url"`
	Status    int       `json:"status,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
}

// listDeliveries shows the webhook attempts, newest first: ?limit=N.
func (a *server) listDeliveries(w http.ResponseWriter, r *http.Request, _ store.Token) {
	account := r.PathValue("account")
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxDeliveryLimit {
			writeError(w, badRequest("limit is 1-"+strconv.Itoa(store.MaxDeliveryLimit), fieldError{Path: "limit", Message: "out of range"}))
			return
		}
		limit = n
	}
	if !a.accountExists(w, r.Context(), account) {
		return
	}
	ds, err := a.o.Store.Deliveries(r.Context(), account, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]deliveryJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryJSON{Event: d.EventID, Type: d.Type, State: d.State, Attempt: d.No, At: d.At, URL: d.URL,
			Status: d.Status, LatencyMS: float64(d.Latency.Microseconds()) / 1000, Error: d.Error})
	}
	writeJSON(w, map[string]any{"deliveries": out})
}

// replay queues an event again (delivered or failed), due now.
func (a *server) replay(w http.ResponseWriter, r *http.Request, _ store.Token) {
	if err := a.o.Store.Replay(r.Context(), r.PathValue("account"), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	writeJSONStatus(w, http.StatusAccepted, map[string]string{"event": r.PathValue("id"), "state": "queued"})
}
