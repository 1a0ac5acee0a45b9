package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

var (
	_ RTPWriter = (*Session)(nil)
	_ Source    = (*tone)(nil)
)

// Side names a leg of a Bridge.
type Side int

// The two legs of a Bridge: by convention A is the caller (inbound leg) and
// B the callee.
const (
	SideA Side = iota
	SideB
)

// Other returns the opposite side.
func (s Side) Other() Side { return 1 - s }

func (s Side) String() string {
	if s == SideA {
		return "A"
	}
	return "B"
}

// Leg is one side of a Bridge: a session and what its SDP negotiated.
type Leg struct {
	Session     *Session
	Codec       Codec // PCMU or PCMA
	PayloadType uint8 // audio payload type on this leg (normally the codec's static one)
	EventPT     uint8 // telephone-event payload type; 0 when not negotiated
}

// Bridge relays RTP between two legs: audio is transcoded between µ-law and
// A-law when the legs differ, payload types are renumbered, and RFC 4733
// telephone-events pass through with the other leg's event payload type
// (they are dropped towards a leg that did not negotiate telephone-event).
// Audio arriving with the other G.711 static payload type than negotiated is
// recognised and transcoded too. Other payload types (comfort noise, video)
// are dropped.
//
// Taps and DTMF handlers may be attached per direction at any time; Play
// interrupts the relay towards one leg to play a Source into it.
//
// A Bridge does not own its sessions: Close stops relaying and leaves them
// open, so a leg can be bridged again (after a transfer, say).
type Bridge struct {
	legs    [2]Leg
	log     *slog.Logger
	players [2]*Player // made on first use; guarded by mu
	muted   [2]atomic.Int32
	taps    [2]atomic.Pointer[func([]int16)]
	dtmf    [2]atomic.Pointer[dtmfHandler]

	// SIP INFO digits being sent on as telephone-events; after Close no
	// more are (sigMu is never held with mu).
	sigMu     sync.Mutex
	sigClosed bool
	signalled sync.WaitGroup

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewBridge checks the legs and returns a Bridge ready to Start.
func NewBridge(a, b Leg, log *slog.Logger) (*Bridge, error) {
	for i, l := range []Leg{a, b} {
		if l.Session == nil {
			return nil, fmt.Errorf("media: bridge leg %s has no session", Side(i))
		}
		if l.Codec != PCMU && l.Codec != PCMA {
			return nil, fmt.Errorf("media: bridge leg %s codec %s not supported", Side(i), l.Codec)
		}
	}
	if a.Session == b.Session {
		return nil, errors.New("media: bridge legs share one session")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Bridge{legs: [2]Leg{a, b}, log: log, done: make(chan struct{})}, nil
}

// Start relays in both directions until ctx ends, Close is called or a
// session is closed. Calling it again does nothing.
func (b *Bridge) Start(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return
	}
	b.started = true
	ctx, b.cancel = context.WithCancel(ctx)
	for _, from := range []Side{SideA, SideB} {
		b.legs[from].Session.setDigitSink(func(d rune) { b.signal(ctx, from, d) })
	}
	// The relay that ends last closes done: no goroutine just to wait.
	cancel := b.cancel
	var running atomic.Int32
	running.Store(2)
	for _, from := range []Side{SideA, SideB} {
		r := b.newRelay(from)
		go func() {
			r.run(ctx)
			if running.Add(-1) == 0 {
				cancel()
				close(b.done)
			}
		}()
	}
}

// Done is closed when both relay goroutines have ended.
func (b *Bridge) Done() <-chan struct{} { return b.done }

// Close stops relaying and waits until both relay goroutines have returned,
// after which each session may be read by someone else. It does not close
// the sessions.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if !b.started {
		b.started = true // a later Start does nothing
		close(b.done)
	}
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-b.done
	for _, l := range b.legs {
		l.Session.setDigitSink(nil)
	}
	b.sigMu.Lock()
	b.sigClosed = true
	b.sigMu.Unlock()
	b.signalled.Wait()
	return nil
}

// signal handles a key press signalled outside RTP on leg from (SIP INFO):
// the DTMF handler sees it like a telephone-event, and it goes on to the
// other leg as RFC 4733 events when that leg negotiated them.
func (b *Bridge) signal(ctx context.Context, from Side, d rune) {
	if h := b.dtmf[from].Load(); h != nil {
		h.fn(d)
		if h.consume {
			return
		}
	}
	to := b.legs[from.Other()]
	if to.EventPT == 0 {
		return
	}
	b.sigMu.Lock()
	defer b.sigMu.Unlock()
	if b.sigClosed {
		return
	}
	b.signalled.Add(1)
	go func() {
		defer b.signalled.Done()
		_ = SendDTMF(ctx, to.Session, to.EventPT, d, signalledDuration)
	}()
}

// signalledDuration is how long a key press signalled without a duration
// lasts when it is sent on as telephone-events.
const signalledDuration = 100 * time.Millisecond

// SetTap attaches fn to the audio received from leg from, as 8 kHz linear
// PCM, for recording or in-band detection; nil detaches. fn runs on the relay
// goroutine for every packet: it must be quick and must not keep the slice.
// The tap sees audio even while Play mutes that direction.
func (b *Bridge) SetTap(from Side, fn func(linear []int16)) {
	if fn == nil {
		b.taps[from].Store(nil)
		return
	}
	b.taps[from].Store(&fn)
}

// dtmfHandler is what a leg's key presses go to.
type dtmfHandler struct {
	fn      func(rune)
	consume bool // the presses are not passed on to the other leg
}

// SetDTMFHandler attaches fn to the telephone-events received from leg
// from: it is called once per key press, on the relay goroutine, and must
// not block. nil detaches. Events are passed through all the same.
func (b *Bridge) SetDTMFHandler(from Side, fn func(digit rune)) {
	b.setDTMF(from, fn, false)
}

// TakeDTMF is SetDTMFHandler for key presses that are Switchboard's: they
// reach fn and are not passed on to the other leg.
func (b *Bridge) TakeDTMF(from Side, fn func(digit rune)) {
	b.setDTMF(from, fn, true)
}

func (b *Bridge) setDTMF(from Side, fn func(rune), consume bool) {
	if fn == nil {
		b.dtmf[from].Store(nil)
		return
	}
	b.dtmf[from].Store(&dtmfHandler{fn: fn, consume: consume})
}

// Play stops relaying towards leg to, plays src into it and resumes relaying
// when src ends (nil) or ctx ends (ctx's error). Use it for prompts,
// announcements and ringback while the bridge runs; the other direction
// keeps flowing. It works whether or not the bridge is started.
func (b *Bridge) Play(ctx context.Context, to Side, src Source) error {
	b.muted[to].Add(1)
	defer b.muted[to].Add(-1)
	return b.player(to).Play(ctx, src)
}

// player is the Player into leg to, made on the first Play: most bridges
// never play anything.
func (b *Bridge) player(to Side) *Player {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.players[to] == nil {
		l := b.legs[to]
		b.players[to] = NewPlayer(l.Session, l.Codec, l.PayloadType)
	}
	return b.players[to]
}

// PlayBoth plays srcA into leg A and srcB into leg B at once, paced by the
// calling goroutine alone (the recording notice, which both sides hear),
// with the relay towards both legs stopped until both have ended; it
// returns like Play.
func (b *Bridge) PlayBoth(ctx context.Context, srcA, srcB Source) error {
	b.muted[SideA].Add(1)
	b.muted[SideB].Add(1)
	defer b.muted[SideA].Add(-1)
	defer b.muted[SideB].Add(-1)
	return playTogether(ctx, []*Player{b.player(SideA), b.player(SideB)}, []Source{srcA, srcB})
}

// LastActivity returns the last time an RTP packet arrived on either leg
// (Session.LastActivity of each leg tells them apart).
func (b *Bridge) LastActivity() time.Time {
	ta, tb := b.legs[SideA].Session.LastActivity(), b.legs[SideB].Session.LastActivity()
	if ta.After(tb) {
		return ta
	}
	return tb
}

// relay moves packets from one leg to the other. Its buffers are reused for
// every packet, and allocated only when first needed: most calls never
// transcode nor tap, and a thousand calls would carry 9 MB of them.
type relay struct {
	b        *Bridge
	fromSide Side
	from, to Leg
	in, out  rtp.Packet
	recv     DTMFReceiver
	payload  []byte  // transcoded audio
	pcm      []int16 // decoded audio for a tap
}

func (b *Bridge) newRelay(from Side) *relay {
	return &relay{b: b, fromSide: from, from: b.legs[from], to: b.legs[from.Other()]}
}

func (r *relay) run(ctx context.Context) {
	toSide := r.fromSide.Other()
	r.from.Session.readEach(ctx, &r.in, r.b.log.With("bridge_from", r.fromSide.String()), func() bool {
		if !r.process(&r.in) || r.b.muted[toSide].Load() > 0 {
			return true
		}
		return !errors.Is(r.to.Session.WriteRTP(&r.out), ErrClosed)
	})
}

// process handles one packet from r.from: taps and DTMF, then builds r.out
// for r.to. It returns false when there is nothing to forward.
func (r *relay) process(in *rtp.Packet) bool {
	pt := in.PayloadType
	if r.from.EventPT != 0 && pt == r.from.EventPT {
		if h := r.b.dtmf[r.fromSide].Load(); h != nil {
			if d, ok := r.recv.Receive(in); ok {
				h.fn(d)
			}
			if h.consume {
				return false
			}
		}
		if r.to.EventPT == 0 {
			return false
		}
		r.out.Header = in.Header
		r.out.PayloadType = r.to.EventPT
		r.out.Payload = in.Payload
		return true
	}
	var codec Codec
	switch pt {
	case r.from.PayloadType:
		codec = r.from.Codec
	case PayloadTypePCMU:
		codec = PCMU
	case PayloadTypePCMA:
		codec = PCMA
	default:
		return false
	}
	if fn := r.b.taps[r.fromSide].Load(); fn != nil {
		if r.pcm == nil {
			r.pcm = make([]int16, maxPacketSize)
		}
		n := codec.Decode(r.pcm, in.Payload)
		(*fn)(r.pcm[:n])
	}
	r.out.Header = in.Header
	r.out.PayloadType = r.to.PayloadType
	if codec == r.to.Codec {
		r.out.Payload = in.Payload
	} else {
		if r.payload == nil {
			r.payload = make([]byte, maxPacketSize)
		}
		n := Transcode(r.payload, in.Payload, codec, r.to.Codec)
		r.out.Payload = r.payload[:n]
	}
	return true
}
