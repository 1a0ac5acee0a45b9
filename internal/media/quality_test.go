package media

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TestMOS checks the simplified E-model against values worked out by hand
// from its formulas (G.711, Ie 0, Bpl 25.1, BurstR 1):
//
//	1 % loss: Ie,eff = 95 * 1 / (1 + 25.1) = 3.640, R = 89.560
//	2 %:      95 * 2 / 27.1 = 7.011, R = 86.189
//	5 %:      95 * 5 / 30.1 = 15.781, R = 77.419
//	10 %:     95 * 10 / 35.1 = 27.066, R = 66.134
//	200 ms:   Id = 0.024 * 200 + 0.11 * 22.7 = 7.297, R = 85.903
//	400 ms:   Id = 9.6 + 0.11 * 222.7 = 34.097, R = 59.103
//
// and MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6.
func TestMOS(t *testing.T) {
	for _, c := range []struct {
		loss  float64
		delay time.Duration
		r     float64
	}{
		{0, 0, 93.2},
		{0.01, 0, 89.560},
		{0.02, 0, 86.189},
		{0.05, 0, 77.419},
		{0.10, 0, 66.134},
		{0, 200 * time.Millisecond, 85.903},
		{0, 400 * time.Millisecond, 59.103},
		{0.05, 59 * time.Millisecond, 77.419 - 0.024*59},
	} {
		want := 1 + 0.035*c.r + c.r*(c.r-60)*(100-c.r)*7e-6
		got := MOS(c.loss, c.delay, PCMU)
		if math.Abs(got-want) > 0.002 {
			t.Errorf("MOS(%v, %v) = %.4f, want %.4f (R %.3f)", c.loss, c.delay, got, want, c.r)
		}
		if a := MOS(c.loss, c.delay, PCMA); a != got {
			t.Errorf("PCMA rates %.4f, PCMU %.4f", a, got)
		}
	}
	// The values themselves, as G.107's tables and the literature give them.
	for _, c := range []struct {
		loss  float64
		delay time.Duration
		want  float64
	}{
		{0, 0, 4.41},
		{0.01, 0, 4.33},
		{0.02, 0, 4.23},
		{0.05, 0, 3.92},
		{0, 200 * time.Millisecond, 4.23},
		{0, 400 * time.Millisecond, 3.05},
	} {
		if got := MOS(c.loss, c.delay, PCMU); math.Abs(got-c.want) > 0.006 {
			t.Errorf("MOS(%v, %v) = %.3f, want %.2f", c.loss, c.delay, got, c.want)
		}
	}
	// The edges: clamped to 1-4.5, whatever the input.
	for _, c := range []struct {
		loss  float64
		delay time.Duration
		want  float64
	}{
		{1, 0, 1.177}, // R = 93.2 - 95 * 100/125.1 = 17.26
		{2, 0, 1.177}, // a ratio over 1 is 1
		{-1, -time.Second, 4.409},
		{math.NaN(), 0, 4.409},
		{0, 2 * time.Second, 1},
		{1, 2 * time.Second, 1},
	} {
		if got := MOS(c.loss, c.delay, PCMU); math.Abs(got-c.want) > 0.001 {
			t.Errorf("MOS(%v, %v) = %.4f, want %.3f", c.loss, c.delay, got, c.want)
		}
	}
}

// TestMOSMonotonic: more loss or more delay never rates better.
func TestMOSMonotonic(t *testing.T) {
	for d := time.Duration(0); d <= time.Second; d += 10 * time.Millisecond {
		prev := math.Inf(1)
		for l := 0.0; l <= 1; l += 0.005 {
			m := MOS(l, d, PCMU)
			if m > prev+1e-12 || m < 1 || m > 4.5 {
				t.Fatalf("MOS(%v, %v) = %v after %v", l, d, m, prev)
			}
			prev = m
		}
	}
	for l := 0.0; l <= 1; l += 0.01 {
		prev := math.Inf(1)
		for d := time.Duration(0); d <= time.Second; d += time.Millisecond {
			m := MOS(l, d, PCMU)
			if m > prev+1e-12 {
				t.Fatalf("MOS(%v, %v) = %v after %v", l, d, m, prev)
			}
			prev = m
		}
	}
}

func TestQualityOf(t *testing.T) {
	// 950 received, 50 lost: 5 %; 10 ms jitter, 60 ms RTT: 30 + 20 + 20 ms.
	q := QualityOf(SessionStats{PacketsIn: 950, PacketsOut: 1000, Lost: 50, Jitter: 10 * time.Millisecond,
		RTT: 90 * time.Millisecond, RTTMean: 60 * time.Millisecond, RTTKnown: true})
	want := Quality{PacketsSent: 1000, PacketsReceived: 950, Lost: 50, LossRatio: 0.05, Jitter: 10 * time.Millisecond,
		RTT: 60 * time.Millisecond, RTTKnown: true, MOS: MOS(0.05, 70*time.Millisecond, PCMU)}
	if math.Abs(q.LossRatio-want.LossRatio) > 1e-9 {
		t.Errorf("loss ratio %v", q.LossRatio)
	}
	q.LossRatio = want.LossRatio
	if q != want {
		t.Errorf("QualityOf = %+v\nwant %+v", q, want)
	}
	// No RTT: no network delay in the estimate.
	q = QualityOf(SessionStats{PacketsIn: 100, PacketsOut: 100})
	if q.RTTKnown || q.RTT != 0 || q.LossRatio != 0 || math.Abs(q.MOS-MOS(0, 20*time.Millisecond, PCMU)) > 1e-9 {
		t.Errorf("unimpaired: %+v", q)
	}
	// Duplicates make Lost negative: no loss, not a gain.
	if q := QualityOf(SessionStats{PacketsIn: 100, Lost: -3}); q.LossRatio != 0 || q.Lost != -3 {
		t.Errorf("duplicates: %+v", q)
	}
	// Nothing received: nothing to rate.
	if q := QualityOf(SessionStats{PacketsOut: 100, RTT: time.Second}); q.MOS != 0 || q.LossRatio != 0 || q.RTTKnown {
		t.Errorf("nothing received: %+v", q)
	}
}

// ntpCompact is t as the middle 32 bits of its NTP time (LSR, A).
func ntpCompact(t time.Time) uint32 { return uint32(ntpTime(t) >> 16) }

// TestSessionRTT: a reception report about our stream gives RTT = A - LSR -
// DLSR (RFC 3550 §6.4.1); reports about others, without an LSR, or with
// one that is not an SR of ours do not; the mean is of every measure.
func TestSessionRTT(t *testing.T) {
	a := newAllocator(t)
	s := newSession(t, a, SessionConfig{RTCPInterval: time.Hour})
	from := netip.AddrPortFrom(loopback, 9)
	now := time.Now()
	report := func(ssrc uint32, sentAgo, held time.Duration, sr bool) []byte {
		block := rtcp.ReceptionReport{SSRC: ssrc, LastSenderReport: ntpCompact(now.Add(-sentAgo)),
			Delay: uint32(held.Seconds() * 65536)}
		if sentAgo == 0 {
			block.LastSenderReport = 0
		}
		var p rtcp.Packet = &rtcp.ReceiverReport{SSRC: 42, Reports: []rtcp.ReceptionReport{{SSRC: 7}, block}}
		if sr {
			p = &rtcp.SenderReport{SSRC: 42, NTPTime: 1 << 40, Reports: []rtcp.ReceptionReport{block}}
		}
		b, err := rtcp.Marshal([]rtcp.Packet{p, &rtcp.SourceDescription{}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if st := s.Stats(); st.RTTKnown || st.RTT != 0 {
		t.Fatalf("RTT before any report: %+v", st)
	}
	for _, b := range [][]byte{
		report(s.SSRC()+1, 300*time.Millisecond, 100*time.Millisecond, false), // about someone else
		report(s.SSRC(), 0, 0, false),                                         // no SR of ours received yet
		report(s.SSRC(), time.Hour, 0, false),                                 // before the session began
		report(s.SSRC(), -time.Second, 0, false),                              // in the future
	} {
		s.handleRTCP(b, from, now)
	}
	if st := s.Stats(); st.RTTKnown || st.RTCPIn != 4 {
		t.Fatalf("RTT from reports that do not measure one: %+v", st)
	}
	near := func(got, want time.Duration) bool { return (got - want).Abs() < time.Millisecond }
	s.handleRTCP(report(s.SSRC(), 300*time.Millisecond, 100*time.Millisecond, false), from, now)
	if st := s.Stats(); !st.RTTKnown || !near(st.RTT, 200*time.Millisecond) || !near(st.RTTMean, 200*time.Millisecond) {
		t.Fatalf("after an RR: RTT %v mean %v known %v", st.RTT, st.RTTMean, st.RTTKnown)
	}
	s.handleRTCP(report(s.SSRC(), 150*time.Millisecond, 50*time.Millisecond, true), from, now) // in an SR
	if st := s.Stats(); !near(st.RTT, 100*time.Millisecond) || !near(st.RTTMean, 150*time.Millisecond) {
		t.Fatalf("after an SR: RTT %v mean %v", st.RTT, st.RTTMean)
	}
	// A DLSR longer than the round trip (rounding, on loopback) is 0.
	s.handleRTCP(report(s.SSRC(), 10*time.Millisecond, 11*time.Millisecond, false), from, now)
	if st := s.Stats(); st.RTT != 0 || !near(st.RTTMean, 100*time.Millisecond) {
		t.Fatalf("after a short path: RTT %v mean %v", st.RTT, st.RTTMean)
	}
}

// TestSessionPairRTT: two sessions that send RTP and RTCP to each other
// each measure the round trip, from the second report on; PollRTCP takes
// what arrived since the last interval.
func TestSessionPairRTT(t *testing.T) {
	a := newAllocator(t)
	x := newSession(t, a, SessionConfig{RTCPInterval: 40 * time.Millisecond})
	y := newSession(t, a, SessionConfig{RTCPInterval: 40 * time.Millisecond})
	x.SetRemote(y.LocalAddr())
	y.SetRemote(x.LocalAddr())
	ctx := timeout(t, 5*time.Second)
	deadline := time.Now().Add(3 * time.Second)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}
	var in rtp.Packet
	for (!x.Stats().RTTKnown || !y.Stats().RTTKnown) && time.Now().Before(deadline) {
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		for _, s := range []*Session{x, y} {
			if err := s.WriteRTP(&pkt); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []*Session{x, y} {
			if err := s.ReadRTP(ctx, &in); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond)
		x.PollRTCP()
	}
	for name, s := range map[string]*Session{"x": x, "y": y} {
		st := s.Stats()
		if !st.RTTKnown || st.RTT > 50*time.Millisecond || st.RTTMean > 50*time.Millisecond {
			t.Errorf("%s: RTT %v mean %v known %v on loopback", name, st.RTT, st.RTTMean, st.RTTKnown)
		}
	}
	x.Close()
	x.PollRTCP() // after Close: nothing to do, no panic
}

// TestSessionFirstReportEarly: the first report goes after half an
// interval (RFC 3550 §6.3.1), the next ones a whole interval apart.
func TestSessionFirstReportEarly(t *testing.T) {
	a := newAllocator(t)
	s := newSession(t, a, SessionConfig{RTCPInterval: 400 * time.Millisecond})
	phone, phoneRTCP := udpSocket(t), udpSocket(t)
	s.SetRemote(addrOf(phone))
	s.SetRemoteRTCP(addrOf(phoneRTCP))
	start := time.Now()
	buf := make([]byte, 1500)
	var at []time.Duration
	for len(at) < 2 {
		_ = phoneRTCP.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := phoneRTCP.Read(buf); err != nil {
			t.Fatalf("no report: %v", err)
		}
		at = append(at, time.Since(start))
	}
	if at[0] < 150*time.Millisecond || at[0] > 350*time.Millisecond || at[1]-at[0] < 350*time.Millisecond {
		t.Errorf("reports at %v, want about 200 ms and 600 ms", at)
	}
}
