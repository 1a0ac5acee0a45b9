package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/node"
	"github.com/switchboard/switchboard/internal/registrar"
)

// serveOptions are the settings of one server process.
type serveOptions struct {
	db, sip, http, config string
	metrics               string
	sipTLS                string
	tlsCert, tlsKey       string
	mediaIP               string
	rtpPorts              string
	drain, rtpTimeout     time.Duration
	secret                string
	recordings            string
	prompts               string
	mediaDir              string
	nodeID                string
	trustedProxies        string
	pprof                 bool
	webhookAllowPrivate   bool
	guard                 registrar.GuardConfig // zero: the defaults
}

func cmdServe(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("serve")
	var o serveOptions
	db := dbFlag(fs)
	fs.StringVar(&o.sip, "sip", ":5060", "SIP listen address (UDP and TCP)")
	fs.StringVar(&o.http, "http", "127.0.0.1:8080", "HTTP listen address (web console, API, health, metrics); HTTPS with --tls-cert")
	fs.StringVar(&o.metrics, "metrics", "", "serve /metrics (and --pprof) on this address instead, plain HTTP (default: on --http)")
	fs.StringVar(&o.sipTLS, "sip-tls", "", "SIP over TLS listen address, e.g. :5061 (needs --tls-cert and --tls-key)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serves HTTPS on --http, and SIP over TLS with --sip-tls")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&o.config, "config", "", "apply this configuration file at start")
	fs.StringVar(&o.mediaIP, "media-ip", "", "IP address advertised for RTP (default: the SIP listen address)")
	fs.StringVar(&o.rtpPorts, "rtp-ports", "10000-20000", "RTP port range")
	fs.DurationVar(&o.drain, "drain-timeout", 30*time.Second, "on SIGTERM, how long calls in progress may continue")
	fs.DurationVar(&o.rtpTimeout, "rtp-timeout", 60*time.Second, "end a call whose RTP stopped for this long")
	fs.StringVar(&o.mediaDir, "media-dir", "switchboard-data", "directory shared by every node for recordings, voicemail and uploaded prompts")
	fs.StringVar(&o.recordings, "recordings", "", "directory for call recordings and voicemail (default: MEDIA-DIR/recordings)")
	fs.StringVar(&o.prompts, "prompts", "", "directory for prompts uploaded through the API (default: MEDIA-DIR/prompts)")
	fs.StringVar(&o.nodeID, "node-id", "", "this node's name among those sharing the database, unique and stable across restarts (default: hostname:SIP port)")
	fs.StringVar(&o.trustedProxies, "trusted-proxy", "", "comma-separated IP addresses of the SIP front proxies (Kamailio) whose X-Switchboard-Source header is believed")
	fs.StringVar(&o.secret, "secret", os.Getenv("SWITCHBOARD_SECRET"), "digest nonce secret shared by every node ($SWITCHBOARD_SECRET)")
	fs.BoolVar(&o.webhookAllowPrivate, "webhook-allow-private", false, "let webhooks reach loopback and private addresses (refused by default: SSRF)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve /debug/pprof/ on the HTTP address (on --metrics when set)")
	guard := guardFlags(fs)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	o.db = *db
	var err error
	if o.guard, err = guard(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	log := slog.New(newLazyHandler(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})))
	return serve(ctx, o, log, nil)
}

// serve runs a node until ctx ends. started, if set, is called with the
// node once it is listening and loaded.
func serve(ctx context.Context, o serveOptions, log *slog.Logger, started func(*node.Node)) error {
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
	case o.sipTLS != "" && o.tlsCert == "":
		return fmt.Errorf("%w: --sip-tls needs --tls-cert and --tls-key", errUsage)
	}
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
	var proxies []netip.Addr
	for _, p := range strings.Split(o.trustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return fmt.Errorf("%w: --trusted-proxy: %q is not an IP address", errUsage, p)
		}
		proxies = append(proxies, a.Unmap())
	}
	n, err := node.Start(ctx, node.Options{
		DB:         o.db,
		SIPAddr:    o.sip,
		HTTPAddr:   o.http,
		SIPTLSAddr: o.sipTLS,
		TLSCert:    o.tlsCert,
		TLSKey:     o.tlsKey,
		ConfigFile: o.config,
		MediaIP:    mediaIP,
		RTPMin:     lo,
		RTPMax:     hi,
		Drain:      o.drain,
		RTPTimeout: o.rtpTimeout,
		Secret:     []byte(o.secret),
		Recordings: o.recordings,
		PromptDir:  o.prompts,
		MediaDir:   o.mediaDir,
		NodeID:     o.nodeID,
		Pprof:      o.pprof,

		MetricsAddr: o.metrics,

		TrustedProxies: proxies,

		WebhookAllowPrivate: o.webhookAllowPrivate,
		Guard:               o.guard,
		Log:                 log,
	})
	if err != nil {
		return err
	}
	go releaseWhenIdle(ctx, 10*time.Second, idleSettle, n.Engine.Active, freeHeap, debug.FreeOSMemory)
	if started != nil {
		started(n)
	}
	return n.Wait()
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
