// Package node assembles one Switchboard server process: the store, the
// accounts, the call engine, the SIP front and the HTTP side, started in
// that order and stopped in the reverse one. `switchboard serve`, the demo
// and the in-process test servers (nodetest) all start a node this way, so
// what the tests run is what users run.
package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/api"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/metrics"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/security"
	"github.com/switchboard/switchboard/internal/sipserver"
	"github.com/switchboard/switchboard/internal/sms"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/ui"
)

// Options are the settings of one node.
type Options struct {
	DB         string // database URL (store.Open)
	SIPAddr    string // SIP listen address, UDP and TCP (default :5060)
	HTTPAddr   string // HTTP listen address (default 127.0.0.1:8080)
	ConfigFile string // applied at start when set
	MediaIP    netip.Addr
	RTPMin     int // RTP port range (default 10000-20000)
	RTPMax     int
	Drain      time.Duration // how long calls in progress may go on at shutdown
	RTPTimeout time.Duration
	// RingTimeout bounds the ringback of on_failure: tones (default 2 min).
	RingTimeout time.Duration
	Secret      []byte // digest nonce secret shared by every node
	Recordings  string // directory of call recordings and voicemail
	PromptDir   string // where prompts uploaded through the API are written
	// MediaDir, if set, is the directory shared by every node that holds
	// the recordings and voicemail (MediaDir/recordings) and the uploaded
	// prompts (MediaDir/prompts), where Recordings and PromptDir are unset.
	MediaDir string
	// NodeID names the node among those sharing the database; unique per
	// process and stable across its restarts (default: hostname:SIP port).
	NodeID string
	// TrustedProxies are the front proxies (Kamailio) whose
	// X-Switchboard-Source header says where a request came from.
	TrustedProxies []netip.Addr
	Pprof          bool
	Log            *slog.Logger
	// TTS renders say: prompts (default espeak-ng).
	TTS prompt.TTS
	// CaptchaRand is the voice captcha's random source (nil: crypto/rand).
	CaptchaRand io.Reader
	// Guard overrides the registrar's rate limits and lockouts (tests).
	Guard registrar.GuardConfig
	// Events observes every call besides the node's own metrics.
	Events func(call.Event)
	// WebhookAllowPrivate lets webhooks reach loopback and private
	// addresses (tests, a receiver on the same host); refused by default.
	WebhookAllowPrivate bool
	// Now is the clock of the flood guard (nil: time.Now).
	Now func() time.Time
	// SMS overrides the SMS service's retry schedule, lease and poll
	// (tests); its store, accounts and SIP parts are the node's.
	SMS sms.Config

	// MetricsAddr, when set and not HTTPAddr, serves /metrics (and pprof)
	// there instead, plain HTTP: a private address beside a public HTTPAddr.
	MetricsAddr string
	// TLSCert and TLSKey are PEM files of the certificate of HTTPS (served
	// on HTTPAddr when they are set) and of SIP over TLS.
	TLSCert, TLSKey string
	// SIPTLSAddr, when set, adds a SIP over TLS listener (needs TLSCert).
	SIPTLSAddr string
	// HTTPTimeouts bound the HTTP connections (zero: the defaults).
	HTTPTimeouts HTTPTimeouts
}

// Node is a running server.
type Node struct {
	Store    *store.Store
	Accounts *accounts.Directory
	Engine   *call.Engine
	SIP      *sipserver.Server
	SMS      *sms.Service
	HTTPAddr net.Addr
	// MetricsAddr is where /metrics is served: HTTPAddr unless
	// Options.MetricsAddr moved it.
	MetricsAddr net.Addr

	o       Options
	records *store.CallWriter
	hub     *api.Hub // the live events streams
	// dispatchDone is closed when the webhook dispatcher has stopped.
	dispatchDone chan struct{}
	http         *httpSide
	stop         context.CancelFunc // ends the watch
	// stopDispatch ends the webhook dispatcher.
	stopDispatch context.CancelFunc
	// stopSMS ends the SMS deliveries; smsDone is closed when they have.
	stopSMS context.CancelFunc
	smsDone chan struct{}
	// stopCluster ends the heartbeat (the node leaves the cluster);
	// clusterDone is closed when it has.
	stopCluster context.CancelFunc
	clusterDone chan struct{}
	done        chan struct{}
	err         error
}

// Start opens the store, applies the configuration file, loads every
// account, and starts the SIP and HTTP listeners: when it returns the node
// answers calls. It runs until ctx ends; Wait returns once it has drained.
func Start(ctx context.Context, o Options) (_ *Node, err error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	reg, m := newMetrics()
	// Every security event logged through the node is counted.
	o.Log = slog.New(security.Counting(o.Log.Handler(), func(k security.Kind) { m.security.With(string(k)).Add(1) }))
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8080"
	}
	tlsCfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	shared := o.MediaDir
	if shared == "" {
		shared = "switchboard-data"
	}
	if o.Recordings == "" {
		o.Recordings = filepath.Join(shared, "recordings")
	}
	if o.PromptDir == "" {
		o.PromptDir = filepath.Join(shared, "prompts")
	}
	n := &Node{o: o, done: make(chan struct{}), hub: api.NewHub()}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if n.Store, err = store.Open(ctx, o.DB); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { n.Store.Close() })
	if o.ConfigFile != "" {
		doc, err := accounts.ValidateFile(o.ConfigFile)
		if err != nil {
			return nil, err
		}
		if _, err := accounts.Apply(ctx, n.Store, doc); err != nil {
			return nil, err
		}
	}
	tts := o.TTS
	if tts == nil {
		tts = prompt.ESpeak{}
	}
	// On PostgreSQL the nodes share the registrar's failures and lockouts
	// and the flood guard's counts (guard.go).
	acfg, gcfg := accounts.Config{Store: n.Store, TTS: tts, Log: o.Log, Now: o.Now}, o.Guard
	var guard *sharedGuard
	if n.Store.Shared() {
		guard = newSharedGuard(n.Store, gcfg.MaxSources, o.Log)
		gcfg.Ledger, gcfg.Lockouts = guard, guard.locks
		acfg.Flood = accounts.SharedFlood(n.Store, o.Log)
	}
	n.Accounts = accounts.New(acfg)
	if err := n.Accounts.LoadAll(ctx); err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	n.stop = stopWatch
	cleanup = append(cleanup, stopWatch)
	go n.Accounts.Watch(wctx)
	if guard != nil {
		go guard.run(wctx)
	}

	n.SIP, err = sipserver.Listen(sipserver.Config{
		Accounts:       n.Accounts,
		Contacts:       n.Store,
		Log:            o.Log,
		SIPAddr:        o.SIPAddr,
		Secret:         o.Secret,
		Guard:          gcfg,
		TrustedProxies: o.TrustedProxies,
		OnRegister:     func(string, string) { m.registrations.Inc() },
		OnBindings:     n.hub.Registration,
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { n.SIP.Shutdown(context.Background()) })
	if o.SIPTLSAddr != "" {
		if err := n.SIP.ListenTLS(o.SIPTLSAddr, tlsCfg); err != nil {
			return nil, err
		}
	}
	mediaIP := o.MediaIP
	if !mediaIP.IsValid() {
		mediaIP = netip.MustParseAddr(n.SIP.Host())
	}
	if o.RTPMin == 0 {
		o.RTPMin, o.RTPMax = 10000, 20000
	}
	alloc, err := media.NewPortAllocator(mediaIP, o.RTPMin, o.RTPMax)
	if err != nil {
		return nil, err
	}
	// Webhooks: events are written to the outbox by the recorder (never
	// blocking a call) and delivered by the dispatcher of whichever node
	// holds the lease.
	webhookOf := func(account string) (string, bool) {
		a, ok := n.Accounts.View().Account(account)
		if !ok || a.Snap.Doc().Defaults.Webhook == "" {
			return "", false
		}
		return a.Snap.Doc().Defaults.Webhook, true
	}
	// The calls' journal writes their records and webhook events in
	// batches, a record's final events in its transaction; Close after the
	// drain writes the last ones.
	disp := events.NewDispatcher(n.Store, events.DispatcherOptions{Webhook: webhookOf, AllowPrivate: o.WebhookAllowPrivate, Log: o.Log})
	var webhook *events.Recorder
	n.records = n.Store.NewCallWriter(store.CallWriterOptions{Log: o.Log, Written: disp.Wake,
		Events: func(r *store.CallRecord) []store.Event { return webhook.Final(r) }})
	webhook = events.NewRecorder(n.records, webhookOf, o.Log)
	dctx, stopDispatch := context.WithCancel(context.Background())
	n.dispatchDone = make(chan struct{})
	go func() { defer close(n.dispatchDone); disp.Run(dctx) }()
	n.stopDispatch = stopDispatch
	cleanup = append(cleanup, func() { n.records.Close(); stopDispatch(); <-n.dispatchDone })
	if o.NodeID == "" {
		host, _ := os.Hostname()
		o.NodeID = net.JoinHostPort(host, strconv.Itoa(n.SIP.UDPAddr().(*net.UDPAddr).Port))
	}
	cl := newCluster(store.Node{ID: o.NodeID, SIPAddr: n.SIP.UDPAddr().String()}, n.Store, n.records, n.hub, o.Log)
	if err := cl.join(ctx); err != nil {
		return nil, fmt.Errorf("join the cluster: %w", err)
	}
	n.Engine = call.New(call.Config{
		UA:          n.SIP.DialogUA(),
		Media:       alloc,
		MediaIP:     mediaIP,
		Devices:     n.SIP.Devices(),
		Records:     n.records,
		Counters:    n.Store,
		Events:      fanOut(m.observe, n.hub.CallEvent, webhook.CallEvent, o.Events),
		Log:         o.Log,
		RTPTimeout:  o.RTPTimeout,
		RingTimeout: o.RingTimeout,
		Recordings:  o.Recordings,
		CaptchaRand: o.CaptchaRand,
		Node:        o.NodeID,
		Orbits:      cl.orbits(),
		Secret:      o.Secret,
	})
	m.gauges(reg, n.Engine)
	// SMS: MESSAGEs the SIP front accepts are stored and delivered by the
	// service, which also takes up what the database has due (a restart).
	smsCfg := o.SMS
	smsCfg.Store, smsCfg.Accounts, smsCfg.Devices, smsCfg.Client, smsCfg.Log = n.Store, n.Accounts, n.SIP.Devices(), n.SIP.DialogUA().Client, o.Log
	n.SMS = sms.New(smsCfg)
	n.SIP.SetMessages(n.SMS)
	sctx, stopSMS := context.WithCancel(context.Background())
	n.stopSMS, n.smsDone = stopSMS, make(chan struct{})
	go func() { defer close(n.smsDone); n.SMS.Run(sctx) }()
	cleanup = append(cleanup, func() { stopSMS(); <-n.smsDone })

	if n.http, err = listenHTTP(o); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, n.http.close)
	n.HTTPAddr, n.MetricsAddr = n.http.ml.Addr(), n.http.ml.Addr()
	if n.http.ol != nil {
		n.MetricsAddr = n.http.ol.Addr()
	}
	cl.self.HTTPAddr = n.HTTPAddr.String()
	cctx, stopCluster := context.WithCancel(context.Background())
	n.stopCluster, n.clusterDone = stopCluster, make(chan struct{})
	go func() { defer close(n.clusterDone); cl.run(cctx) }()
	cleanup = append(cleanup, func() { stopCluster(); <-n.clusterDone })
	n.http.serve(api.Options{Ready: n.SIP.Ready, Metrics: reg, Pprof: o.Pprof,
		Tokens: n.Store, Calls: liveCalls{Engine: n.Engine, st: n.Store, node: o.NodeID, log: o.Log}, Store: n.Store, Accounts: n.Accounts, PromptDir: o.PromptDir, TTS: tts, Hub: n.hub, Log: o.Log},
		func(h http.Handler) http.Handler { return ui.New(ui.Options{Log: o.Log, API: h}) }, o.HTTPTimeouts, tlsCfg)
	n.SIP.Serve(n.Engine)
	go n.run(ctx)
	return n, nil
}

// run serves until ctx ends or a listener fails, then shuts down in the
// reverse order of Start: new calls refused, calls drained, records
// written, the store closed.
func (n *Node) run(ctx context.Context) {
	defer close(n.done)
	select {
	case <-ctx.Done():
	case err := <-n.SIP.Err():
		n.err = fmt.Errorf("sip serve: %w", err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), n.o.Drain)
	n.SIP.Shutdown(dctx)
	cancel()
	n.stopSMS() // an attempt cut short is tried again after the restart
	<-n.smsDone
	n.records.Close() // the drained calls' records and last events reach the database
	n.stopCluster()
	<-n.clusterDone
	n.stopDispatch()
	<-n.dispatchDone
	n.stop()
	n.hub.Close() // the live streams end, or the HTTP shutdown would wait for them
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	n.http.shutdown(sctx)
	cancel()
	n.Store.Close()
}

// Wait blocks until the node has shut down and returns why it stopped
// early, if it did.
func (n *Node) Wait() error {
	<-n.done
	return n.err
}

// fanOut calls every non-nil observer in turn.
func fanOut(obs ...func(call.Event)) func(call.Event) {
	var list []func(call.Event)
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return func(ev call.Event) {
		for _, o := range list {
			o(ev)
		}
	}
}

// nodeMetrics are the node's Prometheus metrics.
type nodeMetrics struct {
	byOutcome     *metrics.CounterVec
	started       *metrics.Counter
	answered      *metrics.Counter
	registrations *metrics.Counter
	security      *metrics.CounterVec
	cps           metrics.Rate
	// The media quality of each party of every answered leg, at the
	// call's end (RTT only where the party's RTCP measured one).
	mos, jitter, loss, rtt *metrics.Histogram
}

func newMetrics() (*metrics.Registry, *nodeMetrics) {
	reg := &metrics.Registry{}
	return reg, &nodeMetrics{
		byOutcome:     reg.NewCounterVec("switchboard_calls_total", "Calls ended, by outcome.", "outcome"),
		started:       reg.NewCounter("switchboard_calls_started_total", "Calls received."),
		answered:      reg.NewCounter("switchboard_calls_answered_total", "Calls answered by a destination."),
		registrations: reg.NewCounter("switchboard_registrations_total", "Successful registrations (new or refreshed bindings)."),
		security:      securityCounters(reg),
		mos: reg.NewHistogram("switchboard_call_mos", "Estimated MOS (simplified E-model) of each party of every answered leg, at the call's end.",
			[]float64{1, 2, 2.5, 3, 3.5, 4, 4.3, 4.5}),
		jitter: reg.NewHistogram("switchboard_call_jitter_seconds", "Interarrival jitter (RFC 3550) of what each party of every answered leg sent.",
			[]float64{0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2}),
		loss: reg.NewHistogram("switchboard_call_loss_ratio", "Packet loss ratio of what each party of every answered leg sent.",
			[]float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2}),
		rtt: reg.NewHistogram("switchboard_call_rtt_seconds", "Round-trip time from RTCP to each party of every answered leg that reported one.",
			[]float64{0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1}),
	}
}

// securityCounters counts security events by kind, each kind shown from
// the start (at 0).
func securityCounters(reg *metrics.Registry) *metrics.CounterVec {
	v := reg.NewCounterVec("switchboard_security_events_total", "Security events (the log lines of docs/security.md), by kind.", "event")
	for _, k := range security.Kinds {
		v.With(string(k))
	}
	return v
}

// observe counts the calls.
func (m *nodeMetrics) observe(ev call.Event) {
	switch ev.Kind {
	case call.EventStarted:
		m.started.Inc()
		m.cps.Mark()
	case call.EventEnded:
		m.byOutcome.With(ev.Record.Outcome).Add(1)
		if ev.Record.AnsweredBy != "" {
			m.answered.Inc()
		}
		for _, q := range ev.Record.Quality {
			if q.PacketsReceived == 0 {
				continue // nothing measured
			}
			m.mos.Observe(q.MOS)
			m.jitter.Observe(q.Jitter.Seconds())
			m.loss.Observe(q.LossRatio)
			if q.RTTKnown {
				m.rtt.Observe(q.RTT.Seconds())
			}
		}
	}
}

func (m *nodeMetrics) gauges(reg *metrics.Registry, e *call.Engine) {
	reg.NewGaugeFunc("switchboard_calls_active", "Calls in progress.", e.Active)
	reg.NewGaugeFunc("switchboard_calls_per_second", "Calls received in the last full second.", func() int64 { return int64(m.cps.PerSecond()) })
	reg.NewGaugeFunc("go_goroutines", "Goroutines that currently exist.", func() int64 { return int64(runtime.NumGoroutine()) })
	reg.NewGaugeFunc("go_memstats_heap_inuse_bytes", "Heap bytes in use.", func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapInuse)
	})
	reg.NewGaugeFunc("go_memstats_stack_inuse_bytes", "Goroutine stack bytes in use.", func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.StackInuse)
	})
}
