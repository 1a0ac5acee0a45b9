package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/internal/api"
	"github.com/switchboard/switchboard/internal/node/nodetest"
)

// leaks are what no error response may contain: a Go stack or panic, or
// the SQL of a store failure.
var leaks = []string{"goroutine", "panic", "sql", "SELECT", "runtime/", ".go:"}

func leaked(b []byte) string {
	for _, l := range leaks {
		if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(l))) {
			return l
		}
	}
	return ""
}

// get sends one request and reads the whole response.
func get(t *testing.T, method, url, token string, body io.Reader, hs ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hs); i += 2 {
		req.Header.Set(hs[i], hs[i+1])
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return res, b
}

// TestHTTPHardeningHeaders: every response — API success and error,
// /metrics, /healthz, the web console's pages and assets — carries
// nosniff, a frame-ancestors 'none' CSP and X-Frame-Options DENY; the
// API's and /metrics' also no-store and no referrer.
func TestHTTPHardeningHeaders(t *testing.T) {
	srv := startNode(t, "")
	c := newClient(t, srv, "acme", "hardening", false, 1)
	tok := c.token()
	for _, tc := range []struct {
		path, token string
		status      int
		machine     bool // API or operations: no-store, no referrer, default-src 'none'
	}{
		{"/api/v1/acme/numbers", tok, 200, true},
		{"/api/v1/acme/numbers", "", 401, true},
		{"/api/v1/acme/nothing-here", tok, 404, true},
		{"/api/v1/openapi.json", "", 200, true},
		{"/metrics", "", 200, true},
		{"/healthz", "", 200, true},
		{"/readyz", "", 200, true},
		{"/signin", "", 200, false},
		{"/static/app.css", "", 200, false},
		{"/", "", 303, false},
	} {
		res, _ := get(t, "GET", srv.HTTPURL+tc.path, tc.token, nil)
		h := res.Header
		if res.StatusCode != tc.status {
			t.Errorf("GET %s: %d, want %d", tc.path, res.StatusCode, tc.status)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("Referrer-Policy") == "" {
			t.Errorf("GET %s: security headers missing: %v", tc.path, h)
		}
		if tc.machine && (h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'")) {
			t.Errorf("GET %s: no-store / no-referrer / default-src 'none' missing: %v", tc.path, h)
		}
	}
	// The console's pages keep their own policy (scripts and styles of 'self').
	res, _ := get(t, "GET", srv.HTTPURL+"/signin", "", nil)
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("the sign-in page's CSP is %q", csp)
	}
}

// TestHTTPHardeningBodyLimit: an API body over its limit is 413
// problem+json whether it declares its length or is chunked; a prompt
// upload is allowed more than a JSON body and a WAV over 1 MiB still
// uploads.
func TestHTTPHardeningBodyLimit(t *testing.T) {
	srv := startNode(t, "")
	c := newClient(t, srv, "acme", "hardening", false, 4)
	big := `{"from":"+34600000001","to":"+34910000001","text":"` + strings.Repeat("x", 2<<20) + `"}`
	chunked := func(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) } // no length: chunked
	for name, body := range map[string]io.Reader{"sized": strings.NewReader(big), "chunked": chunked(big)} {
		res, b := get(t, "POST", c.base+"/acme/messages", c.token(), body, "Content-Type", "application/json")
		if res.StatusCode != http.StatusRequestEntityTooLarge || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s 2 MiB message: %d %s %.200s, want 413 problem+json", name, res.StatusCode, res.Header.Get("Content-Type"), b)
		}
	}
	huge := bytes.Repeat([]byte{0}, 17<<20)
	for name, body := range map[string]io.Reader{"sized": bytes.NewReader(huge), "chunked": io.MultiReader(bytes.NewReader(huge))} {
		res, b := get(t, "PUT", c.base+"/acme/prompts/huge", c.token(), body, "Content-Type", "audio/wav")
		if res.StatusCode != http.StatusRequestEntityTooLarge || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s 17 MiB prompt: %d %.200s, want 413 problem+json", name, res.StatusCode, b)
		}
	}
	wav := wavMono16k(sine(440, 16000, 40*16000)) // 40 s: 1.2 MiB
	r := c.do("PUT", "/acme/prompts/long", wav, hdr("Content-Type", "audio/wav")...)
	if r.Status != 200 && r.Status != 201 {
		t.Errorf("a %d-byte WAV upload: %s", len(wav), r)
	}
}

// lockedBuffer collects a node's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestHTTPHardeningErrors: a store failure answers 500 "internal error"
// without its SQL text, which goes to the log instead; the API's error
// responses (malformed bodies, bad paths, bad tokens) carry no stack,
// panic or SQL.
func TestHTTPHardeningErrors(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "switchboard.db")
	var logs lockedBuffer
	srv := nodetest.Run(t, fmt.Sprintf(acmeDoc, builtinDir(t)), nodetest.Options{DB: "sqlite:" + dbPath, TTS: stubTTS{},
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	c := newClient(t, srv, "acme", "hardening", false, 4)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/api/v1/acme/messages", `{"from":`},
		{"PUT", "/api/v1/acme/config", "account: [unclosed"},
		{"PUT", "/api/v1/acme/numbers/+34910000001/rules", `{"rules":[{"weight":"heavy"}]}`},
		{"GET", "/api/v1/acme/calls?from=yesterday", ""},
		{"GET", "/api/v1/acme/calls?cursor=' OR 1=1 --", ""},
		{"GET", "/api/v1/acme/%2e%2e/etc", ""},
		{"DELETE", "/api/v1/acme/config", ""},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		res, b := get(t, tc.method, srv.HTTPURL+tc.path, c.token(), body, "Content-Type", "application/json")
		if res.StatusCode < 400 {
			t.Errorf("%s %s: %d, want an error", tc.method, tc.path, res.StatusCode)
		}
		if l := leaked(b); l != "" {
			t.Errorf("%s %s: the error response contains %q: %s", tc.method, tc.path, l, b)
		}
	}

	// A store failure: the calls table gone under the node.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `ALTER TABLE calls RENAME TO calls_hidden`); err != nil {
		t.Fatal(err)
	}
	res, b := get(t, "GET", c.base+"/acme/calls", c.token(), nil)
	if _, err := db.ExecContext(ctx, `ALTER TABLE calls_hidden RENAME TO calls`); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 500 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("GET calls with the table gone: %d %s", res.StatusCode, b)
	}
	if l := leaked(b); l != "" || !bytes.Contains(b, []byte("internal error")) {
		t.Errorf("the 500 contains %q: %s", l, b)
	}
	if !strings.Contains(logs.String(), "api: internal error") || !strings.Contains(logs.String(), "calls") {
		t.Errorf("the store error is not in the log:\n%s", logs.String())
	}
}

// TestHTTPHardeningPanic: a handler that panics answers 500 problem+json
// with no trace of the panic (logged with its stack instead); one that
// panics after starting its response has the connection cut, and the
// server goes on serving.
func TestHTTPHardeningPanic(t *testing.T) {
	var logs lockedBuffer
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) {
		panic("SELECT secret FROM api_tokens: boom")
	})
	mux.HandleFunc("/half", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("partial"))
		panic("late")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	ts := httptest.NewServer(api.Harden(mux, api.HardenOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))}))
	ts.Config.ErrorLog = slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelError)
	defer ts.Close()

	res, b := get(t, "GET", ts.URL+"/boom", "", nil)
	if res.StatusCode != 500 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("panic: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	if l := leaked(b); l != "" || bytes.Contains(b, []byte("boom")) {
		t.Errorf("the 500 shows the panic (%q): %s", l, b)
	}
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("the panic and its stack are not logged:\n%s", logs.String())
	}
	if res, err := http.Get(ts.URL + "/half"); err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Errorf("a panic after a partial response: read whole, status %d", res.StatusCode)
		}
	}
	if res, b := get(t, "GET", ts.URL+"/ok", "", nil); res.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("after the panics: %d %s", res.StatusCode, b)
	}
}
