package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// HardenOptions configure Harden.
type HardenOptions struct {
	// Log receives recovered panics and internal errors (default
	// slog.Default()): their text never reaches the client.
	Log *slog.Logger
	// Download bounds the write of a long response — a recording, a
	// voicemail, a CSV export (default 1h): the server's WriteTimeout would
	// cut it. Event streams have no bound.
	Download time.Duration
	// Upload bounds the read of a large request body — a prompt, a whole
	// configuration (default 10 min): the server's ReadTimeout would cut it.
	Upload time.Duration
}

// Harden wraps the whole HTTP side (API, web console, /metrics): security
// headers on every response, a bounded request body (413 problem beyond
// it), per-request deadlines where the server's timeouts would cut a
// legitimate long request, and a recovered panic answered 500 without its
// text.
func Harden(next http.Handler, o HardenOptions) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Download <= 0 {
		o.Download = time.Hour
	}
	if o.Upload <= 0 {
		o.Upload = 10 * time.Minute
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hardenedWriter{ResponseWriter: w, log: o.Log}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared, as net/http does
				panic(p)
			}
			o.Log.Error("http handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if hw.wrote {
				panic(http.ErrAbortHandler) // a partial response: the connection is cut
			}
			writeProblem(hw, http.StatusInternalServerError, "internal error")
		}()
		setSecurityHeaders(hw.Header(), r)
		limit, kind := classify(r)
		if r.ContentLength > limit {
			writeProblem(hw, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", limit))
			return
		}
		hasBody := r.Body != nil && r.Body != http.NoBody
		if hasBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		// The longer deadlines are granted once the handler has accepted
		// the request (its token checked): a refused one, or a client that
		// never gets that far, stays under the server's timeouts.
		rc := http.NewResponseController(w)
		switch {
		case (kind == kindStream || kind == kindDownload) && !hasBody:
			hw.onStart = func() {
				// The server's read deadline would end the request's
				// context (net/http's background read fails), its write
				// deadline the response.
				_ = rc.SetReadDeadline(time.Time{})
				if kind == kindStream {
					_ = rc.SetWriteDeadline(time.Time{})
				} else {
					_ = rc.SetWriteDeadline(time.Now().Add(o.Download))
				}
			}
		case kind == kindUpload && hasBody:
			r.Body = &extendingBody{ReadCloser: r.Body, extend: func() {
				_ = rc.SetReadDeadline(time.Now().Add(o.Upload))
				_ = rc.SetWriteDeadline(time.Now().Add(o.Upload + time.Minute))
			}}
		}
		next.ServeHTTP(hw, r)
	})
}

// setSecurityHeaders sets the headers every response carries. The web
// console's pages replace the CSP and Referrer-Policy with their own.
func setSecurityHeaders(h http.Header, r *http.Request) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if machinePath(r.URL.Path) {
		// JSON, metrics and audio are never a document to run or frame.
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		return
	}
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
}

// machinePath reports the paths of the API and the operations endpoints,
// as opposed to the web console's.
func machinePath(p string) bool {
	return strings.HasPrefix(p, "/api/") || p == "/metrics" || p == "/healthz" || p == "/readyz"
}

// requestKind says which deadlines a request needs beyond the server's.
type requestKind int

const (
	kindNormal   requestKind = iota
	kindStream               // an event stream: open for as long as the client stays
	kindDownload             // a long response: a recording, a CSV export
	kindUpload               // a large body: a WAV prompt, a whole configuration
)

// longRequests maps the requests that the server's timeouts would cut to
// their kind; bodyLimits the requests allowed a body over maxBody.
var longRequests, bodyLimits = func() (*http.ServeMux, *http.ServeMux) {
	kinds := map[string]requestKind{
		"GET /api/v1/{account}/events":                kindStream,
		"GET /live":                                   kindStream, // the console's relay of events
		"GET /api/v1/{account}/calls":                 kindDownload,
		"GET /api/v1/{account}/calls/{id}/recording":  kindDownload,
		"GET /api/v1/{account}/voicemails/{id}/audio": kindDownload,
		"GET /calls.csv":                              kindDownload,
		"GET /calls/{id}/recording":                   kindDownload,
		"GET /calls/{id}/voicemail":                   kindDownload,
		"PUT /api/v1/{account}/prompts/{name}":        kindUpload,
		"PUT /api/v1/{account}/config":                kindUpload,
	}
	limits := map[string]int64{
		"PUT /api/v1/{account}/prompts/{name}": maxUpload,
		"PUT /api/v1/{account}/config":         config.MaxDocumentSize,
	}
	lm, bm := http.NewServeMux(), http.NewServeMux()
	for p, k := range kinds {
		lm.Handle(p, kindHandler(k))
	}
	for p, n := range limits {
		bm.Handle(p, limitHandler(n))
	}
	return lm, bm
}()

type kindHandler requestKind

func (kindHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

type limitHandler int64

func (limitHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// classify returns the body limit and the kind of a request.
func classify(r *http.Request) (int64, requestKind) {
	limit, kind := int64(maxBody), kindNormal
	if h, _ := bodyLimits.Handler(r); h != nil {
		if n, ok := h.(limitHandler); ok {
			limit = int64(n)
		}
	}
	if h, _ := longRequests.Handler(r); h != nil {
		if k, ok := h.(kindHandler); ok {
			kind = requestKind(k)
		}
	}
	return limit, kind
}

// hardenedWriter notes whether the response has started (a panic after
// that cuts the connection), runs onStart when a successful one does,
// and carries the logger of internal errors.
type hardenedWriter struct {
	http.ResponseWriter
	log     *slog.Logger
	wrote   bool
	onStart func() // or nil
}

func (w *hardenedWriter) start(status int) {
	if w.wrote || status < 200 {
		return
	}
	w.wrote = true
	if w.onStart != nil && status < 300 {
		w.onStart()
	}
}

func (w *hardenedWriter) WriteHeader(status int) {
	w.start(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *hardenedWriter) Write(b []byte) (int, error) {
	w.start(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Flush serves the event stream (http.Flusher).
func (w *hardenedWriter) Flush() {
	w.start(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// extendingBody runs extend on the handler's first read of the body: the
// request has been accepted, and a large body may take its time.
type extendingBody struct {
	io.ReadCloser
	extend func()
	once   sync.Once
}

func (b *extendingBody) Read(p []byte) (int, error) {
	b.once.Do(b.extend)
	return b.ReadCloser.Read(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *hardenedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// internalError answers 500 for an error the client has no use for — a
// store failure, whose text may hold SQL — and logs it instead.
func internalError(w http.ResponseWriter, err error) {
	log := slog.Default()
	for u := w; u != nil; {
		if hw, ok := u.(*hardenedWriter); ok {
			log = hw.log
			break
		}
		uw, ok := u.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		u = uw.Unwrap()
	}
	log.Error("api: internal error", "err", err)
	writeProblem(w, http.StatusInternalServerError, "internal error")
}

// tooLarge reports a body cut by http.MaxBytesReader or readBody's limit.
func tooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.Is(err, errTooLarge) || errors.As(err, &mb)
}
