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

// ErrInterrupted is returned by Channel.Play when a newer Play or Stop cut
// it short (as opposed to the caller's own context ending).
var ErrInterrupted = errors.New("media: play interrupted")

// A key press in progress when Channel.Stop is called is read to its end
// (until no telephone-event packet came for pressQuiet, at most pressLinger):
// otherwise its remaining packets reach the session's next reader, a Bridge,
// which would report and relay the press a second time.
const (
	pressQuiet  = 60 * time.Millisecond
	pressLinger = 300 * time.Millisecond
)

// DigitBuffer is how many DTMF digits a Channel holds for a slow reader;
// further digits are dropped and counted (see Channel.DroppedDigits).
const DigitBuffer = 32

// Channel is one call leg's media while the leg is not bridged: IVR menus,
// the voice captcha, voicemail, queue music, the announcement to a callee.
// It reads the leg's RTP on one goroutine (a Session has a single reader),
// turns RFC 4733 telephone-events into digits and hands decoded audio to a
// tap; Play sends a Source into the leg, one at a time.
//
// Stop hands the session back: the reader and any Play have returned when
// it does, and the session is left open for a Bridge (which reads it
// itself). A stopped Channel may be started again once the Bridge is closed.
//
//	ch := media.NewChannel(sess, neg.Codec, neg.PayloadType, neg.EventPT, log)
//	ch.Start(ctx)
//	go ch.Play(ctx, menu)            // returns ErrInterrupted if cut short
//	d := <-ch.Digits()
//	ch.Stop()                        // now bridge the session
type Channel struct {
	sess    *Session
	codec   Codec
	pt      uint8
	eventPT uint8
	log     *slog.Logger
	player  *Player
	digits  chan rune
	tap     atomic.Pointer[func([]int16)]
	dropped atomic.Uint64
	eventAt atomic.Int64 // unix ns of the last telephone-event packet

	life    sync.Mutex // serialises Start and Stop
	mu      sync.Mutex // guards the fields below
	running bool       // a reader was started and Stop was not called since
	stopped bool       // Stop was called and Start not since: Play refused
	cancel  context.CancelFunc
	done    chan struct{} // closed when the current reader returns
	play    *playback     // the Play in progress, if any
	plays   sync.WaitGroup

	// Reader state, owned by the reader goroutine (one at a time: a new
	// reader starts only after the previous one closed its done channel).
	pkt      rtp.Packet
	recv     DTMFReceiver
	pcm      [maxPacketSize]int16
	flooding atomic.Bool // digits are being dropped; logged once per episode
}

// playback is one Play in progress.
type playback struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// NewChannel returns a Channel on s that sends and understands codec with
// audio payload type pt and telephone-events with eventPT (0 when the SDP
// negotiated none: digits then never arrive). log may be nil.
func NewChannel(s *Session, codec Codec, pt, eventPT uint8, log *slog.Logger) *Channel {
	if log == nil {
		log = slog.Default()
	}
	return &Channel{
		sess:    s,
		codec:   codec,
		pt:      pt,
		eventPT: eventPT,
		log:     log,
		player:  NewPlayer(s, codec, pt),
		digits:  make(chan rune, DigitBuffer),
	}
}

// Start reads the leg until ctx ends, Stop is called or the session is
// closed. Calling it while a reader runs does nothing; after Stop (or after
// the reader ended on its own) it starts a new reader.
func (c *Channel) Start(ctx context.Context) {
	c.life.Lock()
	defer c.life.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		select {
		case <-c.done:
		default:
			return
		}
	}
	c.running, c.stopped = true, false
	ctx, c.cancel = context.WithCancel(ctx)
	c.sess.setDigitSink(c.deliver)
	done := make(chan struct{})
	c.done = done
	go c.read(ctx, done)
}

// Stop ends the reader and the Play in progress (which returns
// ErrInterrupted) and waits for both. The session stays open. Play is
// refused until Start is called again. If a key press is still arriving,
// Stop first reads it to its end (up to 300 ms) so that the next reader of
// the session does not see it again. Stop must not be called from a tap.
func (c *Channel) Stop() {
	c.life.Lock()
	defer c.life.Unlock()
	c.mu.Lock()
	c.stopped = true
	if c.play != nil {
		c.play.cancel(ErrInterrupted)
	}
	cancel, done := c.cancel, c.done
	c.running, c.cancel = false, nil
	c.mu.Unlock()
	c.sess.setDigitSink(nil)
	if cancel != nil {
		c.lingerForPress(done)
		cancel()
		<-done
	}
	c.plays.Wait()
}

// lingerForPress waits while telephone-events keep arriving (see
// pressQuiet).
func (c *Channel) lingerForPress(done <-chan struct{}) {
	deadline := time.Now().Add(pressLinger)
	for {
		quiet := time.Since(time.Unix(0, c.eventAt.Load()))
		if quiet >= pressQuiet || !time.Now().Before(deadline) {
			return
		}
		select {
		case <-done:
			return
		case <-time.After(min(pressQuiet-quiet, time.Until(deadline))):
		}
	}
}

// Digits delivers the DTMF digits received, one per key press, whether as
// telephone-events or through Session.SignalDTMF (SIP INFO). The channel
// is never closed. It holds DigitBuffer digits; when nobody reads them
// further digits are dropped rather than blocking the reader.
func (c *Channel) Digits() <-chan rune { return c.digits }

// DroppedDigits is how many digits were dropped because Digits was full.
func (c *Channel) DroppedDigits() uint64 { return c.dropped.Load() }

// SetTap attaches fn to the audio received from the leg, as 8 kHz linear
// PCM (voicemail records through it); nil detaches. fn runs on the reader
// goroutine for every packet: it must be quick and must not keep the slice.
func (c *Channel) SetTap(fn func(linear []int16)) {
	if fn == nil {
		c.tap.Store(nil)
		return
	}
	c.tap.Store(&fn)
}

// LastActivity returns when the leg last sent RTP (see Session.LastActivity).
func (c *Channel) LastActivity() time.Time { return c.sess.LastActivity() }

// Play sends src into the leg, one 20 ms packet every 20 ms, and returns nil
// when src ends, ctx's error when ctx ends, ErrInterrupted when a newer Play
// or Stop cut it short, and an error wrapping ErrClosed when the session is
// closed or the Channel is stopped. A new Play stops the one in progress and
// waits for it, so one Play at a time reaches the leg. Play does not need
// Start: early media can be played before anything is read.
func (c *Channel) Play(ctx context.Context, src Source) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return fmt.Errorf("%w: channel stopped", ErrClosed)
	}
	prev := c.play
	pctx, cancel := context.WithCancelCause(ctx)
	cur := &playback{cancel: cancel, done: make(chan struct{})}
	c.play = cur
	c.plays.Add(1)
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		if c.play == cur {
			c.play = nil
		}
		c.mu.Unlock()
		cancel(nil)
		close(cur.done)
		c.plays.Done()
	}()
	if prev != nil {
		prev.cancel(ErrInterrupted)
		select {
		case <-prev.done:
		case <-pctx.Done():
			return playErr(ctx, pctx, pctx.Err())
		}
	}
	return playErr(ctx, pctx, c.player.Play(pctx, src))
}

// playErr tells an interrupted Play from one whose caller gave up.
func playErr(ctx, pctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(pctx), ErrInterrupted) {
		return ErrInterrupted
	}
	return err
}

// read is the reader goroutine.
func (c *Channel) read(ctx context.Context, done chan struct{}) {
	defer close(done)
	c.sess.readEach(ctx, &c.pkt, c.log, func() bool {
		c.handle(&c.pkt)
		return true
	})
}

// handle dispatches one received packet: telephone-events to Digits, audio
// to the tap. Other payload types (comfort noise, video) are ignored.
func (c *Channel) handle(pkt *rtp.Packet) {
	pt := pkt.PayloadType
	if c.eventPT != 0 && pt == c.eventPT {
		c.eventAt.Store(time.Now().UnixNano())
		if d, ok := c.recv.Receive(pkt); ok {
			c.deliver(d)
		}
		return
	}
	fn := c.tap.Load()
	if fn == nil {
		return // nobody listens: skip decoding
	}
	var codec Codec
	switch pt {
	case c.pt:
		codec = c.codec
	case PayloadTypePCMU:
		codec = PCMU
	case PayloadTypePCMA:
		codec = PCMA
	default:
		return
	}
	n := codec.Decode(c.pcm[:], pkt.Payload)
	(*fn)(c.pcm[:n])
}

// deliver queues a digit without ever blocking the reader.
func (c *Channel) deliver(d rune) {
	select {
	case c.digits <- d:
		c.flooding.Store(false)
	default:
		n := c.dropped.Add(1)
		if !c.flooding.Swap(true) {
			c.log.Warn("dtmf digits dropped: nobody reads them", "digit", string(d), "dropped_total", n)
		}
	}
}
