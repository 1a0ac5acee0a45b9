package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pion/rtp"
)

// DTMFEvent is the 4-byte RFC 4733 telephone-event payload.
//
//	 0                   1                   2                   3
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type DTMFEvent struct {
	Event    uint8  // 0-9 digits, 10 '*', 11 '#', 12-15 A-D, 16 flash
	End      bool   // E bit: last packet(s) of the event
	Volume   uint8  // power level in -dBm0, 0..63
	Duration uint16 // in RTP clock units (8 kHz) since the event's timestamp
}

// DTMFEventSize is the size of a telephone-event payload.
const DTMFEventSize = 4

// MarshalTo writes the event into b, which must hold DTMFEventSize bytes.
func (e DTMFEvent) MarshalTo(b []byte) (int, error) {
	if len(b) < DTMFEventSize {
		return 0, fmt.Errorf("media: telephone-event needs %d bytes, buffer has %d", DTMFEventSize, len(b))
	}
	if e.Volume > 63 {
		return 0, fmt.Errorf("media: telephone-event volume %d out of range 0-63", e.Volume)
	}
	b[0] = e.Event
	b[1] = e.Volume
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], e.Duration)
	return DTMFEventSize, nil
}

// Unmarshal parses a telephone-event payload. Bytes past the first four
// (padding, or a redundant block) are ignored; the R bit is ignored.
func (e *DTMFEvent) Unmarshal(b []byte) error {
	if len(b) < DTMFEventSize {
		return fmt.Errorf("%w: got %d", ErrShortPayload, len(b))
	}
	e.Event = b[0]
	e.End = b[1]&0x80 != 0
	e.Volume = b[1] & 0x3F
	e.Duration = binary.BigEndian.Uint16(b[2:4])
	return nil
}

// DigitToEvent maps a DTMF digit (0-9, *, #, A-D, case-insensitive) to its
// RFC 4733 event code.
func DigitToEvent(d rune) (uint8, bool) {
	switch {
	case d >= '0' && d <= '9':
		return uint8(d - '0'), true
	case d == '*':
		return 10, true
	case d == '#':
		return 11, true
	case d >= 'A' && d <= 'D':
		return uint8(d-'A') + 12, true
	case d >= 'a' && d <= 'd':
		return uint8(d-'a') + 12, true
	}
	return 0, false
}

// EventToDigit maps an RFC 4733 event code 0-15 to its digit.
func EventToDigit(ev uint8) (rune, bool) {
	if ev < 16 {
		return rune("0123456789*#ABCD"[ev]), true
	}
	return 0, false
}

// DTMFReceiver turns a stream of telephone-event packets into digits: one per
// key press, however many times the sender repeats the start, update or end
// packets. A key press is identified by its RTP timestamp (RFC 4733 §2.5.1):
// the digit is reported on the first packet of a new timestamp, so a press
// whose first packets were lost is still reported, and retransmitted end
// packets are not reported again. The zero value is ready to use; it is not
// safe for concurrent use.
type DTMFReceiver struct {
	started  bool
	ssrc     uint32
	ts       uint32
	event    uint8
	ended    bool
	duration uint16
}

// Receive handles one telephone-event packet and returns the digit when the
// packet starts a new key press. Packets with a malformed payload, events
// that are not digits (such as flash or fax tones) and late packets of an
// earlier press return false.
func (r *DTMFReceiver) Receive(pkt *rtp.Packet) (rune, bool) {
	var ev DTMFEvent
	if err := ev.Unmarshal(pkt.Payload); err != nil {
		return 0, false
	}
	ts := pkt.Timestamp
	if r.started && pkt.SSRC == r.ssrc {
		d := int32(ts - r.ts)
		switch {
		case d == 0: // same press: update or retransmitted end
			r.ended = r.ended || ev.End
			r.duration = max(r.duration, ev.Duration)
			return 0, false
		case d < 0: // late packet of an earlier press
			return 0, false
		case !r.ended && ev.Event == r.event && uint32(d) == uint32(r.duration):
			// A press longer than the 16-bit duration continues in a new
			// segment at ts+duration (RFC 4733 §2.5.1.3): same press.
			r.ts, r.duration, r.ended = ts, ev.Duration, ev.End
			return 0, false
		}
	}
	r.started, r.ssrc, r.ts = true, pkt.SSRC, ts
	r.event, r.ended, r.duration = ev.Event, ev.End, ev.Duration
	return EventToDigit(ev.Event)
}

// RTPWriter is where SendDTMF and Player write packets; *Session is one.
type RTPWriter interface {
	WriteRTP(pkt *rtp.Packet) error
}

// DTMF sending parameters (RFC 4733 §2.5.1.2, §5).
const (
	dtmfPacketInterval = 50 * time.Millisecond
	dtmfEndRepeats     = 3
	dtmfVolume         = 10
)

// SendDTMF sends one digit as RFC 4733 events with payload type pt: a start
// packet with the marker bit, an update every 50 ms, and three end packets,
// all with the timestamp of the start. It blocks for about duration and
// returns early with ctx's error. duration is clamped to 40 ms .. 5 s.
func SendDTMF(ctx context.Context, w RTPWriter, pt uint8, digit rune, duration time.Duration) error {
	code, ok := DigitToEvent(digit)
	if !ok {
		return fmt.Errorf("media: %q is not a DTMF digit", digit)
	}
	duration = min(max(duration, 40*time.Millisecond), 5*time.Second)
	var hdr [12]byte
	_, _ = rand.Read(hdr[:])
	pkt := rtp.Packet{Header: rtp.Header{
		Version:        2,
		PayloadType:    pt,
		SSRC:           binary.BigEndian.Uint32(hdr[0:4]),
		SequenceNumber: binary.BigEndian.Uint16(hdr[4:6]),
		Timestamp:      binary.BigEndian.Uint32(hdr[8:12]),
		Marker:         true,
	}}
	var payload [DTMFEventSize]byte
	total := uint16(duration.Seconds() * SampleRate)
	step := uint16(dtmfPacketInterval.Seconds() * SampleRate)
	ev := DTMFEvent{Event: code, Volume: dtmfVolume, Duration: step}
	send := func() error {
		if _, err := ev.MarshalTo(payload[:]); err != nil {
			return err
		}
		pkt.Payload = payload[:]
		err := w.WriteRTP(&pkt)
		pkt.SequenceNumber++
		pkt.Marker = false
		if errors.Is(err, ErrNoRemote) {
			return nil
		}
		return err
	}
	t := time.NewTicker(dtmfPacketInterval)
	defer t.Stop()
	for {
		if err := send(); err != nil {
			return err
		}
		if ev.Duration >= total {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		ev.Duration = min(ev.Duration+step, total)
	}
	ev.End = true
	for range dtmfEndRepeats {
		if err := send(); err != nil {
			return err
		}
	}
	return nil
}

// ParseDTMFInfo reads the key press of a SIP INFO body: contentType
// "application/dtmf-relay" ("Signal=5" and "Duration=160" lines, as Cisco
// and most phones send) or "application/dtmf" (the digit alone). Signal
// may be a digit (0-9, *, #, A-D) or its RFC 4733 event code (10 for *).
func ParseDTMFInfo(contentType string, body []byte) (rune, error) {
	if len(body) > 1024 {
		return 0, fmt.Errorf("%s body: %d bytes, too long", contentType, len(body))
	}
	text := string(body)
	if contentType == "application/dtmf" {
		return parseSignal(contentType, strings.TrimSpace(text))
	}
	for i, line := range strings.Split(text, "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue // blank lines; Duration without a value is not ours to judge
		}
		if strings.EqualFold(strings.TrimSpace(key), "signal") {
			return parseSignal(fmt.Sprintf("%s body line %d", contentType, i+1), strings.TrimSpace(value))
		}
	}
	return 0, fmt.Errorf("%s body: no Signal= line", contentType)
}

func parseSignal(where, s string) (rune, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 10 && n <= 15 {
		d, _ := EventToDigit(uint8(n))
		return d, nil
	}
	if r := []rune(s); len(r) == 1 {
		if ev, ok := DigitToEvent(r[0]); ok {
			d, _ := EventToDigit(ev)
			return d, nil
		}
	}
	return 0, fmt.Errorf("%s: signal %q is not a DTMF digit", where, s)
}
