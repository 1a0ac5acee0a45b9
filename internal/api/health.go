// Package api serves Switchboard's HTTP side: health, readiness and metrics
// (the REST API and the web UI join it here).
package api

import (
	"net/http"
	"net/http/pprof"
)

// Options wires the HTTP handler.
type Options struct {
	Ready   func() bool  // readiness: listeners up, configuration loaded, not draining
	Metrics http.Handler // Prometheus text exposition
	Pprof   bool         // serve /debug/pprof/ (profiling under load)
	// Tokens and Calls enable the REST API under /api/v1/ (nil: not served).
	Tokens Tokens
	Calls  LiveCalls
}

// NewHandler returns the HTTP handler: /healthz, /readyz, /metrics and the
// REST API.
func NewHandler(o Options) http.Handler {
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
	if o.Tokens != nil && o.Calls != nil {
		mux.HandleFunc("PUT /api/v1/{account}/calls/{id}/variables/{name}", authorized(o.Tokens, putVariable(o.Calls)))
	}
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
