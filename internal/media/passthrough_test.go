package media

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const t38Offer = "v=0\r\no=fax 7 3 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\n" +
	"m=audio 0 RTP/AVP 8\r\n" +
	"m=image 40000 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxRateManagement:transferredTCF\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n"

func TestRelaySDP(t *testing.T) {
	out, remotes, err := RelaySDP([]byte(t38Offer), netip.MustParseAddr("127.0.0.9"), 55, 2, map[string]int{"audio": 30000, "image": 30010})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		"o=switchboard 55 2 IN IP4 127.0.0.9", "c=IN IP4 127.0.0.9",
		"m=audio 0 RTP/AVP 8", // declined stays declined
		"m=image 30010 udptl t38", "a=T38FaxRateManagement:transferredTCF", "a=T38FaxUdpEC:t38UDPRedundancy",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rewritten SDP lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "127.0.0.3") {
		t.Errorf("the sender's address leaked:\n%s", s)
	}
	if got := remotes["image"]; got != netip.MustParseAddrPort("127.0.0.3:40000") {
		t.Errorf("image remote %v", got)
	}
	if _, ok := remotes["audio"]; ok {
		t.Error("a declined stream has a remote")
	}
	// A media type we have no port for is declined.
	out, _, err = RelaySDP([]byte(t38Offer), netip.MustParseAddr("127.0.0.9"), 1, 1, map[string]int{"audio": 30000})
	if err != nil || !strings.Contains(string(out), "m=image 0 udptl t38") {
		t.Errorf("no image port: %v\n%s", err, out)
	}
	// Only media-level c= lines: the session gets ours.
	mediaConn := strings.Replace(t38Offer, "c=IN IP4 127.0.0.3\r\nt=0 0\r\n", "t=0 0\r\n", 1) + "c=IN IP4 127.0.0.4\r\n"
	out, remotes, err = RelaySDP([]byte(mediaConn), netip.MustParseAddr("127.0.0.9"), 1, 1, map[string]int{"image": 30010})
	if err != nil || strings.Count(string(out), "c=IN IP4 127.0.0.9") != 1 || remotes["image"] != netip.MustParseAddrPort("127.0.0.4:40000") {
		t.Errorf("media-level c=: %v %v\n%s", err, remotes, out)
	}
	for _, bad := range []string{"", "v=0\r\nnonsense", strings.Replace(t38Offer, "c=IN IP4 127.0.0.3\r\n", "", 1), strings.Replace(t38Offer, "c=IN IP4 127.0.0.3", "c=IN IP4 fax.example", 1)} {
		if _, _, err := RelaySDP([]byte(bad), netip.MustParseAddr("127.0.0.9"), 1, 1, nil); !errors.Is(err, ErrMalformedSDP) {
			t.Errorf("%q: err %v, want ErrMalformedSDP", bad, err)
		}
	}
}

func FuzzRelaySDP(f *testing.F) {
	f.Add([]byte(t38Offer))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _, err := RelaySDP(b, netip.MustParseAddr("127.0.0.1"), 1, 1, map[string]int{"audio": 2000, "image": 2002})
		if err != nil {
			if !errors.Is(err, ErrMalformedSDP) && !strings.HasPrefix(err.Error(), "media: relay sdp") {
				t.Fatalf("error %v does not say malformed", err)
			}
			return
		}
		if _, _, err := RelaySDP(out, netip.MustParseAddr("127.0.0.1"), 1, 1, nil); err != nil {
			t.Fatalf("our own output does not parse: %v\n%s", err, out)
		}
	})
}

// Datagrams pass untouched both ways, to the address each side announced
// and then to the one it actually sends from.
func TestPassthrough(t *testing.T) {
	al := newAllocator(t)
	ctx := timeout(t, 10*time.Second)
	p, err := al.NewPassthrough(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	b, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer a.Close()
	defer b.Close()
	p.SetRemote(SideA, a.LocalAddr().(*net.UDPAddr).AddrPort())
	p.SetRemote(SideB, b.LocalAddr().(*net.UDPAddr).AddrPort())
	to := func(s Side) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p.Port(s)))
	}
	check := func(from *net.UDPConn, side Side, into *net.UDPConn, msg []byte) {
		t.Helper()
		if _, err := from.WriteToUDPAddrPort(msg, to(side)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2000)
		_ = into.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := into.ReadFromUDPAddrPort(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("got %q, %v; want %q", buf[:n], err, msg)
		}
	}
	udptl := []byte{0x00, 0x01, 0x06, 0x80, 0x00, 0x00, 0xff} // not RTP: must pass all the same
	check(a, SideA, b, udptl)
	check(b, SideB, a, []byte("answer"))
	if p.LastActivity().IsZero() {
		t.Error("LastActivity zero after relaying")
	}
	// A side that sends from elsewhere (NAT) is answered there.
	c, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer c.Close()
	check(c, SideA, b, []byte("moved"))
	check(b, SideB, c, []byte("follows"))
	p.Close()
	if al.InUse() != 0 {
		t.Errorf("%d port pairs still in use after Close", al.InUse())
	}
}
