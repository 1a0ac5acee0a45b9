package media

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// parseWithPion checks b with an independent RTCP implementation and
// returns its packets.
func parseWithPion(t testing.TB, b []byte) []rtcp.Packet {
	t.Helper()
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatalf("pion/rtcp rejects our report: %v\n% x", err, b)
	}
	return pkts
}

// checkAgainstPion compares what pion reads in our encoding of r with r.
func checkAgainstPion(t testing.TB, r rtcpReport) {
	t.Helper()
	pkts := parseWithPion(t, r.appendTo(nil))
	want := 2
	if r.bye {
		want = 3
	}
	if len(pkts) != want {
		t.Fatalf("%d packets, want %d: %#v", len(pkts), want, pkts)
	}
	var blocks []rtcp.ReceptionReport
	switch p := pkts[0].(type) {
	case *rtcp.SenderReport:
		if !r.sender || p.SSRC != r.ssrc || p.NTPTime != r.ntp || p.RTPTime != r.rtpTime || p.PacketCount != r.packets || p.OctetCount != r.octets {
			t.Errorf("SR %+v from %+v", p, r)
		}
		blocks = p.Reports
	case *rtcp.ReceiverReport:
		if r.sender || p.SSRC != r.ssrc {
			t.Errorf("RR %+v from %+v", p, r)
		}
		blocks = p.Reports
	default:
		t.Fatalf("first packet %T", p)
	}
	if r.block {
		want := rtcp.ReceptionReport{SSRC: r.source, FractionLost: r.fraction, TotalLost: r.lost & 0xFFFFFF,
			LastSequenceNumber: r.extSeq, Jitter: r.jitter, LastSenderReport: r.lsr, Delay: r.dlsr}
		if len(blocks) != 1 || blocks[0] != want {
			t.Errorf("report blocks %+v, want %+v", blocks, want)
		}
	} else if len(blocks) != 0 {
		t.Errorf("report blocks %+v, want none", blocks)
	}
	sdes, ok := pkts[1].(*rtcp.SourceDescription)
	cname := r.cname[:min(len(r.cname), 255)]
	if !ok || len(sdes.Chunks) != 1 || sdes.Chunks[0].Source != r.ssrc || len(sdes.Chunks[0].Items) != 1 ||
		sdes.Chunks[0].Items[0].Type != rtcp.SDESCNAME || sdes.Chunks[0].Items[0].Text != cname {
		t.Errorf("SDES %#v, want CNAME %q", pkts[1], cname)
	}
	if r.bye {
		if bye, ok := pkts[2].(*rtcp.Goodbye); !ok || len(bye.Sources) != 1 || bye.Sources[0] != r.ssrc {
			t.Errorf("BYE %#v", pkts[2])
		}
	}
	ntp, hasSR, err := readRTCP(r.appendTo(nil))
	if err != nil || hasSR != r.sender || (r.sender && ntp != r.ntp) {
		t.Errorf("readRTCP of our own report: %x %v %v", ntp, hasSR, err)
	}
}

// TestRTCPWire: our compound reports are what pion/rtcp reads them as, for
// SR and RR, with and without a report block, BYE and CNAMEs of every
// padding length (and one over the 255-byte limit, cut); readRTCP finds
// the SR's NTP time in pion's packets and refuses what is not RTCP.
func TestRTCPWire(t *testing.T) {
	for _, cname := range []string{"", "a", "ab", "abc", "abcd", "switchboard@127.0.0.1", strings.Repeat("x", 300)} {
		for _, sender := range []bool{false, true} {
			for _, block := range []bool{false, true} {
				checkAgainstPion(t, rtcpReport{ssrc: 0xDEADBEEF, cname: cname, sender: sender, ntp: 0x0123456789ABCDEF,
					rtpTime: 160, packets: 5, octets: 800, block: block, source: 42, fraction: 64, lost: 0x7FFFFF,
					extSeq: 70000, jitter: 12, lsr: 0x89AB, dlsr: 65536, bye: sender && block})
			}
		}
	}

	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1},
		&rtcp.SenderReport{SSRC: 42, NTPTime: 0xAABBCCDD11223344, Reports: []rtcp.ReceptionReport{{SSRC: 7}}}})
	if ntp, ok, err := readRTCP(sr); err != nil || !ok || ntp != 0xAABBCCDD11223344 {
		t.Errorf("readRTCP(pion's RR+SR) = %x %v %v", ntp, ok, err)
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short":         {0x80, 200, 0},
		"version 1":     {0x40, 201, 0, 1, 0, 0, 0, 1},
		"length beyond": {0x80, 201, 0, 9, 0, 0, 0, 1},
		"trailing byte": {0x80, 201, 0, 1, 0, 0, 0, 1, 0},
		"short SR":      {0x80, 200, 0, 1, 0, 0, 0, 1},
	} {
		if _, _, err := readRTCP(b); err == nil {
			t.Errorf("readRTCP(%s) accepted % x", name, b)
		}
	}
}

// TestRTCPNoAllocs: a session's RTCP, sent and received every few seconds
// for the whole call, leaves no garbage.
func TestRTCPNoAllocs(t *testing.T) {
	a := newAllocator(t)
	s := newSession(t, a, SessionConfig{RTCPInterval: time.Hour})
	phone, phoneRTCP := udpSocket(t), udpSocket(t)
	s.SetRemote(addrOf(phone))
	sendRaw(t, phone, s.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 42, SequenceNumber: 100}, Payload: make([]byte, 160)})
	var p rtp.Packet
	if err := s.ReadRTP(timeout(t, 2*time.Second), &p); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRTP(&rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: make([]byte, 160)}); err != nil {
		t.Fatal(err)
	}
	s.SetRemoteRTCP(addrOf(phoneRTCP))
	report := (&rtcpReport{ssrc: 42, cname: "phone", sender: true, block: true}).appendTo(nil)
	from := netip.AddrPort(addrOf(phoneRTCP))
	if n := testing.AllocsPerRun(100, func() { s.sendRTCP(false) }); n != 0 {
		t.Errorf("sending a report: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.handleRTCP(report, from, time.Now()) }); n != 0 {
		t.Errorf("reading a report: %v allocations", n)
	}
	// One about our stream, answering an SR of ours: a round trip.
	now := time.Now()
	aboutUs := (&rtcpReport{ssrc: 42, cname: "phone", block: true, source: s.SSRC(),
		lsr: uint32(ntpTime(now.Add(-20*time.Millisecond)) >> 16), dlsr: 655}).appendTo(nil)
	if n := testing.AllocsPerRun(100, func() { s.handleRTCP(aboutUs, from, now) }); n != 0 {
		t.Errorf("measuring a round trip: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.PollRTCP() }); n != 0 {
		t.Errorf("polling: %v allocations", n)
	}
	if st := s.Stats(); !st.RTTKnown || st.RTT < 5*time.Millisecond || st.RTT > 15*time.Millisecond {
		t.Errorf("RTT %v known %v, want 10 ms", st.RTT, st.RTTKnown)
	}
	if st := s.Stats(); st.RTCPIn == 0 || st.RTCPOut == 0 {
		t.Errorf("stats %+v", st)
	}
}

func FuzzRTCP(f *testing.F) {
	f.Add([]byte{0x80, 201, 0, 1, 0, 0, 0, 1}, uint32(1), uint64(2), "cname", true, true, false)
	f.Add([]byte{}, uint32(0), uint64(0), "", false, false, true)
	f.Fuzz(func(t *testing.T, raw []byte, ssrc uint32, ntp uint64, cname string, sender, block, bye bool) {
		_, _, _ = readRTCP(raw) // any bytes: an answer, never a panic
		checkAgainstPion(t, rtcpReport{ssrc: ssrc, cname: cname, sender: sender, ntp: ntp, block: block,
			source: ssrc ^ 1, lost: uint32(ntp), extSeq: uint32(ntp >> 32), bye: bye})
	})
}
