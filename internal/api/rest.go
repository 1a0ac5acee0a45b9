package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
)

// Tokens checks API tokens: the account a token is bound to, or admin.
type Tokens interface {
	CheckToken(ctx context.Context, token string) (account string, admin bool, err error)
}

// LiveCalls changes calls in progress (call.Engine).
type LiveCalls interface {
	// SetVariable sets ${name} on a call of account: call.ErrNoCall, or
	// call.ErrBadVariable with a config.FieldError, when it cannot.
	SetVariable(account, id, name, value string) error
}

// maxBody bounds a JSON request body.
const maxBody = 64 << 10

// problem is an RFC 9457 problem detail; Errors name field paths.
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []fieldError `json:"errors,omitempty"`
}

type fieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func writeProblem(w http.ResponseWriter, status int, detail string, errs ...fieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// authorized wraps an account-scoped handler: a Bearer token bound to the
// {account} of the path, or an admin token. Another account's objects are
// 404, as if they did not exist.
func authorized(tokens Tokens, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(token) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
			writeProblem(w, http.StatusUnauthorized, "an Authorization: Bearer TOKEN header is required")
			return
		}
		account, admin, err := tokens.CheckToken(r.Context(), strings.TrimSpace(token))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard", error="invalid_token"`)
			writeProblem(w, http.StatusUnauthorized, "the token is not valid")
			return
		}
		if !admin && account != r.PathValue("account") {
			writeProblem(w, http.StatusNotFound, "no such account")
			return
		}
		h(w, r)
	}
}

// decodeJSON reads a JSON object into v, refusing unknown fields, trailing
// data and bodies over maxBody; the error names the field when it can.
func decodeJSON(r *http.Request, v any) *fieldError {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return &fieldError{Path: te.Field, Message: fmt.Sprintf("must be a %s, not %s", te.Type, te.Value)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return &fieldError{Path: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Message: "unknown field"}
		case errors.Is(err, io.EOF):
			return &fieldError{Path: "", Message: "the body is empty: a JSON object is required"}
		}
		return &fieldError{Path: "", Message: "malformed JSON: " + err.Error()}
	}
	if dec.More() {
		return &fieldError{Path: "", Message: "data after the JSON object"}
	}
	return nil
}

// putVariable is PUT /api/v1/{account}/calls/{id}/variables/{name} with
// {"value": "..."}: sets a variable on a live call (SPEC §7).
func putVariable(calls LiveCalls) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Value *string `json:"value"`
		}
		if fe := decodeJSON(r, &body); fe != nil {
			writeProblem(w, http.StatusBadRequest, "the body must be {\"value\": \"...\"}", *fe)
			return
		}
		if body.Value == nil {
			writeProblem(w, http.StatusBadRequest, "the body must be {\"value\": \"...\"}", fieldError{Path: "value", Message: "required"})
			return
		}
		account, id, name := r.PathValue("account"), r.PathValue("id"), r.PathValue("name")
		err := calls.SetVariable(account, id, name, *body.Value)
		var fe config.FieldError
		switch {
		case err == nil:
			writeJSON(w, map[string]string{"call": id, "name": name, "value": *body.Value})
		case errors.Is(err, call.ErrNoCall):
			writeProblem(w, http.StatusNotFound, fmt.Sprintf("no call %q in progress", id))
		case errors.As(err, &fe):
			writeProblem(w, http.StatusUnprocessableEntity, "the variable was not set", fieldError{Path: fe.Path, Message: fe.Msg})
		default:
			writeProblem(w, http.StatusInternalServerError, err.Error())
		}
	}
}
