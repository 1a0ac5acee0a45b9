package sipserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/store"
)

func TestMain(m *testing.M) {
	// Short SIP timers keep CANCEL/timeout paths fast in tests.
	sip.SetTimers(100*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	os.Exit(m.Run())
}

// harness is a real Switchboard SIP server running in-process on loopback:
// the accounts, the SIP front and the call engine wired as internal/node
// wires them (which this package cannot import), without the HTTP side.
type harness struct {
	t      *testing.T
	srv    *Server
	engine *call.Engine
	st     *store.Store
	addr   string // SIP host:port (UDP and TCP)
	cancel context.CancelFunc
	done   chan struct{} // closed when the server has shut down
	runErr error
}

type harnessOptions struct {
	rtpTimeout  time.Duration
	ringTimeout time.Duration
	drain       time.Duration
	beforeStart func()                 // runs after the document is applied, before the server loads it
	guard       *registrar.GuardConfig // the flood ban and lockout (default: no flood ban)
}

// startServer applies doc (YAML) to a fresh SQLite database and starts a
// server on a free loopback port; it stops at the end of the test.
func startServer(t *testing.T, doc string, opts ...harnessOptions) *harness {
	t.Helper()
	var o harnessOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.drain == 0 {
		o.drain = 2 * time.Second
	}
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "sb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if doc != "" {
		applyYAML(t, st, doc)
	}
	if o.beforeStart != nil {
		o.beforeStart()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rctx, cancel := context.WithCancel(ctx)
	dir := accounts.New(accounts.Config{Store: st, Log: log})
	if err := dir.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	go dir.Watch(rctx)
	port := freeUDPPort(t)
	guard := registrar.GuardConfig{FloodRequests: -1}
	if o.guard != nil {
		guard = *o.guard
	}
	srv, err := Listen(Config{
		Accounts: dir,
		Contacts: st,
		Log:      log,
		SIPAddr:  "127.0.0.1:" + strconv.Itoa(port),
		Secret:   []byte("test-secret-0123456789"),
		Guard:    guard,
	})
	if err != nil {
		t.Fatal(err)
	}
	rtpMin := 20000 + (port%20)*500 // below the test phones' 30000-39999
	alloc, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), rtpMin, rtpMin+499)
	if err != nil {
		t.Fatal(err)
	}
	engine := call.New(call.Config{
		UA:          srv.DialogUA(),
		Media:       alloc,
		MediaIP:     netip.MustParseAddr("127.0.0.1"),
		Devices:     srv.Devices(),
		Records:     st,
		Counters:    st,
		Log:         log,
		RTPTimeout:  o.rtpTimeout,
		RingTimeout: o.ringTimeout,
		Recordings:  t.TempDir(),
		CaptchaRand: captchaCode456{},
	})
	srv.Serve(engine)
	h := &harness{t: t, srv: srv, engine: engine, st: st, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		select {
		case <-rctx.Done():
		case h.runErr = <-srv.Err():
		}
		dctx, stop := context.WithTimeout(context.Background(), o.drain)
		srv.Shutdown(dctx)
		stop()
		cancel()
	}()
	h.addr = srv.UDPAddr().String()
	t.Cleanup(h.stop)
	return h
}

// stop shuts the server down as SIGTERM would and waits for it.
func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
		if h.runErr != nil {
			h.t.Errorf("server: %v", h.runErr)
		}
	case <-time.After(15 * time.Second):
		h.t.Error("server did not stop within 15s")
	}
}

func applyYAML(t *testing.T, st *store.Store, doc string) {
	t.Helper()
	d, err := config.Parse([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyConfig(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// calls returns the call records of an account, newest first.
func (h *harness) calls(account string) []store.CallRecord {
	h.t.Helper()
	recs, _, err := h.st.ListCalls(context.Background(), store.CallFilter{Account: account, Ended: true, Limit: 100})
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

// waitCalls waits until the account has n call records.
func (h *harness) waitCalls(account string, n int) []store.CallRecord {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := h.calls(account)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("want %d call records for %s, have %d", n, account, len(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// captchaCode456 makes every voice captcha code 456 (0x01C8).
type captchaCode456 struct{}

func (captchaCode456) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = []byte{0x01, 0xC8}[i%2]
	}
	return len(p), nil
}
