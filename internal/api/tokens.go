package api

import (
	"net/http"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// tokenJSON is a token as the API shows it: never its secret, except once
// in the answer that created it.
type tokenJSON struct {
	ID       string    `json:"id"`
	Account  string    `json:"account,omitempty"` // empty: an admin token
	Name     string    `json:"name,omitempty"`
	ReadOnly bool      `json:"read_only"`
	Created  time.Time `json:"created"`
	Secret   string    `json:"token,omitempty"`
}

func tokenOut(t store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Account: t.Account, Name: t.Name, ReadOnly: t.ReadOnly, Created: t.Created}
}

// tokenRoutes are the admin token endpoints (admin tokens only).
func (a *server) tokenRoutes() []route {
	return []route{
		{method: "GET", path: "/tokens", admin: true, h: a.listTokens},
		{method: "POST", path: "/tokens", admin: true, h: a.createToken},
		{method: "DELETE", path: "/tokens/{id}", admin: true, h: a.revokeToken},
	}
}

// listTokens lists every token, or one account's: ?account=A.
func (a *server) listTokens(w http.ResponseWriter, r *http.Request, _ store.Token) {
	ts, err := a.o.Store.Tokens(r.Context(), r.URL.Query().Get("account"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenOut(t))
	}
	writeJSON(w, map[string]any{"tokens": out})
}

// createToken makes a token: {"account": "acme", "name": "crm",
// "read_only": true}; no account: an admin token.
func (a *server) createToken(w http.ResponseWriter, r *http.Request, _ store.Token) {
	var body struct {
		Account  string `json:"account"`
		Name     string `json:"name"`
		ReadOnly bool   `json:"read_only"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	if body.Account != "" {
		if _, _, err := a.o.Store.LoadConfig(r.Context(), body.Account); err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "no such account", fieldError{Path: "account", Message: "unknown account"})
			return
		}
	}
	if len(body.Name) > 64 {
		writeProblem(w, http.StatusUnprocessableEntity, "the name is too long", fieldError{Path: "name", Message: "at most 64 characters"})
		return
	}
	secret, t, err := a.o.Store.NewToken(r.Context(), body.Account, body.Name, body.ReadOnly)
	if err != nil {
		writeError(w, err)
		return
	}
	out := tokenOut(t)
	out.Secret = secret
	writeJSONStatus(w, http.StatusCreated, out)
}

func (a *server) revokeToken(w http.ResponseWriter, r *http.Request, _ store.Token) {
	if err := a.o.Store.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
