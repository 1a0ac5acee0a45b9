package sipserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/testphone"
)

// The impairment of TestQualityImpairedLeg: of the RTP a caller sends
// Switchboard, every 20th packet is dropped (5 %) and every other one is
// held back 20 ms, so that consecutive packets' transit times differ by
// 20 ms (RFC 3550 jitter near 20 ms).
const (
	impairDropEvery = 20
	impairDelay     = 20 * time.Millisecond
	// impairTalk is how long the call talks: the caller's round trip
	// takes a report of ours (at 2.5 s) answered in the phone's second
	// report (at 7.5 s of its session).
	impairTalk = 8500 * time.Millisecond
)

// TestQualityImpairedLeg: a carrier call whose RTP towards Switchboard goes
// through an impairing relay (loss and jitter known) to a user who answers
// directly; the record's quality shows, for the caller, the loss and the
// RFC 3550 jitter of that pattern, a lower MOS than the unimpaired user's,
// and for both the round trip from their RTCP (the test phones' sessions
// send reports every 5 s, the first after 2.5 s).
//
// The relay sits on the SIP path too, as a NAT-rewriting hop would: it
// passes the INVITE transaction between the phone and Switchboard and
// rewrites both SDPs so that each side sends its RTP to the relay (and
// Switchboard, hearing the relay first, latches onto it).
func TestQualityImpairedLeg(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1000)})
	rtp := newImpairer(t, impairDropEvery, impairDelay)
	sipRelay := newSIPRelay(t, netip.MustParseAddrPort(w.h.addr), rtp)
	carrier := newPhone(t, testphone.Config{Name: "carrier-nat", User: "carrier", IP: carrierIP})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// +34910000012: bob, no ringing tone (nothing reaches the caller
	// before the answer).
	c, err := carrier.Dial(ctx, "sip:+34910000012@"+sipRelay.addr().String(),
		testphone.DialOptions{FromUser: "+34911222333", Play: testphone.Tone(425)()})
	if err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatalf("the caller does not hear bob through the relay: %v", err)
	}
	time.Sleep(time.Until(answered.Add(impairTalk)))
	hangup(t, c)
	waitEnded(t, c, 5*time.Second)
	rec := lastRecord(t, w.h, 1)

	if rec.AnsweredBy != "user:bob" || rec.HangupCause != "caller_bye" {
		t.Errorf("answered by %q, ended by %q: want bob, and the caller's BYE through the relay", rec.AnsweredBy, rec.HangupCause)
	}
	if len(rec.Quality) != 2 || rec.Quality[0].Leg != "caller" || rec.Quality[1].Leg != "user:bob" {
		t.Fatalf("quality %+v", rec.Quality)
	}
	caller, bob := rec.Quality[0], rec.Quality[1]
	forwarded, dropped := rtp.forwarded.Load(), rtp.dropped.Load()
	wantJitter := rfc3550Jitter(int(forwarded+dropped), impairDropEvery, impairDelay)
	t.Logf("relay: %d packets from the caller, %d dropped (%.2f %%); RFC 3550 jitter of the pattern %.2f ms",
		forwarded+dropped, dropped, 100*float64(dropped)/float64(forwarded+dropped), ms(wantJitter))
	for _, q := range rec.Quality {
		rtt := "unknown"
		if q.RTTKnown {
			rtt = fmt.Sprintf("%.3f ms", ms(q.RTT))
		}
		t.Logf("%-8s sent %d received %d lost %d (%.2f %%) jitter %.2f ms rtt %s MOS %.3f",
			q.Leg, q.PacketsSent, q.PacketsReceived, q.Lost, 100*q.LossRatio, ms(q.Jitter), rtt, q.MOS)
	}

	// The caller: what Switchboard received through the relay.
	if math.Abs(caller.LossRatio-0.05) > 0.015 || caller.Lost < dropped-2 || caller.Lost > dropped {
		t.Errorf("caller loss %d (%.2f %%), the relay dropped %d", caller.Lost, 100*caller.LossRatio, dropped)
	}
	if d := caller.Jitter - wantJitter; d.Abs() > 3*time.Millisecond {
		t.Errorf("caller jitter %.2f ms, the pattern's %.2f ms", ms(caller.Jitter), ms(wantJitter))
	}
	if caller.PacketsReceived < 300 || caller.PacketsSent < 300 {
		t.Errorf("caller packets: %d received, %d sent", caller.PacketsReceived, caller.PacketsSent)
	}
	// bob: straight to Switchboard on loopback.
	if bob.Lost != 0 || bob.LossRatio != 0 || bob.Jitter > 5*time.Millisecond || bob.PacketsReceived < 300 {
		t.Errorf("bob, unimpaired: %+v", bob)
	}
	// Both send RTCP: a round trip is known, and short on loopback.
	for _, q := range rec.Quality {
		if !q.RTTKnown || q.RTT > 50*time.Millisecond {
			t.Errorf("%s: RTT %v (known %v)", q.Leg, q.RTT, q.RTTKnown)
		}
	}
	// MOS: the E-model of what was measured, lower for the impaired caller.
	for _, q := range rec.Quality {
		want := media.MOS(q.LossRatio, q.RTT/2+2*q.Jitter+20*time.Millisecond, media.PCMU)
		if math.Abs(q.MOS-want) > 0.005 { // the record keeps times to the microsecond
			t.Errorf("%s: MOS %.4f, the E-model of its figures %.4f", q.Leg, q.MOS, want)
		}
	}
	if caller.MOS >= bob.MOS || bob.MOS < 4.3 || caller.MOS < 3.6 || caller.MOS > 4.1 {
		t.Errorf("MOS: caller %.3f (5 %% loss, 20 ms jitter: about 3.86), bob %.3f (about 4.4)", caller.MOS, bob.MOS)
	}
	if rec.MOS != caller.MOS {
		t.Errorf("the call's MOS %.3f is not its lowest leg's %.3f", rec.MOS, caller.MOS)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rfc3550Jitter is the interarrival jitter estimate (RFC 3550 A.8) of n
// packets sent every 20 ms, the dropEvery-th of each run dropped and the
// odd ones delayed by delay, received in order.
func rfc3550Jitter(n, dropEvery int, delay time.Duration) time.Duration {
	var j, prev float64
	first := true
	for i := range n {
		if i%dropEvery == dropEvery-1 {
			continue
		}
		transit := 0.0
		if i%2 == 1 {
			transit = float64(delay)
		}
		if !first {
			j += (math.Abs(transit-prev) - j) / 16
		}
		prev, first = transit, false
	}
	return time.Duration(j)
}

// impairer relays RTP and RTCP between a phone and Switchboard on two port
// pairs, one that the phone sends to and one that Switchboard does. RTP
// from the phone is impaired (see the constants); the rest passes as is.
// The sipRelay tells it where each side listens.
type impairer struct {
	t                 *testing.T
	dropEvery         int
	delay             time.Duration
	toPhone, toSwitch [2]*net.UDPConn // RTP, RTCP: the sockets facing each side

	mu            sync.Mutex
	phone, server netip.AddrPort // each side's RTP address (RTCP: +1)

	forwarded, dropped atomic.Int64
	queue              chan heldPacket
	wg                 sync.WaitGroup
}

type heldPacket struct {
	b  []byte
	at time.Time
}

func newImpairer(t *testing.T, dropEvery int, delay time.Duration) *impairer {
	r := &impairer{t: t, dropEvery: dropEvery, delay: delay, queue: make(chan heldPacket, 1024)}
	r.toPhone = udpPair(t, netip.MustParseAddr("127.0.0.1"))
	r.toSwitch = udpPair(t, carrierIP)
	r.run(func() { defer close(r.queue); r.impair() })
	r.run(func() { r.release() })
	r.run(func() { r.pass(r.toPhone[1], r.toSwitch[1], func() netip.AddrPort { return plus1(r.sides().server) }) })
	r.run(func() { r.pass(r.toSwitch[0], r.toPhone[0], func() netip.AddrPort { return r.sides().phone }) })
	r.run(func() { r.pass(r.toSwitch[1], r.toPhone[1], func() netip.AddrPort { return plus1(r.sides().phone) }) })
	t.Cleanup(func() {
		for _, c := range append(r.toPhone[:], r.toSwitch[:]...) {
			c.Close()
		}
		r.wg.Wait()
	})
	return r
}

func (r *impairer) run(f func()) {
	r.wg.Add(1)
	go func() { defer r.wg.Done(); f() }()
}

type sides struct{ phone, server netip.AddrPort }

func (r *impairer) sides() sides {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sides{r.phone, r.server}
}

func (r *impairer) setPhone(a netip.AddrPort) {
	r.mu.Lock()
	r.phone = a
	r.mu.Unlock()
}

func (r *impairer) setServer(a netip.AddrPort) {
	r.mu.Lock()
	r.server = a
	r.mu.Unlock()
}

func plus1(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), a.Port()+1) }

// impair reads the phone's RTP and queues what it does not drop, the odd
// packets held back by delay; release sends the queue in order, so a held
// packet is never overtaken by the next one.
func (r *impairer) impair() {
	buf := make([]byte, 1500)
	for i := 0; ; i++ {
		n, _, err := r.toPhone[0].ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if i%r.dropEvery == r.dropEvery-1 {
			r.dropped.Add(1)
			continue
		}
		at := time.Now()
		if i%2 == 1 {
			at = at.Add(r.delay)
		}
		r.forwarded.Add(1)
		select {
		case r.queue <- heldPacket{b: append([]byte(nil), buf[:n]...), at: at}:
		default:
			r.t.Error("impairer: queue full")
		}
	}
}

func (r *impairer) release() {
	for p := range r.queue {
		time.Sleep(time.Until(p.at))
		if dst := r.sides().server; dst.IsValid() {
			_, _ = r.toSwitch[0].WriteToUDPAddrPort(p.b, dst)
		}
	}
}

// pass copies datagrams from one socket out of another, to dst().
func (r *impairer) pass(from, out *net.UDPConn, dst func() netip.AddrPort) {
	buf := make([]byte, 1500)
	for {
		n, _, err := from.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if d := dst(); d.IsValid() {
			_, _ = out.WriteToUDPAddrPort(buf[:n], d)
		}
	}
}

// udpPair binds an even port and the next one on ip.
func udpPair(t *testing.T, ip netip.Addr) [2]*net.UDPConn {
	t.Helper()
	start := 41000 + 2*int(time.Now().UnixNano()%4000)
	for p := start; p < start+2000; p += 2 {
		a, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p))))
		if err != nil {
			continue
		}
		b, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p+1))))
		if err != nil {
			a.Close()
			continue
		}
		return [2]*net.UDPConn{a, b}
	}
	t.Fatal("no free UDP port pair")
	return [2]*net.UDPConn{}
}

// sipRelay passes the phone's requests to Switchboard and the responses
// back over UDP, from the carrier's address (Switchboard takes it for the
// trunk), rewriting the top Via so that responses come back through it,
// Switchboard's Contact so that the phone's ACK and BYE do too, and each
// SDP's audio port so that RTP goes through the impairer. Switchboard's
// own requests go to the phone's Contact, directly.
type sipRelay struct {
	t        *testing.T
	down, up *net.UDPConn // facing the phone, and Switchboard
	server   netip.AddrPort
	rtp      *impairer

	mu    sync.Mutex
	phone netip.AddrPort // the phone's SIP address
	wg    sync.WaitGroup
}

func newSIPRelay(t *testing.T, server netip.AddrPort, rtp *impairer) *sipRelay {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(carrierIP, 0)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	r := &sipRelay{t: t, down: listen(), up: listen(), server: server, rtp: rtp}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.fromPhone() }()
	go func() { defer r.wg.Done(); r.fromServer() }()
	t.Cleanup(func() {
		r.down.Close()
		r.up.Close()
		r.wg.Wait()
	})
	return r
}

func (r *sipRelay) addr() netip.AddrPort { return r.down.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *sipRelay) upAddr() netip.AddrPort { return r.up.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *sipRelay) fromPhone() {
	buf := make([]byte, 65535)
	for {
		n, from, err := r.down.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.phone = from
		r.mu.Unlock()
		msg, sdpAudio, err := rewriteSIP(buf[:n], from.String(), r.upAddr().String(), "", "", r.rtp.toSwitch[0])
		if err != nil {
			r.t.Errorf("sip relay: from the phone: %v", err)
			continue
		}
		if sdpAudio.IsValid() {
			r.rtp.setPhone(sdpAudio)
		}
		_, _ = r.up.WriteToUDPAddrPort(msg, r.server)
	}
}

func (r *sipRelay) fromServer() {
	buf := make([]byte, 65535)
	for {
		n, _, err := r.up.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		phone := r.phone
		r.mu.Unlock()
		msg, sdpAudio, err := rewriteSIP(buf[:n], r.upAddr().String(), phone.String(), r.server.String(), r.addr().String(), r.rtp.toPhone[0])
		if err != nil {
			r.t.Errorf("sip relay: from Switchboard: %v", err)
			continue
		}
		if sdpAudio.IsValid() {
			r.rtp.setServer(sdpAudio)
		}
		_, _ = r.down.WriteToUDPAddrPort(msg, phone)
	}
}

var (
	sdpConnection = regexp.MustCompile(`(?m)^c=IN IP4 ([0-9.]+)\r?$`)
	sdpAudioPort  = regexp.MustCompile(`(?m)^m=audio ([0-9]+) `)
	contentLength = regexp.MustCompile(`(?im)^(content-length|l)[ \t]*:[ \t]*[0-9]+`)
)

// rewriteSIP replaces viaFrom by viaTo in the top Via of a SIP message,
// contactFrom by contactTo in its Contact (when contactFrom is set) and,
// when it carries SDP, the audio's address by rtp's (its IP must be the
// SDP's already, which the relay's sockets are chosen for) and fixes
// Content-Length; it returns the message and the SDP's audio address as it
// was (invalid without SDP).
func rewriteSIP(b []byte, viaFrom, viaTo, contactFrom, contactTo string, rtp *net.UDPConn) ([]byte, netip.AddrPort, error) {
	head, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok {
		return nil, netip.AddrPort{}, errors.New("no end of headers")
	}
	lines := strings.Split(head, "\r\n")
	via := false
	for i, l := range lines {
		name, _, _ := strings.Cut(l, ":")
		switch name = strings.ToLower(strings.TrimSpace(name)); {
		case (name == "via" || name == "v") && !via:
			if !strings.Contains(l, viaFrom) {
				return nil, netip.AddrPort{}, fmt.Errorf("top Via %q lacks %s", l, viaFrom)
			}
			lines[i], via = strings.Replace(l, viaFrom, viaTo, 1), true
		case (name == "contact" || name == "m") && contactFrom != "":
			lines[i] = strings.Replace(l, contactFrom, contactTo, 1)
		}
	}
	head = strings.Join(lines, "\r\n")
	var audio netip.AddrPort
	if m := sdpAudioPort.FindStringSubmatchIndex(body); m != nil {
		cm := sdpConnection.FindStringSubmatch(body)
		if cm == nil {
			return nil, audio, errors.New("SDP without c=IN IP4")
		}
		ip, err := netip.ParseAddr(cm[1])
		if err != nil {
			return nil, audio, err
		}
		port, _ := strconv.Atoi(body[m[2]:m[3]])
		audio = netip.AddrPortFrom(ip, uint16(port))
		mine := rtp.LocalAddr().(*net.UDPAddr).AddrPort()
		if mine.Addr() != ip {
			return nil, audio, fmt.Errorf("the SDP's address %s is not the relay's %s", ip, mine.Addr())
		}
		body = body[:m[2]] + strconv.Itoa(int(mine.Port())) + body[m[3]:]
		head = contentLength.ReplaceAllString(head, "Content-Length: "+strconv.Itoa(len(body)))
	}
	return []byte(head + "\r\n\r\n" + body), audio, nil
}
