package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/api"
)

// HTTPTimeouts bound the HTTP server's connections, against clients that
// hold them open by sending slowly (slowloris); a zero field takes its
// default. The requests these would cut legitimately — the event stream,
// recording and CSV downloads, prompt and configuration uploads — get
// deadlines of their own (api.Harden).
type HTTPTimeouts struct {
	ReadHeader time.Duration // the request line and headers (default 10s)
	Read       time.Duration // the whole request, body included (default 60s)
	Write      time.Duration // from the end of the headers to the end of the response (default 60s)
	Idle       time.Duration // a kept-alive connection between requests (default 120s)
}

// maxHeaderBytes bounds a request's line and headers (net/http's default
// is 1 MiB; the API's largest header is a token).
const maxHeaderBytes = 64 << 10

func (t HTTPTimeouts) withDefaults() HTTPTimeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, 10*time.Second)
	def(&t.Read, 60*time.Second)
	def(&t.Write, 60*time.Second)
	def(&t.Idle, 120*time.Second)
	return t
}

// newHTTPServer is one of the node's HTTP servers over h, hardened.
func newHTTPServer(h http.Handler, t HTTPTimeouts, cfg *tls.Config, log *slog.Logger) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           api.Harden(h, api.HardenOptions{Log: log}),
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         cfg,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// httpSide is the node's HTTP servers: the API, web console and health on
// HTTPAddr (HTTPS when the node has a certificate), and /metrics and
// pprof there too or, with MetricsAddr, alone on their own address.
type httpSide struct {
	main, ops *http.Server
	ml, ol    net.Listener
	tls       bool
	log       *slog.Logger
}

// listenHTTP binds the HTTP listeners of o.
func listenHTTP(o Options) (*httpSide, error) {
	hs := &httpSide{log: o.Log}
	var err error
	if hs.ml, err = net.Listen("tcp", o.HTTPAddr); err != nil {
		return nil, fmt.Errorf("http listen %s: %w", o.HTTPAddr, err)
	}
	// ":0" twice is two addresses (tests), the same address twice one.
	if o.MetricsAddr != "" && (o.MetricsAddr != o.HTTPAddr || strings.HasSuffix(o.MetricsAddr, ":0")) {
		if hs.ol, err = net.Listen("tcp", o.MetricsAddr); err != nil {
			hs.ml.Close()
			return nil, fmt.Errorf("metrics listen %s: %w", o.MetricsAddr, err)
		}
	}
	return hs, nil
}

// close releases listeners that were never served.
func (hs *httpSide) close() {
	hs.ml.Close()
	if hs.ol != nil {
		hs.ol.Close()
	}
}

// serve builds the servers over the handlers of ao — the console wrapping
// the API — and starts them.
func (hs *httpSide) serve(ao api.Options, console func(http.Handler) http.Handler, t HTTPTimeouts, cfg *tls.Config) {
	if hs.ol != nil {
		// /metrics and pprof leave the public address for the private one.
		ops := api.NewHandler(api.Options{Ready: ao.Ready, Metrics: ao.Metrics, Pprof: ao.Pprof, Log: ao.Log})
		ao.Metrics, ao.Pprof = nil, false
		hs.ops = newHTTPServer(ops, t, nil, hs.log)
		go hs.run(hs.ops, hs.ol, false)
		hs.log.Info("metrics listening", "addr", hs.ol.Addr().String())
	}
	hs.main = newHTTPServer(console(api.NewHandler(ao)), t, cfg, hs.log)
	hs.tls = cfg != nil
	go hs.run(hs.main, hs.ml, hs.tls)
	hs.log.Info("http listening", "addr", hs.ml.Addr().String(), "tls", hs.tls)
}

func (hs *httpSide) run(srv *http.Server, l net.Listener, withTLS bool) {
	var err error
	if withTLS {
		err = srv.ServeTLS(l, "", "") // the certificate is srv.TLSConfig's
	} else {
		err = srv.Serve(l)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		hs.log.Error("http server", "addr", l.Addr().String(), "err", err)
	}
}

// shutdown stops the servers, letting requests in progress finish until
// ctx ends.
func (hs *httpSide) shutdown(ctx context.Context) {
	for _, s := range []*http.Server{hs.ops, hs.main} {
		if s != nil {
			_ = s.Shutdown(ctx)
		}
	}
}

// tlsConfig is the certificate of HTTPS and SIP over TLS (Options.TLSCert
// and TLSKey), or nil without one. The files are read again when they
// change (a renewed certificate), checked at most once a minute.
func tlsConfig(o Options) (*tls.Config, error) {
	switch {
	case o.TLSCert == "" && o.TLSKey == "":
		if o.SIPTLSAddr != "" {
			return nil, errors.New("sip tls: a certificate (--tls-cert, --tls-key) is required")
		}
		return nil, nil
	case o.TLSCert == "" || o.TLSKey == "":
		return nil, errors.New("tls: both a certificate and its key are required")
	}
	cl := &certLoader{cert: o.TLSCert, key: o.TLSKey, log: o.Log, now: time.Now}
	if err := cl.load(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cl.get}, nil
}

// certLoader serves a certificate from files, reloaded when they change.
type certLoader struct {
	cert, key string
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	current *tls.Certificate
	mtime   time.Time // of the certificate file loaded
	checked time.Time
}

func (cl *certLoader) load() error {
	fi, err := os.Stat(cl.cert)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c, err := tls.LoadX509KeyPair(cl.cert, cl.key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	cl.current, cl.mtime = &c, fi.ModTime()
	return nil
}

func (cl *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if now := cl.now(); now.Sub(cl.checked) >= time.Minute {
		cl.checked = now
		if fi, err := os.Stat(cl.cert); err == nil && !fi.ModTime().Equal(cl.mtime) {
			if err := cl.load(); err != nil {
				// Half-written files during a renewal: the old one serves.
				cl.log.Warn("tls: certificate not reloaded", "err", err)
			} else {
				cl.log.Info("tls: certificate reloaded", "file", cl.cert)
			}
		}
	}
	return cl.current, nil
}
