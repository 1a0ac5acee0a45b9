package sipserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/testphone"
)

// t38SDP is a T.38 offer or answer with its UDPTL stream at addr.
func t38SDP(addr netip.AddrPort) []byte {
	return fmt.Appendf(nil, "v=0\r\no=fax 1 2 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\n"+
		"m=image %[2]d udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n"+
		"a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxDatagram:400\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n",
		addr.Addr(), addr.Port())
}

// imageAddr is the UDPTL address of the m=image stream of an SDP.
func imageAddr(t *testing.T, sdp []byte) netip.AddrPort {
	t.Helper()
	var ip string
	var port int
	for _, line := range strings.Split(string(sdp), "\r\n") {
		if v, ok := strings.CutPrefix(line, "c=IN IP4 "); ok {
			ip = v
		}
		if v, ok := strings.CutPrefix(line, "m=image "); ok {
			fmt.Sscanf(v, "%d", &port)
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || port == 0 {
		t.Fatalf("no image stream in\n%s", sdp)
	}
	return netip.AddrPortFrom(a, uint16(port))
}

func udptlSocket(t *testing.T, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg from one UDPTL socket to addr until the other socket
// receives it (UDP may lose the first datagrams while the relay latches).
func exchange(t *testing.T, from *net.UDPConn, addr netip.AddrPort, into *net.UDPConn, msg string) {
	t.Helper()
	buf := make([]byte, 1500)
	for range 10 {
		if _, err := from.WriteToUDPAddrPort([]byte(msg), addr); err != nil {
			t.Fatal(err)
		}
		_ = into.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := into.ReadFromUDPAddrPort(buf)
		if err == nil {
			if string(buf[:n]) != msg {
				t.Fatalf("received %q, want %q", buf[:n], msg)
			}
			return
		}
	}
	t.Fatalf("%q never arrived", msg)
}

// TestFax: a call to a fax passes G.711 through untouched — the fax gets
// the caller's codec first, so nothing is transcoded, no ringback is
// played, DTMF is passed on — and the fax machine's T.38 re-INVITE is
// relayed end to end, with the UDPTL datagrams passed through both ways.
func TestFax(t *testing.T) {
	w := newWorld(t)
	callerT38 := udptlSocket(t, carrierIP)
	faxT38 := udptlSocket(t, pstnIP)
	saw := make(chan []byte, 1)
	w.carrier.SetBehavior(testphone.Behavior{OnReoffer: func(offer []byte) (int, []byte) {
		saw <- offer
		return 200, t38SDP(callerT38.LocalAddr().(*net.UDPAddr).AddrPort())
	}})
	w.pstn.SetBehavior(testphone.Behavior{Play: testphone.Tone(2100)}) // CED
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, err := w.call("+34910000026", "+34911222333", "", testphone.DialOptions{Codecs: []media.Codec{media.PCMA}, Play: testphone.Tone(1100)()}) // CNG
	if err != nil {
		t.Fatal(err)
	}
	fc := incoming(t, w.pstn)
	if offer := string(fc.Invite().Body()); !strings.Contains(offer, "m=audio") || !strings.Contains(offer, "RTP/AVP 8 0") {
		t.Errorf("the fax is not offered the caller's A-law first:\n%s", offer)
	}
	if slices.Contains(c.Provisionals(), 183) {
		t.Errorf("early media (a prompt or ringback) on a fax call: %v", c.Provisionals())
	}
	if err := c.WaitForTone(ctx, 2100, 200*time.Millisecond); err != nil {
		t.Errorf("the caller does not hear the fax's CED: %v", err)
	}
	if err := fc.WaitForTone(ctx, 1100, 200*time.Millisecond); err != nil {
		t.Errorf("the fax does not hear the caller's CNG: %v", err)
	}
	if err := fc.SendDTMF(ctx, "5"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDTMF(ctx, "5"); err != nil {
		t.Errorf("DTMF not passed through: %v", err)
	}

	// The fax machine switches to T.38.
	res, err := fc.Reoffer(ctx, t38SDP(faxT38.LocalAddr().(*net.UDPAddr).AddrPort()))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("T.38 re-INVITE: %v %v", res, err)
	}
	var callerSaw []byte
	select {
	case callerSaw = <-saw:
	default:
	}
	if callerSaw == nil || !strings.Contains(string(callerSaw), "m=image") || !strings.Contains(string(callerSaw), "T38FaxUdpEC:t38UDPRedundancy") {
		t.Fatalf("the caller did not get the T.38 offer:\n%s", callerSaw)
	}
	toCaller := imageAddr(t, res.Body()) // where the fax sends UDPTL
	toFax := imageAddr(t, callerSaw)     // where the caller sends UDPTL
	if toCaller.Addr() == pstnIP || toFax.Addr() == carrierIP {
		t.Errorf("UDPTL bypasses Switchboard: fax -> %v, caller -> %v", toCaller, toFax)
	}
	exchange(t, faxT38, toCaller, callerT38, "\x00\x01udptl-from-fax")
	exchange(t, callerT38, toFax, faxT38, "\x00\x02udptl-from-caller")
	// A re-INVITE the other side refuses comes back with its status; the
	// call stays up.
	if res, err := c.Reoffer(ctx, []byte("v=0\r\no=- 1 3 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n")); err != nil || res.StatusCode != 488 {
		t.Errorf("refused re-INVITE: %v %v, want 488", res, err)
	}
	if c.EndReason() != testphone.EndNone || fc.EndReason() != testphone.EndNone {
		t.Errorf("a refused re-INVITE ended the call: %s / %s", c.EndReason(), fc.EndReason())
	}
	hangup(t, c)
	waitEnded(t, fc, 5*time.Second)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "fax1" || !sippTraceHas(rec, "re-INVITE from fax1 relayed to the caller: switched to T.38") ||
		!sippTraceHas(rec, "re-INVITE from the caller not relayed to fax1: 488") {
		t.Errorf("record: answered_by %q trace %q", rec.AnsweredBy, rec.Trace)
	}
}

// TestFaxHangupDuringReoffer: a caller who hangs up while a relayed T.38
// re-INVITE waits for its answer ends the fax's leg at once, not when the
// re-INVITE times out (10 s).
func TestFaxHangupDuringReoffer(t *testing.T) {
	w := newWorld(t)
	offered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	w.carrier.SetBehavior(testphone.Behavior{OnReoffer: func([]byte) (int, []byte) {
		close(offered)
		<-release // the caller's side never answers the offer in time
		return 488, nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := w.call("+34910000026", "+34911222333", "", testphone.DialOptions{Codecs: []media.Codec{media.PCMA}})
	if err != nil {
		t.Fatal(err)
	}
	fc := incoming(t, w.pstn)
	go func() { _, _ = fc.Reoffer(ctx, t38SDP(netip.MustParseAddrPort("127.0.0.3:40000"))) }()
	select {
	case <-offered:
	case <-ctx.Done():
		t.Fatal("the re-INVITE never reached the caller")
	}
	hangup(t, c)
	waitEnded(t, fc, 5*time.Second)
	if rec := lastRecord(t, w.h, 1); rec.HangupCause != "caller_bye" {
		t.Errorf("hangup cause %q, want caller_bye; trace %q", rec.HangupCause, rec.Trace)
	}
}
