// Package call runs calls: one goroutine owns each call's inbound leg and its
// outbound legs, executes the routing decision (rejects, forwarding, groups
// with their distributions and timeouts, on_failure) and relays the media
// between the legs through internal/media.
package call

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/store"
)

// Device is one registered contact of a user.
type Device struct {
	URI       string // the registered Contact URI (the Request-URI of calls to it)
	Source    string // host:port the registration came from; calls are sent there (NAT)
	Transport string // UDP, TCP, ...
}

// Locator finds the registered devices of a user.
type Locator interface {
	Devices(ctx context.Context, account, user string) ([]Device, error)
}

// Records stores call records.
type Records interface {
	InsertCall(ctx context.Context, rec *store.CallRecord) error
}

// Counters hands out rotating-group start positions shared by every node.
type Counters interface {
	NextRotation(ctx context.Context, account, extension string) (uint64, error)
}

// Hooks observe calls for metrics and webhooks; every field may be nil.
type Hooks struct {
	Started func()
	Ended   func(rec *store.CallRecord)
}

// Config wires an Engine.
type Config struct {
	UA         *sipgo.DialogUA
	Media      *media.PortAllocator
	MediaIP    netip.Addr // advertised in our SDP
	Devices    Locator
	Records    Records
	Counters   Counters
	Hooks      Hooks
	Log        *slog.Logger
	RTPTimeout time.Duration // end a call whose RTP stopped for this long (default 60 s)
	// RingTimeout bounds continued ringback for on_failure: tones (default 2 min).
	RingTimeout time.Duration
	// CaptchaRand is the voice captcha's random source (nil: crypto/rand).
	CaptchaRand io.Reader
	// Recordings is the directory call recordings are written under, one
	// folder per account (default ./switchboard-data/recordings).
	Recordings string
}

// Engine runs every call of one node.
type Engine struct {
	cfg      Config
	dialogs  sync.Map // dialogKey -> dialog
	wg       sync.WaitGroup
	active   atomic.Int64
	draining atomic.Bool
	hangup   chan struct{} // closed when the drain timeout ends: calls in progress hang up
	once     sync.Once
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
	return &Engine{cfg: cfg, hangup: make(chan struct{})}
}

// Active returns the number of calls in progress.
func (e *Engine) Active() int64 { return e.active.Load() }

// Draining reports whether the engine refuses new calls.
func (e *Engine) Draining() bool { return e.draining.Load() }

// Drain stops taking new calls and waits for the calls in progress to end; when
// ctx ends first, the remaining calls are hung up and their records written.
func (e *Engine) Drain(ctx context.Context) {
	e.draining.Store(true)
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.once.Do(func() { close(e.hangup) })
		<-done
	}
}

// dialog is either side of a call that in-dialog requests are routed to.
type dialog interface {
	ReadBye(req *sip.Request, tx sip.ServerTransaction) error
}

// dialogKey identifies a dialog by Call-ID and our own tag, which is the To
// tag of every request the far end sends within it.
func dialogKey(callID, localTag string) string { return callID + "\x00" + localTag }

// lookup finds what is stored for the dialog an in-dialog request belongs
// to, under the key suffix ("" for the dialog itself).
func (e *Engine) lookup(req *sip.Request, suffix string) (any, bool) {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil, false
	}
	tag, ok := to.Params.Get("tag")
	if !ok || tag == "" {
		return nil, false
	}
	return e.dialogs.Load(dialogKey(cid.Value(), tag) + suffix)
}

// HandleAck passes an ACK to its dialog; it reports whether one matched.
func (e *Engine) HandleAck(req *sip.Request, tx sip.ServerTransaction) bool {
	v, ok := e.lookup(req, "")
	if !ok {
		return false
	}
	if s, ok := v.(*sipgo.DialogServerSession); ok {
		_ = s.ReadAck(req, tx)
	}
	return true
}

// ErrNoDialog is returned for in-dialog requests that match no call.
var ErrNoDialog = errors.New("call/transaction does not exist")

// HandleBye ends the dialog the BYE belongs to (answering 200); ErrNoDialog
// means the caller should answer 481.
func (e *Engine) HandleBye(req *sip.Request, tx sip.ServerTransaction) error {
	v, ok := e.lookup(req, "")
	if !ok {
		return ErrNoDialog
	}
	return v.(dialog).ReadBye(req, tx)
}

// HandleReinvite answers an in-dialog INVITE (hold, session refresh) with the
// SDP we already gave that leg; ErrNoDialog when nothing matches.
func (e *Engine) HandleReinvite(req *sip.Request, tx sip.ServerTransaction) error {
	v, ok := e.lookup(req, "\x00sdp")
	if !ok {
		return ErrNoDialog
	}
	res := sip.NewSDPResponseFromRequest(req, v.([]byte))
	return tx.Respond(res)
}

func (e *Engine) track(key string, d dialog, localSDP []byte, refer chan<- string) func() {
	e.dialogs.Store(key, d)
	if localSDP != nil {
		e.dialogs.Store(key+"\x00sdp", localSDP)
	}
	if refer != nil {
		e.dialogs.Store(key+"\x00refer", refer)
	}
	return func() {
		e.dialogs.Delete(key)
		e.dialogs.Delete(key + "\x00sdp")
		e.dialogs.Delete(key + "\x00refer")
	}
}

// HandleRefer takes a blind transfer (RFC 3515) from a callee: the target
// is the Refer-To URI's user part (an extension code, name or number). It
// answers 202 and hands the target to the call, or ErrNoDialog.
func (e *Engine) HandleRefer(req *sip.Request, tx sip.ServerTransaction) error {
	v, ok := e.lookup(req, "\x00refer")
	if !ok {
		return ErrNoDialog
	}
	h := req.GetHeader("Refer-To")
	if h == nil {
		return tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
	}
	var to sip.Uri
	v2 := strings.Trim(strings.TrimSpace(h.Value()), "<>")
	if i := strings.IndexByte(v2, '>'); i >= 0 {
		v2 = v2[:i]
	}
	if err := sip.ParseUri(v2, &to); err != nil || to.User == "" {
		return tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
	}
	select {
	case v.(chan<- string) <- to.User:
		return tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
	default:
		return tx.Respond(sip.NewResponseFromRequest(req, 491, "Request Pending", nil))
	}
}
