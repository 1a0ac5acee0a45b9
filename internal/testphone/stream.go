package testphone

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard/switchboard/internal/media"
)

// ringFrames is how much received audio a call keeps: 20 s of 20 ms frames.
const ringFrames = 1000

// rxFrame is one received frame of decoded audio and when it arrived.
type rxFrame struct {
	at  time.Time
	n   int
	pcm [media.FrameSamples]int16
}

// stream is the RTP side of one call: a media.Session, a sender goroutine
// that writes one frame of the current Source every 20 ms, and a receiver
// goroutine that decodes audio into a ring of recent frames and turns
// telephone-events into digits.
//
// Lock order: stream.mu is a leaf.
type stream struct {
	sess *media.Session
	log  *slog.Logger

	ctx    context.Context // ends when the call ends
	cancel context.CancelFunc

	recvOnce, sendOnce sync.Once

	mu      sync.Mutex
	codec   media.Codec // negotiated codec we send, and decode PT pt with
	pt      uint8
	eventPT uint8 // the far end's telephone-event payload type; 0: none
	sending bool  // false while the far end holds us (sendonly/inactive)
	src     media.Source
	digits  strings.Builder
	ring    [ringFrames]rxFrame
	next    int // ring index of the next frame to write
	filled  int // frames in the ring
}

func newStream(parent context.Context, sess *media.Session, log *slog.Logger, src media.Source) *stream {
	if src == nil {
		src = media.Silence()
	}
	ctx, cancel := context.WithCancel(parent)
	return &stream{sess: sess, log: log, ctx: ctx, cancel: cancel, src: src, sending: true}
}

// configure applies an SDP negotiation: codec, payload types, direction and
// the remote address.
func (s *stream) configure(n media.Negotiation) {
	s.mu.Lock()
	s.codec, s.pt, s.eventPT = n.Codec, n.PayloadType, n.EventPT
	s.sending = n.Direction.Sends()
	s.mu.Unlock()
	if n.Remote.IsValid() && n.Remote.Port() != 0 && !n.Remote.Addr().IsUnspecified() {
		if s.sess.Remote() != n.Remote {
			s.sess.SetRemote(n.Remote)
		}
		if n.RemoteRTCP.IsValid() && n.RemoteRTCP.Port() != 0 {
			s.sess.SetRemoteRTCP(n.RemoteRTCP)
		}
	}
}

// startReceiving starts the receiver once; run is the phone's goroutine
// starter (it refuses after Close).
func (s *stream) startReceiving(run func(func()) bool) {
	s.recvOnce.Do(func() { run(s.receive) })
}

// startSending starts the sender once.
func (s *stream) startSending(run func(func()) bool) {
	s.sendOnce.Do(func() { run(s.send) })
}

// close stops both goroutines and the session (idempotent).
func (s *stream) close() {
	s.cancel()
	_ = s.sess.Close()
}

func (s *stream) play(src media.Source) {
	if src == nil {
		src = media.Silence()
	}
	s.mu.Lock()
	s.src = src
	s.mu.Unlock()
}

func (s *stream) telephoneEventPT() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventPT
}

// send writes one 20 ms frame of the current source every 20 ms, with its
// own SSRC and timeline (the Session maps them onto the outgoing stream).
// A finite source that ends is followed by silence.
func (s *stream) send() {
	var hdr [10]byte
	_, _ = rand.Read(hdr[:])
	pkt := rtp.Packet{Header: rtp.Header{
		Version:        2,
		SSRC:           binary.BigEndian.Uint32(hdr[0:4]),
		SequenceNumber: binary.BigEndian.Uint16(hdr[4:6]),
		Timestamp:      binary.BigEndian.Uint32(hdr[6:10]),
	}}
	var pcm [media.FrameSamples]int16
	var payload [media.FrameSamples]byte
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	for {
		s.mu.Lock()
		n, err := s.src.ReadFrame(pcm[:])
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Debug("rtp source failed", "error", err)
			}
			s.src = media.Silence()
		}
		codec, pt, sending := s.codec, s.pt, s.sending
		s.mu.Unlock()
		clear(pcm[n:])
		if sending && codec != media.CodecNone {
			codec.Encode(payload[:], pcm[:])
			pkt.PayloadType = pt
			pkt.Payload = payload[:]
			werr := s.sess.WriteRTP(&pkt)
			if errors.Is(werr, media.ErrClosed) {
				return
			}
			pkt.Marker = false
			pkt.SequenceNumber++
		}
		pkt.Timestamp += media.FrameSamples
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// receive reads RTP until the call ends: audio is decoded into the ring,
// telephone-events become digits.
func (s *stream) receive() {
	var pkt rtp.Packet
	var dtmf dtmfDetector
	for {
		if err := s.sess.ReadRTP(s.ctx, &pkt); err != nil {
			if s.ctx.Err() == nil && !errors.Is(err, media.ErrClosed) {
				s.log.Debug("rtp read failed", "error", err)
			}
			return
		}
		now := time.Now()
		s.mu.Lock()
		switch codec := s.codecFor(pkt.PayloadType); {
		case s.eventPT != 0 && pkt.PayloadType == s.eventPT:
			if d, ok := dtmf.receive(&pkt, now); ok {
				s.digits.WriteRune(d)
			}
		case codec != media.CodecNone:
			s.store(now, codec, pkt.Payload)
		}
		s.mu.Unlock()
	}
}

// codecFor maps a received payload type to a codec: the negotiated one,
// or the static PCMU/PCMA types. Caller holds mu.
func (s *stream) codecFor(pt uint8) media.Codec {
	switch {
	case s.codec != media.CodecNone && pt == s.pt:
		return s.codec
	case pt == media.PayloadTypePCMU:
		return media.PCMU
	case pt == media.PayloadTypePCMA:
		return media.PCMA
	}
	return media.CodecNone
}

// store decodes payload into ring frames. Caller holds mu.
func (s *stream) store(at time.Time, codec media.Codec, payload []byte) {
	for len(payload) > 0 {
		f := &s.ring[s.next]
		n := min(len(payload), media.FrameSamples)
		f.at = at
		f.n = codec.Decode(f.pcm[:n], payload[:n])
		payload = payload[n:]
		s.next = (s.next + 1) % ringFrames
		s.filled = min(s.filled+1, ringFrames)
	}
}

// heard returns the audio of the frames that arrived in the last d, oldest
// first.
func (s *stream) heard(d time.Duration) []int16 {
	since := time.Now().Add(-d)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int16
	for i := s.filled; i > 0; i-- {
		f := &s.ring[(s.next-i+ringFrames)%ringFrames]
		if f.at.Before(since) {
			continue
		}
		out = append(out, f.pcm[:f.n]...)
	}
	return out
}

func (s *stream) dtmfReceived() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.digits.String()
}

// dtmfDetector is media.DTMFReceiver made tolerant of a sender whose
// media.Session re-anchored a telephone-event in mid-press: when a writer
// stalls for more than 200 ms, Session.WriteRTP gives its next packets a
// new timestamp (and the marker bit), which DTMFReceiver takes for a new
// key press, so one press is counted twice. A "new press" of the same event
// within a second, while the previous one has not ended, or that starts
// with an end packet, is taken as the same press.
type dtmfDetector struct {
	r     media.DTMFReceiver
	event uint8
	ended bool
	at    time.Time
}

func (d *dtmfDetector) receive(pkt *rtp.Packet, now time.Time) (rune, bool) {
	var ev media.DTMFEvent
	if ev.Unmarshal(pkt.Payload) != nil {
		return 0, false
	}
	digit, ok := d.r.Receive(pkt)
	recent := !d.at.IsZero() && now.Sub(d.at) < time.Second && ev.Event == d.event
	if ok && recent && (!d.ended || ev.End) {
		ok = false // the same press, re-stamped
	}
	switch {
	case ok:
		d.event, d.ended = ev.Event, ev.End
	case ev.Event == d.event:
		d.ended = d.ended || ev.End
	}
	d.at = now
	return digit, ok
}
