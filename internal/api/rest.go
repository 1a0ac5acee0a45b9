package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/store"
)

// putVariable is PUT /api/v1/{account}/calls/{id}/variables/{name} with
// {"value": "..."}: sets a variable on a live call (SPEC §7).
func (a *server) putVariable(w http.ResponseWriter, r *http.Request, _ store.Token) {
	var body struct {
		Value *string `json:"value"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	if body.Value == nil {
		writeProblem(w, http.StatusBadRequest, "the body must be {\"value\": \"...\"}", fieldError{Path: "value", Message: "required"})
		return
	}
	account, id, name := r.PathValue("account"), r.PathValue("id"), r.PathValue("name")
	err := a.o.Calls.SetVariable(account, id, name, *body.Value)
	var fe config.FieldError
	switch {
	case err == nil:
		writeJSON(w, map[string]string{"call": id, "name": name, "value": *body.Value})
	case errors.Is(err, call.ErrNoCall):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("no call %q in progress", id))
	case errors.As(err, &fe):
		writeProblem(w, http.StatusUnprocessableEntity, "the variable was not set", fieldError{Path: fe.Path, Message: fe.Msg})
	default:
		writeProblem(w, http.StatusInternalServerError, "the variable was not set")
	}
}
