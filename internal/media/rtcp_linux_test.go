package media

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// RTCP is read in batches, but DLSR counts from the sender report's arrival
// (the kernel's timestamp), not from when the batch was read.
func TestSessionRTCPDelaySinceLastSR(t *testing.T) {
	a := newAllocator(t)
	s := newSession(t, a, SessionConfig{RTCPInterval: 300 * time.Millisecond})
	phone, phoneRTCP := udpSocket(t), udpSocket(t)
	ctx := timeout(t, 5*time.Second)
	s.SetRemote(addrOf(phone))
	sendRaw(t, phone, s.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 42, SequenceNumber: 7}, Payload: make([]byte, 160)})
	var p rtp.Packet
	if err := s.ReadRTP(ctx, &p); err != nil {
		t.Fatal(err)
	}
	s.SetRemoteRTCP(addrOf(phoneRTCP))

	// The kernel turns receive timestamps on for the whole system with a
	// deferred static key when the first socket asks for them: a datagram
	// that arrives before that is stamped when it is read. Give it time.
	time.Sleep(100 * time.Millisecond)

	const ntp = uint64(0x0123456789abcdef)
	b, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 42, NTPTime: ntp}})
	sent := time.Now()
	if _, err := phoneRTCP.WriteToUDPAddrPort(b, netip.AddrPortFrom(loopback, uint16(s.Port()+1))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for {
		_ = phoneRTCP.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := phoneRTCP.Read(buf)
		if err != nil {
			t.Fatalf("no report with LSR: %v", err)
		}
		elapsed := time.Since(sent)
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		rr, ok := pkts[0].(*rtcp.ReceiverReport)
		if !ok || len(rr.Reports) == 0 || rr.Reports[0].LastSenderReport == 0 {
			continue
		}
		if got := rr.Reports[0].LastSenderReport; got != uint32(ntp>>16&0xffffffff) {
			t.Fatalf("LSR %#x, want %#x", got, uint32(ntp>>16&0xffffffff))
		}
		delay := time.Duration(rr.Reports[0].Delay) * time.Second / 65536
		if d := elapsed - delay; d < -5*time.Millisecond || d > 50*time.Millisecond {
			t.Errorf("DLSR %v, but the SR was sent %v before the report arrived", delay, elapsed)
		}
		return
	}
}
