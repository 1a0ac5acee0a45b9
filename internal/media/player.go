package media

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Player plays a Source into an RTP stream: one packet of 20 ms every 20 ms,
// paced by a ticker, with its own SSRC, consecutive sequence numbers,
// timestamps advancing 160 per frame (and by the wall-clock gap between two
// Plays) and the marker bit on the first packet of each Play.
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.lastEnd.IsZero() {
		p.ts += uint32(int64(time.Since(p.lastEnd)) * SampleRate / int64(time.Second))
	}
	defer func() { p.lastEnd = time.Now() }()
	t := time.NewTicker(FrameDuration)
	defer t.Stop()
	marker := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := src.ReadFrame(p.pcm[:])
		if n == 0 && err != nil {
			if err == io.EOF {
				return nil
			}
			return err
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
			return werr
		}
		marker = false
		p.seq++
		p.ts += FrameSamples
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
