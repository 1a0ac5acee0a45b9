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
	players [2]*Player
	muted   [2]atomic.Int32
	taps    [2]atomic.Pointer[func([]int16)]
	dtmf    [2]atomic.Pointer[func(rune)]

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
	br := &Bridge{legs: [2]Leg{a, b}, log: log, done: make(chan struct{})}
	for i, l := range br.legs {
		br.players[i] = NewPlayer(l.Session, l.Codec, l.PayloadType)
	}
	return br, nil
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
	var wg sync.WaitGroup
	for _, from := range []Side{SideA, SideB} {
		wg.Add(1)
		r := b.newRelay(from)
		go func() {
			defer wg.Done()
			r.run(ctx)
		}()
	}
	go func() {
		wg.Wait()
		b.cancel()
		close(b.done)
	}()
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
	return nil
}

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

// SetDTMFHandler attaches fn to the telephone-events received from leg
// from: it is called once per key press, on the relay goroutine, and must
// not block. nil detaches. Events are passed through all the same.
func (b *Bridge) SetDTMFHandler(from Side, fn func(digit rune)) {
	if fn == nil {
		b.dtmf[from].Store(nil)
		return
	}
	b.dtmf[from].Store(&fn)
}

// Play stops relaying towards leg to, plays src into it and resumes relaying
// when src ends (nil) or ctx ends (ctx's error). Use it for prompts,
// announcements and ringback while the bridge runs; the other direction
// keeps flowing. It works whether or not the bridge is started.
func (b *Bridge) Play(ctx context.Context, to Side, src Source) error {
	b.muted[to].Add(1)
	defer b.muted[to].Add(-1)
	return b.players[to].Play(ctx, src)
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
// every packet.
type relay struct {
	b        *Bridge
	fromSide Side
	from, to Leg
	in, out  rtp.Packet
	recv     DTMFReceiver
	payload  [maxPacketSize]byte
	pcm      [maxPacketSize]int16
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
		if fn := r.b.dtmf[r.fromSide].Load(); fn != nil {
			if d, ok := r.recv.Receive(in); ok {
				(*fn)(d)
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
		n := codec.Decode(r.pcm[:], in.Payload)
		(*fn)(r.pcm[:n])
	}
	r.out.Header = in.Header
	r.out.PayloadType = r.to.PayloadType
	if codec == r.to.Codec {
		r.out.Payload = in.Payload
	} else {
		n := Transcode(r.payload[:], in.Payload, codec, r.to.Codec)
		r.out.Payload = r.payload[:n]
	}
	return true
}
