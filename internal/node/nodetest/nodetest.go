// Package nodetest starts a real Switchboard node in-process for a test,
// as NATS's test.RunServer does: the same node.Start that `switchboard
// serve` runs, on free loopback ports, ready when Run returns and stopped
// when the test ends.
//
// Tests that use it should shorten the SIP timers in their TestMain
// (sip.SetTimers): they are package globals, which Run cannot change while
// other servers of the same test binary run.
package nodetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/store"
)

// Secret is the digest nonce secret of every test node.
const Secret = "nodetest-secret-0123456789"

// Options are what a test may change of the node Run starts. The zero
// value is a node on a fresh SQLite database with the defaults below.
type Options struct {
	// DB is the database URL (default: a fresh SQLite file in t.TempDir()).
	// A PostgreSQL URL must name a database of the test's own.
	DB string
	// Dir is the directory relative prompt paths of the document are
	// resolved against, as `apply -f` resolves them against the file's
	// directory (default: the working directory, the test's package).
	Dir string
	// Drain is how long calls in progress may go on at the end (default 1s).
	Drain time.Duration
	// RTPTimeout and RingTimeout are node.Options' (0: the node's defaults).
	RTPTimeout, RingTimeout time.Duration
	// Now is the clock of the flood guard (default time.Now).
	Now func() time.Time
	// Log receives the node's logs (default: discarded, or Debug to stderr
	// with -v).
	Log *slog.Logger
	// TTS renders say: prompts (default espeak-ng).
	TTS prompt.TTS
	// CaptchaRand is the voice captcha's random source (default crypto/rand).
	CaptchaRand io.Reader
	// Events observes every call.
	Events func(call.Event)
	// MediaDir, if set, is the recordings and prompts directory shared
	// with other nodes (default: directories of the test's own).
	MediaDir string
	// NodeID names the node (default: node.Options' default).
	NodeID string
}

// Server is a running test node.
type Server struct {
	*node.Node
	// SIPAddr is the SIP address, UDP and TCP ("127.0.0.1:port").
	SIPAddr string
	// HTTPURL is the HTTP side ("http://127.0.0.1:port").
	HTTPURL string

	t testing.TB
}

// Timeouts of the helpers.
const (
	readyTimeout = 5 * time.Second
	stopTimeout  = 15 * time.Second
	waitTimeout  = 10 * time.Second
)

// Run starts a node for t with the YAML document doc applied (validated as
// `apply` validates it; "" applies none) and returns once it answers calls.
// It is stopped, and waited for, when the test ends; an error the node
// reports then fails the test.
func Run(t testing.TB, doc string, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.DB == "" {
		o.DB = "sqlite:" + filepath.Join(t.TempDir(), "switchboard.db")
	}
	if o.Drain == 0 {
		o.Drain = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	if doc != "" {
		apply(t, o, doc)
	}
	rtpMin, rtpMax := rtpRange()
	no := node.Options{
		DB:          o.DB,
		SIPAddr:     "127.0.0.1:0",
		HTTPAddr:    "127.0.0.1:0",
		MediaIP:     netip.MustParseAddr("127.0.0.1"),
		RTPMin:      rtpMin,
		RTPMax:      rtpMax,
		Drain:       o.Drain,
		RTPTimeout:  o.RTPTimeout,
		RingTimeout: o.RingTimeout,
		Secret:      []byte(Secret),
		MediaDir:    o.MediaDir,
		NodeID:      o.NodeID,
		// Webhook receivers in tests listen on loopback.
		WebhookAllowPrivate: true,
		Log:                 o.Log,
		TTS:                 o.TTS,
		CaptchaRand:         o.CaptchaRand,
		Guard:               registrar.GuardConfig{FloodRequests: -1},
		Events:              o.Events,
		Now:                 o.Now,
	}
	if o.MediaDir == "" {
		no.Recordings, no.PromptDir = t.TempDir(), t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := start(ctx, no)
	if err != nil {
		cancel()
		t.Fatalf("nodetest: start: %v", err)
	}
	s := &Server{Node: n, SIPAddr: n.SIP.UDPAddr().String(), HTTPURL: "http://" + n.HTTPAddr.String(), t: t}
	t.Cleanup(func() {
		cancel()
		done := make(chan error, 1)
		go func() { done <- n.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("nodetest: node: %v", err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("nodetest: node did not stop within %s", stopTimeout)
		}
	})
	if err := s.waitReady(); err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	return s
}

// apply validates the document as `apply -f` does and writes it to the
// database the node will open.
func apply(t testing.TB, o Options, doc string) {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = "."
	}
	d, err := config.Parse([]byte(doc), "nodetest.yaml")
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	if err := d.Validate(dir); err != nil {
		t.Fatalf("nodetest: invalid document: %s", fieldErrors(err))
	}
	d.ResolvePaths(dir)
	ctx := context.Background()
	st, err := store.Open(ctx, o.DB)
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	defer st.Close()
	if _, err := accounts.Apply(ctx, st, d); err != nil {
		t.Fatalf("nodetest: apply: %v", err)
	}
}

// fieldErrors lists validation errors one per line, each with its path.
func fieldErrors(err error) string {
	fields := config.Fields(err)
	if fields == nil {
		return err.Error()
	}
	lines := make([]string, len(fields))
	for i, f := range fields {
		lines[i] = f.Error()
	}
	return strings.Join(lines, "\n  ")
}

// start starts the node, again when the TCP port matching the free UDP
// port the node got turned out to be taken.
func start(ctx context.Context, o node.Options) (*node.Node, error) {
	var err error
	for range 10 {
		var n *node.Node
		if n, err = node.Start(ctx, o); err == nil {
			return n, nil
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "listen" {
			return nil, err
		}
	}
	return nil, err
}

// waitReady waits until the SIP listener serves: until ServeUDP has put the
// socket in sipgo's pool, the node's outbound requests would leave from
// another port (STYLE.md, "sipgo v1.7.2").
func (s *Server) waitReady() error {
	ua := s.SIP.DialogUA().Client.UserAgent
	deadline := time.Now().Add(readyTimeout)
	for {
		if s.SIP.Ready() {
			if c, err := ua.TransportLayer().GetConnection("udp", s.SIPAddr); err == nil {
				_, _ = c.TryClose()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("SIP listener %s not ready within %s", s.SIPAddr, readyTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// RTP ports: 20 ranges of 500 in 10000-19999, clear of the sipserver
// harness (20000-29999) and of the test phones (30000-39999). Each Run
// takes the next range, so up to 20 servers of one test binary never
// share one; the pid spreads test binaries running at the same time, and
// the allocator skips ports another process holds anyway.
const (
	rtpBase   = 10000
	rtpSlots  = 20
	rtpPerRun = 500
)

var rtpNext atomic.Uint32

func rtpRange() (lo, hi int) {
	slot := (uint32(os.Getpid()) + rtpNext.Add(1)) % rtpSlots
	lo = rtpBase + int(slot)*rtpPerRun
	return lo, lo + rtpPerRun - 1
}

// Calls returns the account's call records, newest first (at most
// store.MaxCallLimit). Records are written in batches shortly after a call
// ends: use WaitCalls to wait for one.
func (s *Server) Calls(account string) []store.CallRecord {
	s.t.Helper()
	recs, _, err := s.Store.ListCalls(context.Background(), store.CallFilter{Account: account, Ended: true, Limit: store.MaxCallLimit})
	if err != nil {
		s.t.Errorf("nodetest: calls of %s: %v", account, err)
	}
	return recs
}

// WaitCalls waits up to 10 s until the account has at least n call records
// and returns them, newest first; it fails t when they do not come.
func (s *Server) WaitCalls(t testing.TB, account string, n int) []store.CallRecord {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		recs, _, err := s.Store.ListCalls(context.Background(), store.CallFilter{Account: account, Ended: true, Limit: store.MaxCallLimit})
		if err != nil {
			t.Fatalf("nodetest: calls of %s: %v", account, err)
		}
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodetest: want %d call records for %s, have %d after %s", n, account, len(recs), waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
