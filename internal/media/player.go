package media

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// playerCatchUp is the most a Player late on its schedule sends at once to
// get back on it; after a longer stall it skips the time lost instead.
const playerCatchUp = 5 * FrameDuration

// Player plays a Source into an RTP stream: one packet of 20 ms every 20 ms,
// with its own SSRC, consecutive sequence numbers, timestamps advancing 160
// per frame (and by the wall-clock gap between two Plays) and the marker
// bit on the first packet of each Play.
//
// Frame k of a Play leaves at start + k × 20 ms by the clock, not 20 ms
// after frame k-1: a Player delayed by a busy CPU sends the frames it owes
// at once (up to playerCatchUp of them) and is back on schedule, where a
// ticker would drop the missed ticks and leave every later packet behind
// its timestamp for the rest of the Play, a lag the far end's jitter buffer
// pays for as a gap. After a longer stall the timestamps jump by the time
// lost, so the far end sees one gap and no drift.
type Player struct {
	w     RTPWriter
	codec Codec
	pt    uint8

	mu      sync.Mutex // one Play at a time; guards the rest
	ssrc    uint32
	seq     uint16
	ts      uint32
	lastEnd time.Time
	pcm     [FrameSamples]int16
	payload [FrameSamples]byte
	pkt     rtp.Packet
}

// NewPlayer returns a Player writing codec with payload type pt to w
// (usually a *Session).
func NewPlayer(w RTPWriter, codec Codec, pt uint8) *Player {
	return &Player{w: w, codec: codec, pt: pt, ssrc: randUint32(), seq: uint16(randUint32()), ts: randUint32()}
}

// Play sends src until it ends (returns nil), ctx ends (returns ctx's error)
// or the writer is closed (returns ErrClosed). A short last frame is padded
// with silence. Concurrent Plays on one Player run one after the other.
// Write errors other than ErrClosed (such as ErrNoRemote) drop the frame and
// keep the pace.
func (p *Player) Play(ctx context.Context, src Source) error {
	return playTogether(ctx, []*Player{p}, []Source{src})
}

// playing is one Player's part in playTogether.
type playing struct {
	p      *Player
	src    Source
	marker bool
	done   bool
}

// playTogether plays srcs[i] on players[i], all paced by the calling
// goroutine on one schedule, until every source has ended; the first error
// (a closed writer, a failing source, ctx) ends them all. The players must
// be distinct.
func playTogether(ctx context.Context, players []*Player, srcs []Source) error {
	ps := make([]playing, len(players))
	for i, p := range players {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.lastEnd.IsZero() {
			p.ts += uint32(int64(time.Since(p.lastEnd)) * SampleRate / int64(time.Second))
		}
		defer func() { p.lastEnd = time.Now() }()
		ps[i] = playing{p: p, src: srcs[i], marker: true}
	}
	next := time.Now() // when the frame being sent is due
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		active := 0
		for i := range ps {
			x := &ps[i]
			if x.done {
				continue
			}
			done, err := x.p.sendFrame(x.src, x.marker)
			if err != nil {
				return err
			}
			x.marker, x.done = false, done
			if !done {
				active++
			}
		}
		if active == 0 {
			return nil
		}
		next = next.Add(FrameDuration)
		wait := time.Until(next)
		if wait < -playerCatchUp {
			// Too far behind to catch up: resume now, the timestamps
			// skipping the frames' worth of time lost.
			skip := -wait / FrameDuration
			next = next.Add(skip * FrameDuration)
			for i := range ps {
				ps[i].p.ts += uint32(skip) * FrameSamples
			}
			wait += skip * FrameDuration
		}
		if wait <= 0 {
			continue // late: the next frame is due already
		}
		if t == nil {
			t = time.NewTimer(wait)
		} else {
			t.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// sendFrame sends src's next frame; done when src has ended (with or
// without a last, padded frame). Errors: the source's, or ErrClosed.
func (p *Player) sendFrame(src Source, marker bool) (done bool, err error) {
	n, err := src.ReadFrame(p.pcm[:])
	if n == 0 && err != nil {
		if err == io.EOF {
			return true, nil
		}
		return true, err
	}
	clear(p.pcm[n:])
	p.codec.Encode(p.payload[:], p.pcm[:])
	p.pkt.Header = rtp.Header{
		Version:        2,
		Marker:         marker,
		PayloadType:    p.pt,
		SequenceNumber: p.seq,
		Timestamp:      p.ts,
		SSRC:           p.ssrc,
	}
	p.pkt.Payload = p.payload[:]
	if werr := p.w.WriteRTP(&p.pkt); errors.Is(werr, ErrClosed) {
		return true, werr
	}
	p.seq++
	p.ts += FrameSamples
	if err == io.EOF {
		return true, nil
	}
	return false, err
}
