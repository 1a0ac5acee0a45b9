package media

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func newAllocator(t testing.TB) *PortAllocator {
	t.Helper()
	a, err := NewPortAllocator(loopback, 30000, 39999)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newSession(t testing.TB, a *PortAllocator, cfg SessionConfig) *Session {
	t.Helper()
	s, err := a.NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pair returns two sessions that send to each other.
func pair(t testing.TB, a *PortAllocator) (*Session, *Session) {
	x, y := newSession(t, a, SessionConfig{}), newSession(t, a, SessionConfig{})
	x.SetRemote(y.LocalAddr())
	y.SetRemote(x.LocalAddr())
	return x, y
}

func timeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// udpSocket is a bare UDP socket on loopback: a phone behind NAT, or an
// intruder.
func udpSocket(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func sendRaw(t testing.TB, c *net.UDPConn, to netip.AddrPort, p *rtp.Packet) {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

func readRaw(t testing.TB, c *net.UDPConn, d time.Duration) (*rtp.Packet, bool) {
	t.Helper()
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(buf)
	if err != nil {
		return nil, false
	}
	p := &rtp.Packet{}
	if err := p.Unmarshal(buf[:n]); err != nil {
		t.Fatalf("bad rtp: %v", err)
	}
	return p, true
}

func TestPortAllocator(t *testing.T) {
	if _, err := NewPortAllocator(loopback, 30001, 30001); err == nil {
		t.Error("range without a pair accepted")
	}
	if _, err := NewPortAllocator(loopback, 80, 90); err == nil {
		t.Error("privileged range accepted")
	}
	if _, err := NewPortAllocator(netip.Addr{}, 30000, 30010); err == nil {
		t.Error("invalid ip accepted")
	}
	// Find a free block of three pairs and occupy the RTCP port of the
	// first with a foreign socket: the allocator must skip that pair.
	var a *PortAllocator
	var busy *net.UDPConn
	for base := 36000; base < 39000 && a == nil; base += 16 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: base + 1})
		if err != nil {
			continue
		}
		busy = c
		a, _ = NewPortAllocator(loopback, base, base+5) // pairs base, base+2, base+4
	}
	if a == nil {
		t.Skip("no free port block")
	}
	defer busy.Close()
	var ss []*Session
	for range 2 {
		s, err := a.NewSession(SessionConfig{RTCPInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
		if s.Port()%2 != 0 || s.Port() == a.min {
			t.Errorf("port %d (odd, or the busy pair)", s.Port())
		}
	}
	if _, err := a.NewSession(SessionConfig{}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("third session: %v", err)
	}
	if a.InUse() != 2 {
		t.Errorf("InUse = %d", a.InUse())
	}
	ss[0].Close()
	ss[0].Close() // idempotent
	s, err := a.NewSession(SessionConfig{})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	s.Close()
	ss[1].Close()
	if a.InUse() != 0 {
		t.Errorf("InUse after close = %d", a.InUse())
	}
}

func TestSessionLoopback(t *testing.T) {
	a := newAllocator(t)
	x, y := pair(t, a)
	ctx := timeout(t, 5*time.Second)
	in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 1234, SequenceNumber: 65534, Timestamp: 4294967000}}
	for i := range 5 {
		in.Payload = []byte{byte(i), 1, 2, 3}
		if err := x.WriteRTP(&in); err != nil {
			t.Fatal(err)
		}
		in.SequenceNumber++
		in.Timestamp += 160
	}
	var got rtp.Packet
	var prev rtp.Header
	for i := range 5 {
		if err := y.ReadRTP(ctx, &got); err != nil {
			t.Fatal(err)
		}
		h := got.Header
		if got.Payload[0] != byte(i) || h.PayloadType != 0 || h.SSRC != x.SSRC() || h.SSRC == 1234 {
			t.Fatalf("packet %d: %+v payload % x", i, h, got.Payload)
		}
		if h.Marker != (i == 0) {
			t.Errorf("packet %d marker %v", i, h.Marker)
		}
		if i > 0 && (h.SequenceNumber != prev.SequenceNumber+1 || h.Timestamp != prev.Timestamp+160) {
			t.Errorf("packet %d: seq %d ts %d after %d/%d", i, h.SequenceNumber, h.Timestamp, prev.SequenceNumber, prev.Timestamp)
		}
		prev = h
	}
	xs, ys := x.Stats(), y.Stats()
	if xs.PacketsOut != 5 || xs.BytesOut != 20 || ys.PacketsIn != 5 || ys.BytesIn != 20 || ys.LastIn.IsZero() || xs.LastOut.IsZero() {
		t.Errorf("stats x %+v y %+v", xs, ys)
	}
	if ys.RemoteSSRC != x.SSRC() || ys.Lost != 0 || !ys.Latched || ys.Remote != x.LocalAddr() {
		t.Errorf("reception stats %+v", ys)
	}
	if y.LastActivity().Before(time.Now().Add(-time.Second)) {
		t.Error("LastActivity not updated")
	}
}

func TestSessionTimeline(t *testing.T) {
	a := newAllocator(t)
	x, y := pair(t, a)
	ctx := timeout(t, 5*time.Second)
	audio := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1, Timestamp: 1000}, Payload: make([]byte, 160)}
	event := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SSRC: 2, Timestamp: 777777, Marker: true}, Payload: make([]byte, 4)}
	var order []*rtp.Packet
	write := func(p *rtp.Packet) {
		if err := x.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
		order = append(order, p)
	}
	// Audio, then audio interleaved with a DTMF event, then a writer
	// that went quiet for longer than sourceIdle.
	write(&audio)
	for range 3 {
		time.Sleep(5 * time.Millisecond)
		audio.Timestamp += 160
		write(&audio)
		write(&event)
		event.Marker = false
	}
	time.Sleep(sourceIdle + 50*time.Millisecond)
	audio.Timestamp += 160
	write(&audio)

	var got []rtp.Header
	var p rtp.Packet
	for range order {
		if err := y.ReadRTP(ctx, &p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Header)
	}
	for i := 1; i < len(got); i++ {
		if got[i].SequenceNumber != got[i-1].SequenceNumber+1 {
			t.Errorf("seq gap at %d", i)
		}
	}
	// Audio keeps its 160 steps; the event's packets share a timestamp
	// near the audio's, and its first packet is marked.
	if got[1].Timestamp-got[0].Timestamp != 160 || got[3].Timestamp-got[1].Timestamp != 160 {
		t.Errorf("audio timestamps %d %d %d", got[0].Timestamp, got[1].Timestamp, got[3].Timestamp)
	}
	if got[2].Timestamp != got[4].Timestamp || got[4].Timestamp != got[6].Timestamp || !got[2].Marker || got[4].Marker {
		t.Errorf("event headers %+v %+v", got[2], got[4])
	}
	if d := int32(got[2].Timestamp - got[1].Timestamp); d < -400 || d > 400 {
		t.Errorf("event anchored %d samples from audio", d)
	}
	// After the idle gap the audio is re-anchored at the wall clock:
	// about (5 + 250 ms) * 8 later, marked.
	last := got[len(got)-1]
	if d := int32(last.Timestamp - got[5].Timestamp); !last.Marker || d < 1600 || d > 4000 {
		t.Errorf("re-anchored: marker %v, +%d samples", last.Marker, d)
	}
}

func TestSessionLatching(t *testing.T) {
	a := newAllocator(t)
	s := newSession(t, a, SessionConfig{})
	phone := udpSocket(t)    // the far end, behind NAT: its source is not in the SDP
	intruder := udpSocket(t) // someone else spraying packets
	ctx := timeout(t, 5*time.Second)

	sdpAddr := netip.AddrPortFrom(loopback, 9) // what the SDP claimed
	s.SetRemote(sdpAddr)
	if got := s.Remote(); got != sdpAddr {
		t.Fatalf("remote %v", got)
	}
	sendRaw(t, phone, s.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: 1}, Payload: []byte{1}})
	var p rtp.Packet
	if err := s.ReadRTP(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); !st.Latched || st.Remote != addrOf(phone) {
		t.Fatalf("not latched to the phone: %+v", st)
	}
	// Our packets now go to the phone's real source.
	if err := s.WriteRTP(&rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: []byte{9}}); err != nil {
		t.Fatal(err)
	}
	if got, ok := readRaw(t, phone, 2*time.Second); !ok || got.Payload[0] != 9 {
		t.Fatal("phone did not receive our packet")
	}
	// The intruder's packets and garbage are dropped; the phone's arrive.
	sendRaw(t, intruder, s.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 66}, Payload: []byte{66}})
	_, _ = phone.WriteToUDPAddrPort([]byte{0x00, 1, 2}, s.LocalAddr())
	sendRaw(t, phone, s.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: 2}, Payload: []byte{2}})
	if err := s.ReadRTP(ctx, &p); err != nil || p.Payload[0] != 2 {
		t.Fatalf("read %v % x", err, p.Payload)
	}
	if st := s.Stats(); st.Dropped != 2 || st.PacketsIn != 2 {
		t.Errorf("stats %+v", st)
	}
	// A new SDP (re-INVITE) re-arms latching.
	s.SetRemote(addrOf(intruder))
	sendRaw(t, phone, s.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: 3}, Payload: []byte{3}})
	if err := s.ReadRTP(ctx, &p); err != nil || p.Payload[0] != 3 || s.Remote() != addrOf(phone) {
		t.Fatalf("relatch: %v remote %v", err, s.Remote())
	}
}

func TestSessionReadUnblocks(t *testing.T) {
	a := newAllocator(t)
	s := newSession(t, a, SessionConfig{})
	var p rtp.Packet
	if err := s.WriteRTP(&rtp.Packet{}); !errors.Is(err, ErrNoRemote) {
		t.Errorf("write without remote: %v", err)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.ReadRTP(ctx, &p); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	if err := s.ReadRTP(ctx2, &p); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
	go func() { time.Sleep(50 * time.Millisecond); s.Close() }()
	if err := s.ReadRTP(context.Background(), &p); !errors.Is(err, ErrClosed) {
		t.Errorf("close: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	s.SetRemote(netip.AddrPortFrom(loopback, 9))
	if err := s.WriteRTP(&rtp.Packet{}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}

func TestSessionRTCP(t *testing.T) {
	a := newAllocator(t)
	s := newSession(t, a, SessionConfig{RTCPInterval: 50 * time.Millisecond, CNAME: "test@example"})
	phone, phoneRTCP := udpSocket(t), udpSocket(t)
	ctx := timeout(t, 5*time.Second)
	s.SetRemote(addrOf(phone))
	s.SetRemoteRTCP(addrOf(phoneRTCP))

	// The phone sends 10 packets with one lost; we send 5.
	for i := range 11 {
		if i == 4 {
			continue
		}
		sendRaw(t, phone, s.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 42, SequenceNumber: uint16(100 + i), Timestamp: uint32(160 * i)}, Payload: make([]byte, 160)})
	}
	var p rtp.Packet
	for range 10 {
		if err := s.ReadRTP(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if err := s.WriteRTP(&rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: make([]byte, 160)}); err != nil {
			t.Fatal(err)
		}
	}
	// Latching moved RTCP to the phone's RTP port + 1; point it back.
	s.SetRemoteRTCP(addrOf(phoneRTCP))

	buf := make([]byte, 1500)
	var sr *rtcp.SenderReport
	var sdes *rtcp.SourceDescription
	for sr == nil {
		_ = phoneRTCP.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := phoneRTCP.Read(buf)
		if err != nil {
			t.Fatalf("no RTCP: %v", err)
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, pk := range pkts {
			switch v := pk.(type) {
			case *rtcp.SenderReport:
				if v.PacketCount == 5 {
					sr = v
				}
			case *rtcp.SourceDescription:
				sdes = v
			}
		}
	}
	if sr.SSRC != s.SSRC() || sr.OctetCount != 800 || len(sr.Reports) != 1 {
		t.Fatalf("SR %+v", sr)
	}
	rr := sr.Reports[0]
	if rr.SSRC != 42 || rr.LastSequenceNumber != 110 || rr.TotalLost != 1 {
		t.Errorf("report block %+v", rr)
	}
	if sdes == nil || sdes.Chunks[0].Items[0].Text != "test@example" {
		t.Errorf("SDES %+v", sdes)
	}
	// RTCP from the phone is counted and latches the RTCP remote.
	b, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 42}})
	if _, err := phoneRTCP.WriteToUDPAddrPort(b, netip.AddrPortFrom(loopback, uint16(s.Port()+1))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().RTCPIn == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Stats(); st.RTCPIn != 1 || st.RTCPOut == 0 || st.Lost != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestSessionPairRTCP(t *testing.T) {
	a := newAllocator(t)
	x := newSession(t, a, SessionConfig{RTCPInterval: 30 * time.Millisecond})
	y := newSession(t, a, SessionConfig{RTCPInterval: 30 * time.Millisecond})
	x.SetRemote(y.LocalAddr())
	y.SetRemote(x.LocalAddr())
	deadline := time.Now().Add(3 * time.Second)
	for (x.Stats().RTCPIn == 0 || y.Stats().RTCPIn == 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if x.Stats().RTCPIn == 0 || y.Stats().RTCPIn == 0 {
		t.Errorf("RTCP not exchanged: %+v %+v", x.Stats(), y.Stats())
	}
}

func BenchmarkSessionWriteRead(b *testing.B) {
	a := newAllocator(b)
	x, y := pair(b, a)
	ctx := timeout(b, time.Minute)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}
	var in rtp.Packet
	b.ReportAllocs()
	for b.Loop() {
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		if err := x.WriteRTP(&pkt); err != nil {
			b.Fatal(err)
		}
		if err := y.ReadRTP(ctx, &in); err != nil {
			b.Fatal(err)
		}
	}
}

// A telephone-event whose sender stalls past the idle re-anchoring keeps its
// timestamp and gets no new marker, so the far end sees one key press.
func TestSessionStalledEventKeepsTimestamp(t *testing.T) {
	a := newAllocator(t)
	x, y := pair(t, a)
	ctx := timeout(t, 5*time.Second)
	ev := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SSRC: 77, Timestamp: 8000, Marker: true}, Payload: []byte{1, 10, 0, 160}}
	if err := x.WriteRTP(&ev); err != nil {
		t.Fatal(err)
	}
	time.Sleep(sourceIdle + 50*time.Millisecond)
	ev.Marker, ev.Payload = false, []byte{1, 0x80 | 10, 0, 200} // the end packet of the same press
	if err := x.WriteRTP(&ev); err != nil {
		t.Fatal(err)
	}
	var first, second rtp.Packet
	if err := y.ReadRTP(ctx, &first); err != nil {
		t.Fatal(err)
	}
	firstTS := first.Timestamp
	if err := y.ReadRTP(ctx, &second); err != nil {
		t.Fatal(err)
	}
	if second.Timestamp != firstTS || second.Marker {
		t.Fatalf("continuation re-anchored: ts %d -> %d, marker %v", firstTS, second.Timestamp, second.Marker)
	}
	var r DTMFReceiver
	n := 0
	for _, p := range []*rtp.Packet{{Header: rtp.Header{SSRC: 9, Timestamp: firstTS, Marker: true}, Payload: []byte{1, 10, 0, 160}}, {Header: rtp.Header{SSRC: 9, Timestamp: second.Timestamp}, Payload: []byte{1, 0x80 | 10, 0, 200}}} {
		if _, ok := r.Receive(p); ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("receiver counted %d presses", n)
	}
}
