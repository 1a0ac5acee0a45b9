package media

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func sdpLines(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n") }

const sdpHead = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\n"

func TestOfferRoundTrip(t *testing.T) {
	local := LocalSDP{IP: netip.MustParseAddr("192.0.2.10"), Port: 10000, SessionID: 77, SessionVersion: 3}
	b, err := local.Offer()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"o=switchboard 77 3 IN IP4 192.0.2.10\r\n",
		"c=IN IP4 192.0.2.10\r\n",
		"m=audio 10000 RTP/AVP 0 8 101\r\n",
		"a=rtpmap:0 PCMU/8000\r\n",
		"a=rtpmap:8 PCMA/8000\r\n",
		"a=rtpmap:101 telephone-event/8000\r\n",
		"a=fmtp:101 0-16\r\n",
		"a=ptime:20\r\n",
		"a=sendrecv\r\n",
		"t=0 0\r\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("offer lacks %q:\n%s", want, s)
		}
	}
	rm, err := ParseSDP(b)
	if err != nil {
		t.Fatal(err)
	}
	if rm.IP != local.IP || rm.Port != 10000 || rm.EventPT != 101 || rm.Direction != SendRecv || rm.Ptime != 20*time.Millisecond {
		t.Errorf("parsed %+v", rm)
	}
	if rm.RTCP != netip.MustParseAddrPort("192.0.2.10:10001") || rm.SessionID != 77 || rm.SessionVersion != 3 {
		t.Errorf("parsed %+v", rm)
	}
	if len(rm.Formats) != 3 || rm.Formats[0].Codec != PCMU || rm.Formats[1].Codec != PCMA || rm.Formats[2].Codec != CodecNone {
		t.Errorf("formats %+v", rm.Formats)
	}

	// PCMA-first preference, IPv6, sendonly (hold).
	b, err = LocalSDP{IP: netip.MustParseAddr("2001:db8::1"), Port: 20000, Codecs: []Codec{PCMA}, EventPT: 96, Direction: SendOnly, Ptime: 30 * time.Millisecond}.Offer()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"c=IN IP6 2001:db8::1", "m=audio 20000 RTP/AVP 8 96", "a=sendonly", "a=ptime:30"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("offer lacks %q:\n%s", want, b)
		}
	}
	if _, err := (LocalSDP{Port: 1}).Offer(); err == nil {
		t.Error("offer without IP")
	}
	if _, err := (LocalSDP{IP: local.IP, Codecs: []Codec{CodecNone}}).Offer(); err == nil {
		t.Error("offer of unsupported codec")
	}
}

func TestParseSDP(t *testing.T) {
	tests := []struct {
		name  string
		sdp   []byte
		check func(t *testing.T, m *RemoteMedia)
	}{
		{"a gateway offering T.38 beside audio", sdpLines(
			"v=0", "o=gw 1 1 IN IP4 10.0.0.7", "s=-", "c=IN IP4 10.0.0.7", "t=0 0",
			"m=image 4002 udptl t38", "a=T38FaxVersion:0",
			"m=audio 4000 RTP/AVP 8",
		), func(t *testing.T, m *RemoteMedia) {
			if m.Port != 4000 || m.Formats[0].Codec != PCMA {
				t.Errorf("%+v", m)
			}
		}},
		{"linphone-like, dynamic PTs, media-level c=", sdpLines(
			"v=0", "o=alice 123 456 IN IP4 10.0.0.5", "s=Talk", "t=0 0",
			"m=audio 7078 RTP/AVP 96 97 8 0 101 13",
			"c=IN IP4 10.0.0.5",
			"a=rtpmap:96 opus/48000/2", "a=fmtp:96 useinbandfec=1",
			"a=rtpmap:97 speex/16000",
			"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
			"a=rtcp:7079", "a=recvonly",
		), func(t *testing.T, m *RemoteMedia) {
			if m.IP.String() != "10.0.0.5" || m.Port != 7078 || m.EventPT != 101 || m.Direction != RecvOnly || m.Ptime != 0 {
				t.Errorf("%+v", m)
			}
			names := []string{}
			for _, f := range m.Formats {
				names = append(names, f.Name)
			}
			if strings.Join(names, ",") != "opus,speex,PCMA,PCMU,telephone-event,CN" {
				t.Errorf("names %v", names)
			}
			if m.Formats[0].Channels != 2 || m.Formats[0].ClockRate != 48000 || m.Formats[0].Fmtp != "useinbandfec=1" || m.Formats[0].Codec != CodecNone {
				t.Errorf("opus %+v", m.Formats[0])
			}
			if m.Formats[4].Fmtp != "0-15" {
				t.Errorf("event fmtp %q", m.Formats[4].Fmtp)
			}
		}},
		{"static PTs without rtpmap, session-level c= and direction", sdpLines(
			"v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0", "a=sendonly",
			"m=audio 4000 RTP/AVP 18 0", "a=ptime:30",
		), func(t *testing.T, m *RemoteMedia) {
			if m.Formats[0].Name != "G729" || m.Formats[1].Codec != PCMU || m.Direction != SendOnly || m.Ptime != 30*time.Millisecond || m.EventPT != 0 {
				t.Errorf("%+v", m)
			}
		}},
		{"PCMU under a dynamic PT, rtcp with address", sdpLines(
			"v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
			"m=audio 4000 RTP/AVP 110 111", "a=rtpmap:110 pcmu/8000", "a=rtpmap:111 telephone-event/48000",
			"a=rtcp:5000 IN IP4 198.51.100.7",
		), func(t *testing.T, m *RemoteMedia) {
			if m.Formats[0].Codec != PCMU || m.EventPT != 0 || m.RTCP != netip.MustParseAddrPort("198.51.100.7:5000") {
				t.Errorf("%+v", m)
			}
		}},
		{"rejected first stream, video, SRTP: takes the usable audio", sdpLines(
			"v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
			"m=audio 0 RTP/AVP 0",
			"m=video 5000 RTP/AVP 96",
			"m=audio 5002 RTP/SAVP 0",
			"m=audio 5004 RTP/AVP 8", "a=inactive",
		), func(t *testing.T, m *RemoteMedia) {
			if m.Port != 5004 || m.Formats[0].Codec != PCMA || m.Direction != Inactive {
				t.Errorf("%+v", m)
			}
		}},
		{"hold with 0.0.0.0, LF line ends", []byte("v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 4000 RTP/AVP 0\n"),
			func(t *testing.T, m *RemoteMedia) {
				if !m.IP.IsUnspecified() {
					t.Errorf("%+v", m)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseSDP(tt.sdp)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

func TestParseSDPErrors(t *testing.T) {
	tests := []struct {
		name string
		sdp  []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrMalformedSDP, ""},
		{"garbage", []byte("hello world"), ErrMalformedSDP, ""},
		{"html", []byte("<html><body>502</body></html>"), ErrMalformedSDP, ""},
		{"too large", make([]byte, maxSDPSize+1), ErrMalformedSDP, "limit"},
		{"no media", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"), ErrNoAudio, "no m=audio"},
		{"video only", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n"), ErrNoAudio, "no m=audio"},
		{"audio rejected", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"), ErrNoAudio, "port 0"},
		{"srtp only", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/SAVP 0\r\n"), ErrNoAudio, "RTP/SAVP"},
		{"no c=", []byte(sdpHead + "t=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"), ErrMalformedSDP, "c="},
		{"hostname c=", []byte(sdpHead + "c=IN IP4 pbx.example.com\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"), ErrMalformedSDP, "pbx.example.com"},
		{"bad PT", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 300\r\n"), ErrMalformedSDP, "300"},
		{"PT word", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP pcmu\r\n"), ErrMalformedSDP, "pcmu"},
		{"port too big", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n"), ErrMalformedSDP, "70000"},
		{"bad rtpmap", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n"), ErrMalformedSDP, "rtpmap"},
		{"bad clock", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus/fast\r\n"), ErrMalformedSDP, "clock"},
		{"bad ptime", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=ptime:-5\r\n"), ErrMalformedSDP, "ptime"},
		{"bad rtcp", []byte(sdpHead + "c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtcp:x\r\n"), ErrMalformedSDP, "rtcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseSDP(tt.sdp)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v (%+v)", err, tt.want, m)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %q does not mention %q", err, tt.msg)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	parse := func(lines ...string) *RemoteMedia {
		t.Helper()
		m, err := ParseSDP([]byte(sdpHead + strings.Join(lines, "\r\n") + "\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name    string
		remote  *RemoteMedia
		codec   Codec
		pt      uint8
		eventPT uint8
		dir     MediaDirection
		err     error
	}{
		{"first supported in remote order", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 18 8 0 101", "a=rtpmap:101 telephone-event/8000"), PCMA, 8, 101, SendRecv, nil},
		{"PCMU", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 0 8"), PCMU, 0, 0, SendRecv, nil},
		{"dynamic PCMU", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 99", "a=rtpmap:99 PCMU/8000"), PCMU, 99, 0, SendRecv, nil},
		{"remote sendonly: we receive only", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 0", "a=sendonly"), PCMU, 0, 0, RecvOnly, nil},
		{"remote recvonly: we send only", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 0", "a=recvonly"), PCMU, 0, 0, SendOnly, nil},
		{"old hold 0.0.0.0", parse("c=IN IP4 0.0.0.0", "t=0 0", "m=audio 5000 RTP/AVP 0"), PCMU, 0, 0, RecvOnly, nil},
		{"inactive", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 0", "a=inactive"), PCMU, 0, 0, Inactive, nil},
		{"stereo PCMU is not ours", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 96", "a=rtpmap:96 PCMU/8000/2"), CodecNone, 0, 0, 0, ErrNoCommonCodec},
		{"no common codec", parse("c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 18 96 101", "a=rtpmap:96 opus/48000/2", "a=rtpmap:101 telephone-event/8000"), CodecNone, 0, 0, 0, ErrNoCommonCodec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Negotiate(tt.remote)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "offered") {
					t.Errorf("error should list the offer: %v", err)
				}
				return
			}
			if n.Codec != tt.codec || n.PayloadType != tt.pt || n.EventPT != tt.eventPT || n.Direction != tt.dir {
				t.Errorf("got %+v", n)
			}
			if n.Remote != tt.remote.RTPAddr() {
				t.Errorf("remote %v", n.Remote)
			}
		})
	}
}

func TestAnswer(t *testing.T) {
	offer, err := ParseSDP(sdpLines("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
		"m=audio 5000 RTP/AVP 9 8 0 96", "a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-16", "a=sendonly"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := Negotiate(offer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LocalSDP{IP: netip.MustParseAddr("192.0.2.10"), Port: 12000, SessionID: 5, SessionVersion: 5}.Answer(n)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := ParseSDP(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Formats) != 2 || ans.Formats[0].Codec != PCMA || ans.EventPT != 96 || ans.Direction != RecvOnly || ans.Port != 12000 {
		t.Errorf("answer %+v\n%s", ans, b)
	}
	// The offerer parses the answer and gets the same codec.
	back, err := Negotiate(ans)
	if err != nil || back.Codec != PCMA || back.EventPT != 96 {
		t.Errorf("offerer side %+v %v", back, err)
	}
	// No telephone-event offered: none answered. We on hold: inactive.
	n.EventPT = 0
	b, _ = LocalSDP{IP: netip.MustParseAddr("192.0.2.10"), Port: 12000, Direction: SendOnly}.Answer(n)
	if strings.Contains(string(b), "telephone-event") || !strings.Contains(string(b), "a=inactive") {
		t.Errorf("answer:\n%s", b)
	}
	if _, err := (LocalSDP{IP: netip.MustParseAddr("192.0.2.10")}).Answer(Negotiation{}); err == nil {
		t.Error("answer without codec")
	}
	leg := n.Leg(nil)
	if leg.Codec != PCMA || leg.PayloadType != 8 {
		t.Errorf("leg %+v", leg)
	}
}

func TestMediaDirection(t *testing.T) {
	for _, tt := range []struct {
		d          MediaDirection
		s          string
		send, recv bool
		rev        MediaDirection
	}{
		{SendRecv, "sendrecv", true, true, SendRecv},
		{SendOnly, "sendonly", true, false, RecvOnly},
		{RecvOnly, "recvonly", false, true, SendOnly},
		{Inactive, "inactive", false, false, Inactive},
	} {
		if tt.d.String() != tt.s || tt.d.Sends() != tt.send || tt.d.Receives() != tt.recv || tt.d.Reverse() != tt.rev {
			t.Errorf("%v", tt.d)
		}
	}
}

func FuzzParseSDP(f *testing.F) {
	offer, _ := LocalSDP{IP: netip.MustParseAddr("192.0.2.10"), Port: 10000}.Offer()
	f.Add(offer)
	f.Add(sdpLines("v=0", "o=alice 123 456 IN IP4 10.0.0.5", "s=Talk", "t=0 0",
		"m=audio 7078 RTP/AVP 96 97 8 0 101 13", "c=IN IP4 10.0.0.5",
		"a=rtpmap:96 opus/48000/2", "a=fmtp:96 useinbandfec=1", "a=rtpmap:101 telephone-event/8000",
		"a=rtcp:7079 IN IP4 10.0.0.5", "a=recvonly", "a=ptime:20"))
	f.Add([]byte("v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 ::1\nt=0 0\nm=audio 0 RTP/AVP 0\nm=audio 4000 RTP/AVP 8\n"))
	f.Add([]byte("v=0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseSDP(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedSDP) && !errors.Is(err, ErrNoAudio) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if m.Port < 1 || m.Port > 65535 || !m.IP.IsValid() || len(m.Formats) == 0 {
			t.Fatalf("invalid result %+v", m)
		}
		n, err := Negotiate(m)
		if err != nil {
			if !errors.Is(err, ErrNoCommonCodec) {
				t.Fatalf("negotiate: %v", err)
			}
			return
		}
		// What we answer must parse back to the same choice.
		ans, err := LocalSDP{IP: netip.MustParseAddr("192.0.2.10"), Port: 10000}.Answer(n)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseSDP(ans)
		if err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, ans)
		}
		if back.Formats[0].Codec != n.Codec || back.Formats[0].PayloadType != n.PayloadType || back.EventPT != n.EventPT {
			t.Fatalf("answer %+v for %+v", back, n)
		}
	})
}
