package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/store"
)

type fakeTokens map[string]string // token -> account ("" admin)

func (f fakeTokens) Authenticate(_ context.Context, token string) (store.Token, error) {
	a, ok := f[token]
	if !ok {
		return store.Token{}, errors.New("unknown token")
	}
	return store.Token{ID: token, Account: a}, nil
}

type fakeCalls struct{ set map[string]string }

func (f *fakeCalls) Live(string) []call.LiveCall { return nil }

func (f *fakeCalls) SetVariable(account, id, name, value string) error {
	if account != "acme" || id != "c1" {
		return call.ErrNoCall
	}
	if name == "bad name" {
		return fmt.Errorf("%w: %w", call.ErrBadVariable, config.FieldError{Path: "name", Msg: "not a variable name"})
	}
	f.set[name] = value
	return nil
}

func TestPutVariable(t *testing.T) {
	calls := &fakeCalls{set: map[string]string{}}
	srv := httptest.NewServer(NewHandler(Options{Tokens: fakeTokens{"tok": "acme", "other": "globex", "root": ""}, Calls: calls}))
	defer srv.Close()
	for _, tc := range []struct {
		name, token, path, body string
		status                  int
		want                    string // in the body
	}{
		{"no token", "", "/api/v1/acme/calls/c1/variables/dest", `{"value":"102"}`, 401, "Bearer"},
		{"bad token", "nope", "/api/v1/acme/calls/c1/variables/dest", `{"value":"102"}`, 401, "not valid"},
		{"another account", "other", "/api/v1/acme/calls/c1/variables/dest", `{"value":"102"}`, 404, "no such account"},
		{"no such call", "tok", "/api/v1/acme/calls/c9/variables/dest", `{"value":"102"}`, 404, `no call \"c9\"`},
		{"malformed JSON", "tok", "/api/v1/acme/calls/c1/variables/dest", `{"value":`, 400, "malformed JSON"},
		{"unknown field", "tok", "/api/v1/acme/calls/c1/variables/dest", `{"valeu":"102"}`, 400, `"path":"valeu"`},
		{"wrong type", "tok", "/api/v1/acme/calls/c1/variables/dest", `{"value":102}`, 400, `"path":"value"`},
		{"missing value", "tok", "/api/v1/acme/calls/c1/variables/dest", `{}`, 400, `"message":"required"`},
		{"trailing data", "tok", "/api/v1/acme/calls/c1/variables/dest", `{"value":"1"} {}`, 400, "data after"},
		{"bad name", "tok", "/api/v1/acme/calls/c1/variables/bad%20name", `{"value":"1"}`, 422, `"path":"name"`},
		{"too large", "tok", "/api/v1/acme/calls/c1/variables/dest", `{"value":"` + strings.Repeat("1", 2<<20) + `"}`, 413, "over"},
		{"set", "tok", "/api/v1/acme/calls/c1/variables/dest", `{"value":"102"}`, 200, `"value":"102"`},
		{"admin", "root", "/api/v1/acme/calls/c1/variables/other", `{"value":"+34600000003"}`, 200, `"name":"other"`},
	} {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+tc.path, strings.NewReader(tc.body))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body := string(b)
		if res.StatusCode != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, res.StatusCode, body, tc.status, tc.want)
		}
		if res.StatusCode >= 400 {
			var p problem
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(b, &p) != nil || p.Status != res.StatusCode {
				t.Errorf("%s: not a problem+json (%s): %s", tc.name, ct, body)
			}
		}
	}
	if calls.set["dest"] != "102" || calls.set["other"] != "+34600000003" {
		t.Errorf("variables set: %v", calls.set)
	}
}
