// Package call runs calls: one goroutine owns each call's inbound leg and its
// outbound legs, executes the routing decision (rejects, forwarding, groups
// with their distributions and timeouts, on_failure) and relays the media
// between the legs through internal/media.
package call

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/store"
)

// Device is one registered contact of a user.
type Device struct {
	URI       string   // the registered Contact URI (the Request-URI of calls to it)
	Addr      string   // host:port calls are sent to (registrar.Contact.Destination)
	Transport string   // UDP, TCP, ...
	Route     []string // Route headers: the registration's Path (RFC 3327)
}

// Locator finds the registered devices of a user.
type Locator interface {
	Devices(ctx context.Context, account, user string) ([]Device, error)
}

// Records stores call records. StartCall writes the record of a call
// starting and returns once it is stored (or the store is too slow to wait
// for); InsertCall may only queue it.
type Records interface {
	StartCall(ctx context.Context, rec *store.CallRecord) error
	InsertCall(ctx context.Context, rec *store.CallRecord) error
}

// Counters hands out rotating-group start positions shared by every node.
type Counters interface {
	NextRotation(ctx context.Context, account, extension string) (uint64, error)
}

// Config wires an Engine.
type Config struct {
	UA       *sipgo.DialogUA
	Media    *media.PortAllocator
	MediaIP  netip.Addr // advertised in our SDP
	Devices  Locator
	Records  Records
	Counters Counters
	// Events observes every call (nil: none); it runs on the call's
	// goroutine and must not block.
	Events     func(Event)
	Log        *slog.Logger
	RTPTimeout time.Duration // end a call whose RTP stopped for this long (default 60 s)
	// RingTimeout bounds continued ringback for on_failure: tones (default 2 min).
	RingTimeout time.Duration
	// CaptchaRand is the voice captcha's random source (nil: crypto/rand).
	CaptchaRand io.Reader
	// Recordings is the directory call recordings are written under, one
	// folder per account (default ./switchboard-data/recordings).
	Recordings string
	// Node names this node in the records of its calls.
	Node string
	// Orbits shares the park orbits of the nodes on one database (nil:
	// this node's orbits are its own).
	Orbits Orbits
	// Secret signs the pickups this node sends the node a call is parked
	// on (PeerPickup); empty, none is sent or taken.
	Secret []byte
}

// Orbits are the park orbits of every node: which call of which node waits
// in each (docs/decisions.md, "Park").
type Orbits interface {
	// ClaimOrbit gives callID the lowest orbit of lo..hi that no call holds.
	ClaimOrbit(ctx context.Context, account string, lo, hi int, callID string) (orbit int, ok bool, err error)
	// ReleaseOrbit frees the orbit callID holds.
	ReleaseOrbit(ctx context.Context, account string, orbit int, callID string) error
	// ParkedAt returns the node whose call waits in an orbit and where it
	// takes SIP; ok is false when the orbit is empty.
	ParkedAt(ctx context.Context, account string, orbit int) (node, sipAddr string, ok bool, err error)
}

// Engine runs every call of one node.
type Engine struct {
	cfg      Config
	dialogs  sync.Map // dialogKey -> *peer
	parks    parkLots
	live     sync.Map       // call id -> *live
	wg       sync.WaitGroup // calls in progress
	cleanup  sync.WaitGroup // legs still being cancelled after their call moved on
	active   atomic.Int64
	admitMu  sync.Mutex // orders admit's wg.Add before Drain's wg.Wait
	draining atomic.Bool
	hangup   chan struct{} // closed when the drain timeout ends: calls in progress hang up
	once     sync.Once
	limits   outboundLimits // the accounts' outbound calls (limits.go)
	// dial places one outbound leg: (*call).dial, or a fake in the
	// executor's unit tests, which need no SIP peer to ring.
	dial func(c *call, ctx context.Context, d dest, mode string, ringing chan<- string) attempt
}

// New returns an Engine.
func New(cfg Config) *Engine {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RTPTimeout <= 0 {
		cfg.RTPTimeout = 60 * time.Second
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 2 * time.Minute
	}
	if cfg.Recordings == "" {
		cfg.Recordings = filepath.Join("switchboard-data", "recordings")
	}
	return &Engine{cfg: cfg, hangup: make(chan struct{}), dial: (*call).dial}
}

// Active returns the number of calls in progress.
func (e *Engine) Active() int64 { return e.active.Load() }

// Draining reports whether the engine refuses new calls.
func (e *Engine) Draining() bool { return e.draining.Load() }

// Drain stops taking new calls and waits for the calls in progress to end; when
// ctx ends first, the remaining calls are hung up and their records written.
//
// Legs still being cancelled (a 200 that crosses our CANCEL is ACKed and
// hung up) get what is left of ctx, no more: an INVITE that never had a
// response keeps its transaction until Timer B (32 s), and a shutdown
// must not wait for that.
func (e *Engine) Drain(ctx context.Context) {
	e.admitMu.Lock()
	e.draining.Store(true)
	e.admitMu.Unlock()
	calls := waitGroupDone(&e.wg)
	select {
	case <-calls:
	case <-ctx.Done():
		e.once.Do(func() { close(e.hangup) })
		<-calls
	}
	select {
	case <-waitGroupDone(&e.cleanup):
	case <-ctx.Done():
	}
}

// admit counts a new call in, unless the engine is draining: a call is
// either counted before Drain starts waiting or refused.
func (e *Engine) admit() bool {
	e.admitMu.Lock()
	defer e.admitMu.Unlock()
	if e.draining.Load() {
		return false
	}
	e.wg.Add(1)
	return true
}

// waitGroupDone is closed once wg's count is zero.
func waitGroupDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}
