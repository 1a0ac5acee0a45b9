package call

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard/switchboard/internal/media"
)

// sessionWith returns a session that sent n packets to a phone and
// received n from it, but for every lossEvery-th (0: none).
func sessionWith(t *testing.T, a *media.PortAllocator, n, lossEvery int) *media.Session {
	t.Helper()
	s, err := a.NewSession(media.SessionConfig{RTCPInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	phone, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	s.SetRemote(phone.LocalAddr().(*net.UDPAddr).AddrPort())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}
	var in rtp.Packet
	for i := range n {
		if err := s.WriteRTP(&out); err != nil {
			t.Fatal(err)
		}
		if lossEvery > 0 && i%lossEvery == lossEvery-1 {
			continue
		}
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 2, SequenceNumber: uint16(i), Timestamp: uint32(160 * i)},
			Payload: make([]byte, 160)}).Marshal()
		if _, err := phone.WriteToUDPAddrPort(b, s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if err := s.ReadRTP(ctx, &in); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestRecordQuality: each party that answered gets an entry, the caller
// one first, once, and only when someone answered; the record's MOS is
// the lowest.
func TestRecordQuality(t *testing.T) {
	a, err := media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), 40000, 40999)
	if err != nil {
		t.Fatal(err)
	}
	caller, alice, bob := sessionWith(t, a, 40, 0), sessionWith(t, a, 41, 10), sessionWith(t, a, 40, 0)

	c := &call{sess: caller}
	c.noteCallerQuality()
	if c.rec.Quality != nil || c.rec.MOS != 0 {
		t.Fatalf("nobody answered: %+v", c.rec.Quality)
	}
	c.noteQuality("user:alice", alice) // a transfer: two legs
	c.noteQuality("user:bob", bob)
	c.noteCallerQuality()
	c.noteCallerQuality() // once
	var legs []string
	for _, q := range c.rec.Quality {
		legs = append(legs, q.Leg)
	}
	if len(legs) != 3 || legs[0] != "caller" || legs[1] != "user:alice" || legs[2] != "user:bob" {
		t.Fatalf("legs %v", legs)
	}
	q := c.rec.Quality[1]
	// alice's 41 packets but the 10th, 20th, 30th and 40th: 4 / 41 lost.
	if q.PacketsSent != 41 || q.PacketsReceived != 37 || q.Lost != 4 || q.LossRatio < 0.097 || q.LossRatio > 0.098 || q.RTTKnown {
		t.Errorf("alice: %+v", q)
	}
	if c.rec.MOS != q.MOS || q.MOS >= c.rec.Quality[0].MOS || c.rec.Quality[0].MOS < 4.3 {
		t.Errorf("MOS %v, legs %+v", c.rec.MOS, c.rec.Quality)
	}
	// A party that sent nothing is not rated and leaves the MOS alone.
	silent, err := a.NewSession(media.SessionConfig{RTCPInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	before := c.rec.MOS
	c.noteQuality("+34600000003", silent)
	if last := c.rec.Quality[3]; last.MOS != 0 || last.PacketsReceived != 0 || c.rec.MOS != before {
		t.Errorf("silent party: %+v, MOS %v", last, c.rec.MOS)
	}
}
