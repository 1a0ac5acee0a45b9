// Package api serves Switchboard's HTTP side: health, readiness, metrics
// and the REST API of SPEC §7 under /api/v1/ (the web UI joins it here).
//
// Every API route is declared once in routes(), with whether it changes
// state; the OpenAPI document (openapi.json) describes the same set and a
// test checks that the two agree.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// Authenticator checks API tokens.
type Authenticator interface {
	// Authenticate returns the token whose secret this is; an error for an
	// unknown or revoked one.
	Authenticate(ctx context.Context, secret string) (store.Token, error)
}

// LiveCalls changes calls in progress (call.Engine).
type LiveCalls interface {
	// SetVariable sets ${name} on a call of account: call.ErrNoCall, or
	// call.ErrBadVariable with a config.FieldError, when it cannot.
	SetVariable(account, id, name, value string) error
	// Live lists the account's calls in progress.
	Live(account string) []call.LiveCall
}

// Store is what the REST API reads and writes (store.Store).
type Store interface {
	Authenticator
	LoadConfig(ctx context.Context, account string) (*config.Document, int64, error)
	PutConfig(ctx context.Context, doc *config.Document, ch store.Change) (int64, error)
	EditConfig(ctx context.Context, account string, ch store.Change, edit func(doc *config.Document, version int64) error) (int64, error)
	ConfigHistory(ctx context.Context, account string) ([]store.ConfigVersion, error)
	ConfigAt(ctx context.Context, account string, version int64) (*config.Document, store.ConfigVersion, error)
	SetReputation(ctx context.Context, account, caller string, level config.Level) error
	Reputation(ctx context.Context, account, caller string) (config.Level, error)
	Reputations(ctx context.Context, account string) (map[string]config.Level, error)
	ListCalls(ctx context.Context, f store.CallFilter) ([]store.CallRecord, string, error)
	EachCall(ctx context.Context, f store.CallFilter, fn func(*store.CallRecord) error) error
	GetCall(ctx context.Context, account, id string) (*store.CallRecord, error)
	SetVoicemailHeard(ctx context.Context, account, callID string, heard bool) error
	Missed(ctx context.Context, f store.MissedFilter) ([]store.MissedCall, string, error)
	Registrations(ctx context.Context, account string, now time.Time) ([]store.Contact, error)
	ResolveMissed(ctx context.Context, account, callID string, at time.Time) error
	NewToken(ctx context.Context, account, name string, readOnly bool) (string, store.Token, error)
	Tokens(ctx context.Context, account string) ([]store.Token, error)
	RevokeToken(ctx context.Context, id string) error
	RotateWebhookSecret(ctx context.Context, account string, keepPrevious time.Duration) (string, error)
	Deliveries(ctx context.Context, account string, limit int) ([]store.Delivery, error)
	Replay(ctx context.Context, account, eventID string) error
	InsertMessage(ctx context.Context, m *store.Message, ds []store.MessageDelivery, evs []store.Event) (bool, error)
	Messages(ctx context.Context, f store.MessageFilter) ([]store.Message, string, error)
	Message(ctx context.Context, account, id string) (*store.Message, error)
}

// Accounts is the node's view of the accounts (accounts.Directory).
type Accounts interface {
	// Reload makes a written version serve at once, on this node.
	Reload(ctx context.Context, account string, version int64)
	Explain(ctx context.Context, account string, req routing.Request) (*routing.Explanation, error)
}

// Options wires the HTTP handler.
type Options struct {
	Ready   func() bool  // readiness: listeners up, configuration loaded, not draining
	Metrics http.Handler // Prometheus text exposition
	Pprof   bool         // serve /debug/pprof/ (profiling under load)
	// Tokens and Calls enable PUT calls/{id}/variables/{name} (nil: the
	// REST API is not served).
	Tokens Authenticator
	Calls  LiveCalls
	// Hub, when set, serves the live events stream (GET {account}/events).
	Hub *Hub
	// Store and Accounts (both) enable the rest of the REST API.
	Store    Store
	Accounts Accounts
	// PromptDir is where uploaded prompts are written, one folder per
	// account (default ./switchboard-data/prompts).
	PromptDir string
	// Rate is each token's sustained request rate per second and Burst its
	// burst (defaults 20 and 40); beyond them: 429 with Retry-After.
	Rate  float64
	Burst int
	Log   *slog.Logger
	// Now is the clock of the rate limiter (default time.Now).
	Now func() time.Time
	// TTS, when set, renders say: prompts as they are written, so that a
	// text the engine cannot speak is refused (422) rather than stored.
	TTS prompt.TTS
}

// NewHandler returns the HTTP handler: /healthz, /readyz, /metrics and the
// REST API.
func NewHandler(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if o.Ready != nil && !o.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Tokens != nil {
		a := newServer(o)
		for _, rt := range a.routes() {
			mux.HandleFunc(rt.method+" /api/v1"+rt.path, a.wrap(rt))
		}
		mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI)
		// Everything else under /api/ is a problem, not the mux's text 404:
		// a 405 naming the methods the path has, or a 404.
		const fallback = "/api/"
		mux.HandleFunc(fallback, func(w http.ResponseWriter, r *http.Request) {
			var allow []string
			for _, m := range []string{"GET", "PUT", "POST", "PATCH", "DELETE"} {
				other := r.Clone(r.Context())
				other.Method = m
				if _, p := mux.Handler(other); p != fallback {
					allow = append(allow, m)
				}
			}
			if len(allow) > 0 {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeProblem(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
				return
			}
			writeProblem(w, http.StatusNotFound, "no such API resource: "+r.URL.Path)
		})
	}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// The mux would redirect a path with dot segments to its cleaned form
	// (and a client would re-send a PUT there): an API path with them is
	// refused instead.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			if bad := badPath(r.URL.Path); bad != "" {
				writeProblem(w, http.StatusBadRequest, bad)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// Routes lists the API routes a handler made with o serves, as
// "METHOD /api/v1/path" patterns.
func Routes(o Options) []string {
	out := []string{"GET /api/v1/openapi.json"}
	for _, rt := range newServer(o).routes() {
		out = append(out, rt.method+" /api/v1"+rt.path)
	}
	return out
}

// server holds the REST API's dependencies.
type server struct {
	o       Options
	limiter *limiter
}

func newServer(o Options) *server {
	if o.Rate <= 0 {
		o.Rate = 20
	}
	if o.Burst <= 0 {
		o.Burst = 40
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &server{o: o, limiter: newLimiter(o.Rate, o.Burst, o.Now)}
}

// route is one API endpoint.
type route struct {
	method string
	path   string // under /api/v1, with {wildcards}
	admin  bool   // admin tokens only (no {account} in the path)
	h      func(w http.ResponseWriter, r *http.Request, tok store.Token)
}

// writes reports whether the route changes state: refused to read-only
// tokens.
func (rt route) writes() bool {
	return rt.method != http.MethodGet && rt.method != http.MethodHead
}

// routes is every API endpoint; the variables endpoint needs only Tokens
// and Calls, the rest the Store too.
func (a *server) routes() []route {
	var rs []route
	if a.o.Calls != nil {
		rs = append(rs, route{method: "PUT", path: "/{account}/calls/{id}/variables/{name}", h: a.putVariable})
	}
	if a.o.Store == nil || a.o.Accounts == nil {
		return rs
	}
	if a.o.Hub != nil {
		rs = append(rs, route{method: "GET", path: "/{account}/events", h: a.events})
	}
	rs = append(rs, a.configRoutes()...)
	rs = append(rs, a.activityRoutes()...)
	rs = append(rs, a.missedRoutes()...)
	rs = append(rs, a.messageRoutes()...)
	rs = append(rs, a.tokenRoutes()...)
	rs = append(rs, a.webhookRoutes()...)
	return rs
}

// wrap authenticates the request, scopes it to the token's account,
// refuses writes to read-only tokens, applies the token's rate limit and
// turns a panic into a 500 problem.
func (a *server) wrap(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				a.o.Log.Error("api handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
				writeProblem(w, http.StatusInternalServerError, "internal error")
			}
		}()
		if bad := badPath(r.URL.Path); bad != "" {
			writeProblem(w, http.StatusBadRequest, bad)
			return
		}
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(secret) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
			writeProblem(w, http.StatusUnauthorized, "an Authorization: Bearer TOKEN header is required")
			return
		}
		tok, err := a.o.Tokens.Authenticate(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard", error="invalid_token"`)
			writeProblem(w, http.StatusUnauthorized, "the token is not valid")
			return
		}
		if wait, ok := a.limiter.allow(tok.ID); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeProblem(w, http.StatusTooManyRequests, "this token's request rate is exceeded; retry later")
			return
		}
		admin := tok.Account == ""
		switch {
		case rt.admin && !admin:
			writeProblem(w, http.StatusNotFound, "no such API resource: "+r.URL.Path)
			return
		case !rt.admin && !admin && tok.Account != r.PathValue("account"):
			// Another account's objects do not exist for this token.
			writeProblem(w, http.StatusNotFound, "no such account")
			return
		case rt.writes() && tok.ReadOnly:
			writeProblem(w, http.StatusForbidden, "this token is read-only")
			return
		}
		rt.h(w, r, tok)
	}
}

// badPath refuses paths that no resource has and that would be dangerous
// if a name reached a file path: dot segments and control characters.
func badPath(p string) string {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "a path segment may not be . or .."
		}
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return "the path contains a control character"
		}
	}
	return ""
}

// author is how a token signs the configuration versions it writes.
func author(tok store.Token) string {
	if tok.Name != "" {
		return tok.Name
	}
	return "token:" + tok.ID
}
