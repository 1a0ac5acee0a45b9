package media

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestDTMFEventCodec(t *testing.T) {
	tests := []struct {
		ev   DTMFEvent
		wire []byte
	}{
		{DTMFEvent{Event: 1, Volume: 10, Duration: 160}, []byte{0x01, 0x0A, 0x00, 0xA0}},
		{DTMFEvent{Event: 11, End: true, Volume: 10, Duration: 800}, []byte{0x0B, 0x8A, 0x03, 0x20}},
		{DTMFEvent{Event: 16, Volume: 63, Duration: 0xFFFF}, []byte{0x10, 0x3F, 0xFF, 0xFF}},
	}
	for _, tt := range tests {
		var b [4]byte
		if n, err := tt.ev.MarshalTo(b[:]); err != nil || n != 4 || !bytes.Equal(b[:], tt.wire) {
			t.Errorf("MarshalTo(%+v) = % x, %v; want % x", tt.ev, b, err, tt.wire)
		}
		var got DTMFEvent
		if err := got.Unmarshal(tt.wire); err != nil || got != tt.ev {
			t.Errorf("Unmarshal(% x) = %+v, %v", tt.wire, got, err)
		}
	}
	var ev DTMFEvent
	if err := ev.Unmarshal([]byte{1, 2, 3}); !errors.Is(err, ErrShortPayload) {
		t.Errorf("short payload: %v", err)
	}
	// The R bit is ignored.
	if err := ev.Unmarshal([]byte{5, 0x40 | 7, 0, 1}); err != nil || ev.Volume != 7 || ev.End {
		t.Errorf("R bit: %+v %v", ev, err)
	}
	if _, err := (DTMFEvent{Volume: 64}).MarshalTo(make([]byte, 4)); err == nil {
		t.Error("volume 64 accepted")
	}
	if _, err := (DTMFEvent{}).MarshalTo(make([]byte, 3)); err == nil {
		t.Error("short buffer accepted")
	}
}

func TestDigitEventMapping(t *testing.T) {
	for i, d := range "0123456789*#ABCD" {
		ev, ok := DigitToEvent(d)
		if !ok || int(ev) != i {
			t.Errorf("DigitToEvent(%q) = %d, %v", d, ev, ok)
		}
		if back, ok := EventToDigit(ev); !ok || back != d {
			t.Errorf("EventToDigit(%d) = %q", ev, back)
		}
	}
	if ev, ok := DigitToEvent('c'); !ok || ev != 14 {
		t.Errorf("lower case: %d %v", ev, ok)
	}
	for _, d := range "xE+ " {
		if _, ok := DigitToEvent(d); ok {
			t.Errorf("DigitToEvent(%q) accepted", d)
		}
	}
	if _, ok := EventToDigit(16); ok {
		t.Error("flash is not a digit")
	}
}

// eventPacket builds a telephone-event packet.
func eventPacket(ssrc, ts uint32, seq uint16, digit rune, end bool, dur uint16) *rtp.Packet {
	code, _ := DigitToEvent(digit)
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SSRC: ssrc, Timestamp: ts, SequenceNumber: seq}}
	p.Payload = make([]byte, 4)
	_, _ = DTMFEvent{Event: code, End: end, Volume: 10, Duration: dur}.MarshalTo(p.Payload)
	return p
}

// press returns the packets of one key press: updates every 160, then
// three end packets, all with timestamp ts.
func press(ssrc, ts uint32, seq *uint16, digit rune, updates int) []*rtp.Packet {
	var out []*rtp.Packet
	for i := 1; i <= updates; i++ {
		out = append(out, eventPacket(ssrc, ts, *seq, digit, false, uint16(160*i)))
		*seq++
	}
	for range 3 {
		out = append(out, eventPacket(ssrc, ts, *seq, digit, true, uint16(160*updates+160)))
		*seq++
	}
	return out
}

func TestDTMFReceiver(t *testing.T) {
	var seq uint16
	cat := func(ps ...[]*rtp.Packet) []*rtp.Packet {
		var out []*rtp.Packet
		for _, p := range ps {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name    string
		packets []*rtp.Packet
		want    string
	}{
		{"one press, end retransmitted", press(1, 1000, &seq, '5', 5), "5"},
		{"same digit twice", cat(press(1, 1000, &seq, '7', 3), press(1, 3000, &seq, '7', 3)), "77"},
		{"sequence", cat(press(1, 1000, &seq, '0', 3), press(1, 2000, &seq, '2', 3), press(1, 3000, &seq, '1', 3)), "021"},
		{"start lost: end packets only", press(1, 1000, &seq, '#', 0), "#"},
		{"end lost, next press", cat(press(1, 1000, &seq, '1', 4)[:4], press(1, 5000, &seq, '1', 2)), "11"},
		{"late packet of earlier press", cat(press(1, 5000, &seq, '9', 2), []*rtp.Packet{eventPacket(1, 1000, 0, '8', false, 160)}), "9"},
		{"long press continues at ts+65535", []*rtp.Packet{
			eventPacket(1, 1000, 1, '4', false, 160),
			eventPacket(1, 1000, 2, '4', false, 0xFFFF),
			eventPacket(1, 1000+0xFFFF, 3, '4', false, 160),
			eventPacket(1, 1000+0xFFFF, 4, '4', true, 400),
		}, "4"},
		{"new SSRC restarts", cat(press(1, 1000, &seq, '3', 2), press(2, 1000, &seq, '3', 2)), "33"},
		{"flash is not a digit", []*rtp.Packet{eventPacket(1, 1, 1, '1', false, 160)}, "1"},
		{"malformed payload", []*rtp.Packet{{Header: rtp.Header{Timestamp: 9}, Payload: []byte{1}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r DTMFReceiver
			var got []rune
			for _, p := range tt.packets {
				if d, ok := r.Receive(p); ok {
					got = append(got, d)
				}
			}
			if string(got) != tt.want {
				t.Errorf("digits = %q, want %q", string(got), tt.want)
			}
		})
	}
	var r DTMFReceiver
	p := eventPacket(1, 1, 1, '1', false, 160)
	p.Payload[0] = 16 // flash
	if _, ok := r.Receive(p); ok {
		t.Error("flash reported as digit")
	}
}

// packetRecorder is an RTPWriter that keeps copies.
type packetRecorder struct {
	mu   sync.Mutex
	pkts []*rtp.Packet
}

func (w *packetRecorder) WriteRTP(p *rtp.Packet) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pkts = append(w.pkts, p.Clone())
	return nil
}

func TestSendDTMF(t *testing.T) {
	var w packetRecorder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := SendDTMF(ctx, &w, 96, '8', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 40*time.Millisecond || el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	if len(w.pkts) < 5 {
		t.Fatalf("%d packets", len(w.pkts))
	}
	var r DTMFReceiver
	var digits []rune
	ends := 0
	for i, p := range w.pkts {
		if p.PayloadType != 96 || p.Timestamp != w.pkts[0].Timestamp || p.SSRC != w.pkts[0].SSRC {
			t.Errorf("packet %d header %+v", i, p.Header)
		}
		if p.Marker != (i == 0) {
			t.Errorf("packet %d marker %v", i, p.Marker)
		}
		if i > 0 && p.SequenceNumber != w.pkts[i-1].SequenceNumber+1 {
			t.Errorf("packet %d seq not consecutive", i)
		}
		var ev DTMFEvent
		_ = ev.Unmarshal(p.Payload)
		if ev.End {
			ends++
			if ev.Duration != 800 {
				t.Errorf("end duration %d, want 800", ev.Duration)
			}
		}
		if d, ok := r.Receive(p); ok {
			digits = append(digits, d)
		}
	}
	if ends != 3 || string(digits) != "8" {
		t.Errorf("ends %d digits %q", ends, string(digits))
	}
	if err := SendDTMF(ctx, &w, 96, 'x', time.Second); err == nil {
		t.Error("bad digit accepted")
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if err := SendDTMF(cctx, &w, 96, '1', time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func FuzzDTMF(f *testing.F) {
	f.Add([]byte{0x01, 0x0A, 0x00, 0xA0})
	f.Add([]byte{0x0B, 0x8A, 0x03, 0x20, 0xFF})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev DTMFEvent
		if err := ev.Unmarshal(b); err != nil {
			if len(b) >= DTMFEventSize {
				t.Fatalf("error on %d bytes: %v", len(b), err)
			}
			return
		}
		var out [DTMFEventSize]byte
		if _, err := ev.MarshalTo(out[:]); err != nil {
			t.Fatalf("marshal %+v: %v", ev, err)
		}
		var back DTMFEvent
		if err := back.Unmarshal(out[:]); err != nil || back != ev {
			t.Fatalf("round trip %+v -> % x -> %+v (%v)", ev, out, back, err)
		}
		if out[0] != b[0] || out[1]&0xBF != b[1]&0xBF || out[2] != b[2] || out[3] != b[3] {
			t.Fatalf("re-encoding % x changed more than the R bit: % x", b[:4], out)
		}
		// The receiver never panics and reports at most one digit per packet.
		var r DTMFReceiver
		p := &rtp.Packet{Header: rtp.Header{Timestamp: uint32(len(b))}, Payload: b}
		if d, ok := r.Receive(p); ok {
			if _, valid := DigitToEvent(d); !valid {
				t.Fatalf("reported non-digit %q", d)
			}
		}
		_, _ = r.Receive(p)
	})
}

func TestParseDTMFInfo(t *testing.T) {
	for _, tc := range []struct {
		ct, body string
		want     rune
		err      string
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', ""},
		{"application/dtmf-relay", "signal = #\nDuration= 250", '#', ""},
		{"application/dtmf-relay", "Signal=11\r\n", '#', ""},
		{"application/dtmf-relay", "Signal=b", 'B', ""},
		{"application/dtmf-relay", "\r\nSignal=*\r\n", '*', ""},
		{"application/dtmf", "7\r\n", '7', ""},
		{"application/dtmf", "10", '*', ""},
		{"application/dtmf-relay", "Duration=160", 0, "no Signal= line"},
		{"application/dtmf-relay", "Duration=160\nSignal=x", 0, "body line 2: signal \"x\" is not a DTMF digit"},
		{"application/dtmf-relay", "Signal=16", 0, "not a DTMF digit"},
		{"application/dtmf", "", 0, "not a DTMF digit"},
		{"application/dtmf", strings.Repeat("1", 2000), 0, "too long"},
	} {
		got, err := ParseDTMFInfo(tc.ct, []byte(tc.body))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %q: err %v, want %q", tc.ct, tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %q: %q, %v; want %q", tc.ct, tc.body, got, err, tc.want)
		}
	}
}

func FuzzDTMFInfo(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf", []byte("#"))
	f.Add("application/dtmf-relay", []byte("Signal=\xff"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		d, err := ParseDTMFInfo(ct, body)
		if err != nil {
			return
		}
		if _, ok := DigitToEvent(d); !ok {
			t.Fatalf("%q: returned %q, not a digit", body, d)
		}
	})
}
