package api

import (
	"net/http"
	"time"

	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

func (a *server) missedRoutes() []route {
	return []route{
		{method: "GET", path: "/{account}/missed", h: a.listMissed},
		{method: "POST", path: "/{account}/missed/{id}/resolve", h: a.resolveMissed},
	}
}

// missedJSON is an entry of the missed-call ledger; call_id is the call
// record's id (calls/{id}).
type missedJSON struct {
	CallID     string     `json:"call_id"`
	Number     string     `json:"number"`
	Extension  string     `json:"extension"`
	Caller     string     `json:"caller"`
	CallerName string     `json:"caller_name"`
	Start      time.Time  `json:"start"`
	Resolved   bool       `json:"resolved"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// ResolvedBy is "call:ID" (a later answered call between the same two
	// parties) or "owner".
	ResolvedBy string `json:"resolved_by,omitempty"`
}

func toMissedJSON(m store.MissedCall) missedJSON {
	j := missedJSON{CallID: m.CallID, Number: m.Number, Extension: m.Extension, Caller: m.Caller,
		CallerName: m.CallerName, Start: m.Start.UTC(), Resolved: !m.Resolved.IsZero(), ResolvedBy: m.ResolvedBy}
	if j.Resolved {
		at := m.Resolved.UTC()
		j.ResolvedAt = &at
	}
	return j
}

// listMissed is the missed-call ledger, newest first: ?number=, ?extension=,
// ?state=open|resolved, ?limit=, ?cursor=.
func (a *server) listMissed(w http.ResponseWriter, r *http.Request, _ store.Token) {
	q := r.URL.Query()
	f := store.MissedFilter{Account: r.PathValue("account"), Number: q.Get("number"),
		Extension: q.Get("extension"), Cursor: q.Get("cursor")}
	if n, ok := routing.NormalizeNumber(f.Number); ok {
		f.Number = n
	}
	switch q.Get("state") {
	case "":
	case "open", "resolved":
		open := q.Get("state") == "open"
		f.Open = &open
	default:
		writeError(w, badRequest("state is open or resolved", fieldError{Path: "state", Message: "open or resolved"}))
		return
	}
	var err error
	if f.Limit, err = pageLimit(q.Get("limit")); err != nil {
		writeError(w, err)
		return
	}
	list, next, err := a.o.Store.Missed(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	out := struct {
		Missed []missedJSON `json:"missed"`
		Next   string       `json:"next,omitempty"`
	}{Missed: []missedJSON{}, Next: next}
	for _, m := range list {
		out.Missed = append(out.Missed, toMissedJSON(m))
	}
	writeJSON(w, out)
}

// resolveMissed marks an entry done by the owner; one resolved already
// stays as it was. It answers with the entry.
func (a *server) resolveMissed(w http.ResponseWriter, r *http.Request, _ store.Token) {
	account, id := r.PathValue("account"), r.PathValue("id")
	if err := a.o.Store.ResolveMissed(r.Context(), account, id, a.o.Now()); err != nil {
		writeError(w, err)
		return
	}
	list, _, err := a.o.Store.Missed(r.Context(), store.MissedFilter{Account: account, CallID: id, Limit: 1})
	if err != nil || len(list) == 0 {
		writeError(w, err)
		return
	}
	writeJSON(w, toMissedJSON(list[0]))
}
