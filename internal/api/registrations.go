package api

import (
	"net/http"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// registrationJSON is one registered device of a user.
type registrationJSON struct {
	User      string    `json:"user"`
	Contact   string    `json:"contact"`   // the Contact URI it registered
	Address   string    `json:"address"`   // where the REGISTER came from
	Transport string    `json:"transport"` // UDP, TCP, TLS…
	UserAgent string    `json:"user_agent"`
	Expires   time.Time `json:"expires"`
}

// listRegistrations is GET registrations: the account's registered
// devices, by user.
func (a *server) listRegistrations(w http.ResponseWriter, r *http.Request, _ store.Token) {
	account := r.PathValue("account")
	if !a.accountExists(w, r.Context(), account) {
		return
	}
	cs, err := a.o.Store.Registrations(r.Context(), account, a.o.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	out := struct {
		Registrations []registrationJSON `json:"registrations"`
	}{Registrations: []registrationJSON{}}
	for _, c := range cs {
		out.Registrations = append(out.Registrations, registrationJSON{User: c.User, Contact: c.URI, Address: c.Source,
			Transport: c.Transport, UserAgent: c.UserAgent, Expires: c.Expires.UTC()})
	}
	writeJSON(w, out)
}
