package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/api"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/metrics"
	"github.com/switchboard/switchboard/internal/sipserver"
	"github.com/switchboard/switchboard/internal/store"
)

// serveOptions are the settings of one server process.
type serveOptions struct {
	db, sip, http, config string
	mediaIP               string
	rtpPorts              string
	drain, rtpTimeout     time.Duration
	secret                string
	recordings            string
	pprof                 bool
}

func cmdServe(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("serve")
	var o serveOptions
	db := dbFlag(fs)
	fs.StringVar(&o.sip, "sip", ":5060", "SIP listen address (UDP and TCP)")
	fs.StringVar(&o.http, "http", "127.0.0.1:8080", "HTTP listen address (health, metrics, API)")
	fs.StringVar(&o.config, "config", "", "apply this configuration file at start")
	fs.StringVar(&o.mediaIP, "media-ip", "", "IP address advertised for RTP (default: the SIP listen address)")
	fs.StringVar(&o.rtpPorts, "rtp-ports", "10000-20000", "RTP port range")
	fs.DurationVar(&o.drain, "drain-timeout", 30*time.Second, "on SIGTERM, how long calls in progress may continue")
	fs.DurationVar(&o.rtpTimeout, "rtp-timeout", 60*time.Second, "end a call whose RTP stopped for this long")
	fs.StringVar(&o.recordings, "recordings", filepath.Join("switchboard-data", "recordings"), "directory for call recordings (shared by every node)")
	fs.StringVar(&o.secret, "secret", os.Getenv("SWITCHBOARD_SECRET"), "digest nonce secret shared by every node ($SWITCHBOARD_SECRET)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve /debug/pprof/ on the HTTP address")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	o.db = *db
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	log := slog.New(newLazyHandler(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})))
	return serve(ctx, o, log, nil)
}

// serve runs a server until ctx ends. started, if set, is called with the
// server once it is listening and loaded.
func serve(ctx context.Context, o serveOptions, log *slog.Logger, started func(*sipserver.Server, net.Addr)) error {
	lo, hi, err := parsePortRange(o.rtpPorts)
	if err != nil {
		return fmt.Errorf("%w: --rtp-ports: %v", errUsage, err)
	}
	var mediaIP netip.Addr
	if o.mediaIP != "" {
		if mediaIP, err = netip.ParseAddr(o.mediaIP); err != nil {
			return fmt.Errorf("%w: --media-ip: %v", errUsage, err)
		}
	}
	st, err := store.Open(ctx, o.db)
	if err != nil {
		return err
	}
	defer st.Close()
	if o.config != "" {
		doc, err := config.LoadFile(o.config)
		if err != nil {
			return fileErr(o.config, err)
		}
		doc.ResolvePaths(filepath.Dir(o.config))
		if _, err := st.ApplyConfig(ctx, doc); err != nil {
			return err
		}
	}

	reg := &metrics.Registry{}
	byOutcome := reg.NewCounterVec("switchboard_calls_total", "Calls ended, by outcome.", "outcome")
	started_ := reg.NewCounter("switchboard_calls_started_total", "Calls received.")
	answered := reg.NewCounter("switchboard_calls_answered_total", "Calls answered by a destination.")
	registrations := reg.NewCounter("switchboard_registrations_total", "Successful registrations (new or refreshed bindings).")
	var cps metrics.Rate
	// Call records are written in batches; Close after the drain writes
	// the last ones.
	records := st.NewCallWriter(log)
	defer records.Close()
	srv, err := sipserver.New(sipserver.Config{
		Store:      st,
		Records:    records,
		Log:        log,
		SIPAddr:    o.sip,
		MediaIP:    mediaIP,
		RTPMin:     lo,
		RTPMax:     hi,
		RTPTimeout: o.rtpTimeout,
		Secret:     []byte(o.secret),
		Recordings: o.recordings,
		OnRegister: func(string, string) { registrations.Inc() },
		Hooks: call.Hooks{
			Started: func() { started_.Inc(); cps.Mark() },
			Ended: func(rec *store.CallRecord) {
				byOutcome.With(rec.Outcome).Add(1)
				if rec.AnsweredBy != "" {
					answered.Inc()
				}
			},
		},
	})
	if err != nil {
		return err
	}
	active := func() int64 {
		if e := srv.Engine(); e != nil {
			return e.Active()
		}
		return 0
	}
	reg.NewGaugeFunc("switchboard_calls_active", "Calls in progress.", active)
	reg.NewGaugeFunc("switchboard_calls_per_second", "Calls received in the last full second.", func() int64 { return int64(cps.PerSecond()) })
	reg.NewGaugeFunc("go_goroutines", "Goroutines that currently exist.", func() int64 { return int64(runtime.NumGoroutine()) })
	reg.NewGaugeFunc("go_memstats_heap_inuse_bytes", "Heap bytes in use.", func() int64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapInuse)
	})
	reg.NewGaugeFunc("go_memstats_stack_inuse_bytes", "Goroutine stack bytes in use.", func() int64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.StackInuse)
	})

	hl, err := net.Listen("tcp", o.http)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", o.http, err)
	}
	hs := &http.Server{Handler: api.NewHandler(api.Options{Ready: srv.Ready, Metrics: reg, Pprof: o.pprof, Tokens: st, Calls: liveCalls{srv}}), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Info("http listening", "addr", hl.Addr().String())
	go releaseWhenIdle(ctx, 10*time.Second, idleSettle, active, freeHeap, debug.FreeOSMemory)

	return srv.Run(ctx, o.drain, func() {
		if started != nil {
			started(srv, hl.Addr())
		}
	})
}

func parsePortRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || hi-lo < 3 {
		return 0, 0, fmt.Errorf("%q is not a port range such as 10000-20000", s)
	}
	return lo, hi, nil
}

// liveCalls is the API's view of the calls in progress: the server's call
// engine, which exists once the server runs.
type liveCalls struct{ srv *sipserver.Server }

func (l liveCalls) SetVariable(account, id, name, value string) error {
	if e := l.srv.Engine(); e != nil {
		return e.SetVariable(account, id, name, value)
	}
	return call.ErrNoCall
}
