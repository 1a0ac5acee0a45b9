// Package ui is the owner's web console (SPEC §7, issue 11): server-rendered
// pages served at / on the HTTP port, assets embedded. It talks only to the
// REST API, in-process: every page builds API requests carrying the
// session's token, so the API's authorisation (read-only tokens, account
// scope) and validation (problem+json with field paths) are the console's.
package ui

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the console.
type Options struct {
	// API serves /api/, /metrics, /healthz, /readyz: every path the console
	// does not serve itself goes to it.
	API http.Handler
	// Log receives the console's errors (default slog.Default()).
	Log *slog.Logger
	// SessionTTL is how long a session lasts without use (default 12h).
	SessionTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// UI is the console's handler.
type UI struct {
	o     Options
	mux   *http.ServeMux
	pages map[string]*template.Template

	mu       sync.Mutex
	sessions map[string]*session
}

// session is one signed-in browser: the token it signed in with and its
// synchronizer CSRF token.
type session struct {
	id       string
	account  string
	token    string
	readOnly bool
	csrf     string
	last     time.Time
	flash    string
}

const (
	cookieName = "sb_session"
	// preCookie carries the sign-in form's CSRF token (double submit):
	// before signing in there is no session to hold one.
	preCookie = "sb_signin"
)

// New returns the console wrapped around o.API.
func New(o Options) *UI {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.API == nil {
		o.API = http.NotFoundHandler()
	}
	u := &UI{o: o, mux: http.NewServeMux(), sessions: map[string]*session{}}
	u.pages = parsePages()
	u.routes()
	return u
}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/base.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "base" {
			continue
		}
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return out
}

// ServeHTTP serves the console's paths and hands the rest to the API.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The API's paths go to it untouched: the console's mux would clean
	// dot segments with a redirect, which the API refuses itself.
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/api/"), strings.HasPrefix(p, "/debug/"), p == "/metrics", p == "/healthz", p == "/readyz":
		u.o.API.ServeHTTP(w, r)
		return
	}
	u.mux.ServeHTTP(w, r)
}

// handler is a page that needs a session.
type handler func(w http.ResponseWriter, r *http.Request, s *session)

// auth wraps a page: no session redirects to the sign-in page; a POST
// without the session's CSRF token is refused.
func (u *UI) auth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := u.session(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				http.Error(w, "the form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// session returns the request's live session, or nil.
func (u *UI) session(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.sessions[c.Value]
	now := u.o.Now()
	if s == nil || now.Sub(s.last) > u.o.SessionTTL {
		delete(u.sessions, c.Value)
		return nil
	}
	s.last = now
	return s
}

func (u *UI) newSession(w http.ResponseWriter, r *http.Request, account, token string, readOnly bool) {
	s := &session{id: randomID(), account: account, token: token, readOnly: readOnly, csrf: randomID(), last: u.o.Now()}
	u.mu.Lock()
	for id, old := range u.sessions { // the expired ones go when a new one comes
		if s.last.Sub(old.last) > u.o.SessionTTL {
			delete(u.sessions, id)
		}
	}
	u.sessions[s.id] = s
	u.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

func (u *UI) endSession(w http.ResponseWriter, s *session) {
	u.mu.Lock()
	delete(u.sessions, s.id)
	u.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// takeFlash returns and clears the session's message for the next page.
func (u *UI) takeFlash(s *session) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (u *UI) setFlash(s *session, msg string) {
	u.mu.Lock()
	s.flash = msg
	u.mu.Unlock()
}

// --- the API, in-process ---

// problem is the API's RFC 9457 problem detail.
type problem struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"errors"`
}

// apiResult is one API response.
type apiResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// OK reports a 2xx.
func (a *apiResult) OK() bool { return a.Status >= 200 && a.Status < 300 }

// Decode reads the JSON body into v.
func (a *apiResult) Decode(v any) error { return json.Unmarshal(a.Body, v) }

// Problem is the body read as a problem (Status always set).
func (a *apiResult) Problem() problem {
	var p problem
	_ = json.Unmarshal(a.Body, &p)
	p.Status = a.Status
	if p.Detail == "" {
		p.Detail = http.StatusText(a.Status)
	}
	return p
}

// Version is the ETag's configuration version ("" when none).
func (a *apiResult) Version() string { return strings.Trim(a.Header.Get("ETag"), `"`) }

// recorder is a buffering ResponseWriter for in-process API calls.
type recorder struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.buf.Write(b)
}

// apiRequest builds a request to the API under /api/v1/{account} as the
// session; body, when not nil, is sent as JSON.
func (u *UI) apiRequest(r *http.Request, s *session, method, path string, body any) *http.Request {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(r.Context(), method, "/api/v1/"+url.PathEscape(s.account)+path, rd)
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// api calls the API; ifMatch, when set, is the version the write expects.
func (u *UI) api(r *http.Request, s *session, method, path string, body any, ifMatch string) *apiResult {
	req := u.apiRequest(r, s, method, path, body)
	if ifMatch != "" {
		req.Header.Set("If-Match", `"`+ifMatch+`"`)
	}
	return u.do(req)
}

func (u *UI) do(req *http.Request) *apiResult {
	rec := &recorder{h: http.Header{}}
	u.o.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &apiResult{Status: rec.status, Header: rec.h, Body: rec.buf.Bytes()}
}

// get reads a JSON resource into v; an error is the problem's detail.
func (u *UI) get(r *http.Request, s *session, path string, v any) (*apiResult, error) {
	res := u.api(r, s, http.MethodGet, path, nil, "")
	if !res.OK() {
		return res, errors.New(res.Problem().Detail)
	}
	if v != nil {
		if err := res.Decode(v); err != nil {
			return res, fmt.Errorf("the API's answer could not be read: %w", err)
		}
	}
	return res, nil
}

// proxy hands the request to the API as the session, streaming the answer
// (recordings with Range, the event stream, CSV).
func (u *UI) proxy(w http.ResponseWriter, r *http.Request, s *session, path string, accept string) {
	req := u.apiRequest(r, s, http.MethodGet, path, nil)
	for _, h := range []string{"Range", "If-Range", "If-Modified-Since"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	u.o.API.ServeHTTP(w, req)
}
