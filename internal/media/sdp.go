package media

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// MediaDirection is an SDP stream direction, from the point of view of the
// side that wrote it. The zero value is SendRecv.
type MediaDirection uint8

// SDP directions (RFC 3264 §5.1).
const (
	SendRecv MediaDirection = iota
	SendOnly
	RecvOnly
	Inactive
)

func (d MediaDirection) String() string {
	switch d {
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	}
	return "sendrecv"
}

// Sends reports whether the writer of d sends media.
func (d MediaDirection) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives reports whether the writer of d receives media.
func (d MediaDirection) Receives() bool { return d == SendRecv || d == RecvOnly }

// Reverse is the direction seen from the other side: sendonly becomes
// recvonly and the other way round.
func (d MediaDirection) Reverse() MediaDirection { return directionOf(d.Receives(), d.Sends()) }

func directionOf(send, recv bool) MediaDirection {
	switch {
	case send && recv:
		return SendRecv
	case send:
		return SendOnly
	case recv:
		return RecvOnly
	}
	return Inactive
}

// Format is one payload type of an SDP m= line.
type Format struct {
	PayloadType uint8
	Name        string // encoding name as written: "PCMU", "telephone-event", "G729"
	ClockRate   int
	Channels    int
	Fmtp        string // a=fmtp parameters, if any
	Codec       Codec  // PCMU or PCMA when we can use it, else CodecNone
}

// RemoteMedia is what a remote SDP says about its audio stream (the first
// m=audio line with a non-zero port and an RTP/AVP profile).
type RemoteMedia struct {
	IP             netip.Addr // c= (media level over session level); 0.0.0.0 is old-style hold
	Port           int
	RTCP           netip.AddrPort // a=rtcp (RFC 3605), else IP:Port+1
	Formats        []Format       // in the order offered
	EventPT        uint8          // telephone-event/8000 payload type; 0 when absent
	Direction      MediaDirection // media level over session level; default sendrecv
	Ptime          time.Duration  // a=ptime; 0 when absent
	SessionID      uint64         // o= sess-id
	SessionVersion uint64         // o= sess-version: unchanged in a re-INVITE means same SDP
}

// RTPAddr is where to send RTP.
func (m *RemoteMedia) RTPAddr() netip.AddrPort {
	return netip.AddrPortFrom(m.IP, uint16(m.Port))
}

// Limits against abusive SDP.
const (
	maxSDPSize    = 64 << 10
	maxSDPFormats = 64
)

// ParseSDP parses a remote SDP offer or answer. Errors wrap ErrMalformedSDP
// (syntax, bad c= or m= values) or ErrNoAudio (no usable audio stream).
func ParseSDP(b []byte) (*RemoteMedia, error) {
	if len(b) > maxSDPSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformedSDP, len(b), maxSDPSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformedSDP)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(withoutImage(b)); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedSDP, strings.TrimPrefix(err.Error(), "sdp: "))
	}
	var md *sdp.MediaDescription
	var skipped []string
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		proto := strings.Join(m.MediaName.Protos, "/")
		switch {
		case m.MediaName.Port.Value == 0:
			skipped = append(skipped, "port 0 (rejected)")
			continue
		case proto != "RTP/AVP" && proto != "RTP/AVPF":
			skipped = append(skipped, "profile "+proto+" not supported")
			continue
		}
		md = m
		break
	}
	if md == nil {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("%w: audio stream %s", ErrNoAudio, strings.Join(skipped, ", "))
		}
		return nil, fmt.Errorf("%w: no m=audio line", ErrNoAudio)
	}

	rm := &RemoteMedia{
		Port:           md.MediaName.Port.Value,
		SessionID:      sd.Origin.SessionID,
		SessionVersion: sd.Origin.SessionVersion,
	}
	if rm.Port < 1 || rm.Port > 65535 {
		return nil, fmt.Errorf("%w: m=audio port %d", ErrMalformedSDP, rm.Port)
	}
	ci := md.ConnectionInformation
	if ci == nil {
		ci = sd.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return nil, fmt.Errorf("%w: no c= connection address for audio", ErrMalformedSDP)
	}
	ip, err := netip.ParseAddr(ci.Address.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: c= address %q is not an IP address", ErrMalformedSDP, ci.Address.Address)
	}
	rm.IP = ip.Unmap()
	rm.RTCP = netip.AddrPortFrom(rm.IP, uint16(rm.Port+1))

	rm.Direction = SendRecv
	if d, ok := directionAttr(sd.Attributes); ok {
		rm.Direction = d
	}
	if d, ok := directionAttr(md.Attributes); ok {
		rm.Direction = d
	}
	ptime, ok := md.Attribute("ptime")
	if !ok {
		ptime, ok = sd.Attribute("ptime")
	}
	if ok {
		ms, err := strconv.ParseFloat(strings.TrimSpace(ptime), 64)
		if err != nil || ms <= 0 || ms > 1000 {
			return nil, fmt.Errorf("%w: a=ptime:%s", ErrMalformedSDP, ptime)
		}
		rm.Ptime = time.Duration(ms * float64(time.Millisecond))
	}
	if v, ok := md.Attribute("rtcp"); ok {
		if err := rm.parseRTCP(v); err != nil {
			return nil, err
		}
	}
	if err := rm.parseFormats(md); err != nil {
		return nil, err
	}
	return rm, nil
}

// withoutImage drops m=image sections (T.38 offered beside audio), which
// pion/sdp refuses to parse: only the audio matters here.
func withoutImage(b []byte) []byte {
	if !bytes.Contains(b, []byte("m=image")) {
		return b
	}
	var out []byte
	skip := false
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("m=")); ok {
			skip = bytes.HasPrefix(rest, []byte("image "))
		}
		if !skip {
			out = append(out, line...)
		}
	}
	return out
}

func directionAttr(attrs []sdp.Attribute) (MediaDirection, bool) {
	d, found := SendRecv, false
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv":
			d, found = SendRecv, true
		case "sendonly":
			d, found = SendOnly, true
		case "recvonly":
			d, found = RecvOnly, true
		case "inactive":
			d, found = Inactive, true
		}
	}
	return d, found
}

// parseRTCP reads "a=rtcp:port [IN IP4 addr]".
func (rm *RemoteMedia) parseRTCP(v string) error {
	f := strings.Fields(v)
	if len(f) == 0 {
		return fmt.Errorf("%w: empty a=rtcp", ErrMalformedSDP)
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil || port == 0 {
		return fmt.Errorf("%w: a=rtcp port %q", ErrMalformedSDP, f[0])
	}
	ip := rm.IP
	if len(f) >= 4 {
		a, err := netip.ParseAddr(f[3])
		if err != nil {
			return fmt.Errorf("%w: a=rtcp address %q is not an IP address", ErrMalformedSDP, f[3])
		}
		ip = a.Unmap()
	}
	rm.RTCP = netip.AddrPortFrom(ip, uint16(port))
	return nil
}

func (rm *RemoteMedia) parseFormats(md *sdp.MediaDescription) error {
	if len(md.MediaName.Formats) == 0 {
		return fmt.Errorf("%w: m=audio lists no formats", ErrMalformedSDP)
	}
	if len(md.MediaName.Formats) > maxSDPFormats {
		return fmt.Errorf("%w: m=audio lists %d formats", ErrMalformedSDP, len(md.MediaName.Formats))
	}
	idx := map[uint8]int{}
	for _, s := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(s, 10, 8)
		if err != nil || pt > 127 {
			return fmt.Errorf("%w: m=audio payload type %q", ErrMalformedSDP, s)
		}
		if _, dup := idx[uint8(pt)]; dup {
			continue
		}
		f := Format{PayloadType: uint8(pt), ClockRate: 8000, Channels: 1}
		f.Name = staticPayloadName(f.PayloadType)
		idx[f.PayloadType] = len(rm.Formats)
		rm.Formats = append(rm.Formats, f)
	}
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap":
			pt, rest, ok := splitPT(a.Value)
			i, known := idx[pt]
			if !ok || !known {
				continue // for a format not on the m= line: ignore
			}
			enc := strings.Split(rest, "/")
			if len(enc) < 2 || enc[0] == "" {
				return fmt.Errorf("%w: a=rtpmap:%s", ErrMalformedSDP, a.Value)
			}
			rate, err := strconv.Atoi(enc[1])
			if err != nil || rate <= 0 {
				return fmt.Errorf("%w: a=rtpmap:%s clock rate", ErrMalformedSDP, a.Value)
			}
			ch := 1
			if len(enc) > 2 {
				if ch, err = strconv.Atoi(enc[2]); err != nil || ch <= 0 {
					return fmt.Errorf("%w: a=rtpmap:%s channels", ErrMalformedSDP, a.Value)
				}
			}
			f := &rm.Formats[i]
			f.Name, f.ClockRate, f.Channels = enc[0], rate, ch
		case "fmtp":
			if pt, rest, ok := splitPT(a.Value); ok {
				if i, known := idx[pt]; known {
					rm.Formats[i].Fmtp = strings.TrimSpace(rest)
				}
			}
		}
	}
	for i := range rm.Formats {
		f := &rm.Formats[i]
		if f.ClockRate == 8000 && f.Channels == 1 {
			f.Codec = CodecByName(f.Name)
		}
		if rm.EventPT == 0 && strings.EqualFold(f.Name, "telephone-event") && f.ClockRate == 8000 {
			rm.EventPT = f.PayloadType
		}
	}
	return nil
}

// splitPT splits "96 opus/48000/2" into 96 and "opus/48000/2".
func splitPT(v string) (uint8, string, bool) {
	head, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return 0, "", false
	}
	pt, err := strconv.ParseUint(head, 10, 8)
	if err != nil || pt > 127 {
		return 0, "", false
	}
	return uint8(pt), strings.TrimSpace(rest), true
}

// staticPayloadName names the RFC 3551 static audio payload types that may
// appear without a=rtpmap.
func staticPayloadName(pt uint8) string {
	switch pt {
	case 0:
		return "PCMU"
	case 3:
		return "GSM"
	case 4:
		return "G723"
	case 8:
		return "PCMA"
	case 9:
		return "G722"
	case 13:
		return "CN"
	case 18:
		return "G729"
	}
	return ""
}

// Negotiation is the outcome of offer/answer for one leg.
type Negotiation struct {
	Codec       Codec          // the first of the remote's formats we support
	PayloadType uint8          // its payload type as the remote numbered it
	EventPT     uint8          // the remote's telephone-event payload type; 0 when none
	Direction   MediaDirection // ours: the reverse of the remote's (inactive when neither can send)
	Ptime       time.Duration  // the remote's a=ptime, 0 when absent
	Remote      netip.AddrPort // where to send RTP (SetRemote); unspecified IP on hold
	RemoteRTCP  netip.AddrPort
}

// Negotiate picks the first of the remote's formats that is PCMU or PCMA
// (the remote's preference order) and the remote's telephone-event payload
// type. It returns an error wrapping ErrNoCommonCodec when there is none:
// the SIP layer answers 488. A c=0.0.0.0 (RFC 2543 hold) remote does not
// want to receive, so our direction loses "send".
func Negotiate(remote *RemoteMedia) (Negotiation, error) {
	n := Negotiation{
		EventPT:    remote.EventPT,
		Ptime:      remote.Ptime,
		Remote:     remote.RTPAddr(),
		RemoteRTCP: remote.RTCP,
	}
	var offered []string
	for _, f := range remote.Formats {
		if f.Codec != CodecNone {
			n.Codec, n.PayloadType = f.Codec, f.PayloadType
			break
		}
		if f.Name != "" {
			offered = append(offered, f.Name)
		} else {
			offered = append(offered, strconv.Itoa(int(f.PayloadType)))
		}
	}
	if n.Codec == CodecNone {
		return n, fmt.Errorf("%w: offered %s, we support PCMU and PCMA", ErrNoCommonCodec, strings.Join(offered, ", "))
	}
	remoteRecv := remote.Direction.Receives() && !remote.IP.IsUnspecified()
	n.Direction = directionOf(remoteRecv, remote.Direction.Sends())
	return n, nil
}

// Leg returns the bridge leg for session s with this negotiation.
func (n Negotiation) Leg(s *Session) Leg {
	return Leg{Session: s, Codec: n.Codec, PayloadType: n.PayloadType, EventPT: n.EventPT}
}

// LocalSDP describes our side of an SDP exchange.
type LocalSDP struct {
	IP             netip.Addr     // advertised in o= and c=
	Port           int            // our RTP port (Session.Port)
	SessionID      uint64         // o= sess-id: keep it for the dialog
	SessionVersion uint64         // o= sess-version: increment on each change
	Codecs         []Codec        // offer preference; default PCMU, PCMA
	EventPT        uint8          // telephone-event payload type in offers; default 101
	Direction      MediaDirection // default sendrecv
	Ptime          time.Duration  // default 20 ms
}

// Offer returns an SDP offer with l.Codecs (PCMU and PCMA by default) and
// telephone-event 0-16.
func (l LocalSDP) Offer() ([]byte, error) {
	codecs := l.Codecs
	if len(codecs) == 0 {
		codecs = []Codec{PCMU, PCMA}
	}
	var formats []Format
	for _, c := range codecs {
		if c != PCMU && c != PCMA {
			return nil, fmt.Errorf("media: cannot offer codec %s", c)
		}
		formats = append(formats, Format{PayloadType: c.PayloadType(), Name: c.String(), ClockRate: 8000, Codec: c})
	}
	ev := l.EventPT
	if ev == 0 {
		ev = PayloadTypeTelephoneEvent
	}
	formats = append(formats, Format{PayloadType: ev, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"})
	return l.marshal(formats, l.Direction)
}

// Answer returns an SDP answer to the offer that produced n: the chosen
// codec with the remote's payload type, telephone-event if the remote
// offered it, and a direction allowed by both l.Direction and n.Direction.
func (l LocalSDP) Answer(n Negotiation) ([]byte, error) {
	if n.Codec != PCMU && n.Codec != PCMA {
		return nil, fmt.Errorf("media: cannot answer with codec %s", n.Codec)
	}
	formats := []Format{{PayloadType: n.PayloadType, Name: n.Codec.String(), ClockRate: 8000, Codec: n.Codec}}
	if n.EventPT != 0 {
		formats = append(formats, Format{PayloadType: n.EventPT, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"})
	}
	dir := directionOf(l.Direction.Sends() && n.Direction.Sends(), l.Direction.Receives() && n.Direction.Receives())
	return l.marshal(formats, dir)
}

func (l LocalSDP) marshal(formats []Format, dir MediaDirection) ([]byte, error) {
	if !l.IP.IsValid() {
		return nil, errors.New("media: sdp needs a local ip")
	}
	if l.Port < 0 || l.Port > 65535 {
		return nil, fmt.Errorf("media: sdp port %d out of range", l.Port)
	}
	ip := l.IP.Unmap()
	addrType := "IP4"
	if ip.Is6() {
		addrType = "IP6"
	}
	ptime := l.Ptime
	if ptime <= 0 {
		ptime = FrameDuration
	}
	md := &sdp.MediaDescription{MediaName: sdp.MediaName{
		Media:  "audio",
		Port:   sdp.RangedPort{Value: l.Port},
		Protos: []string{"RTP", "AVP"},
	}}
	for _, f := range formats {
		pt := strconv.Itoa(int(f.PayloadType))
		md.MediaName.Formats = append(md.MediaName.Formats, pt)
		md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", fmt.Sprintf("%s %s/%d", pt, f.Name, f.ClockRate)))
		if f.Fmtp != "" {
			md.Attributes = append(md.Attributes, sdp.NewAttribute("fmtp", pt+" "+f.Fmtp))
		}
	}
	md.Attributes = append(md.Attributes,
		sdp.NewAttribute("ptime", strconv.Itoa(int(ptime/time.Millisecond))),
		sdp.NewPropertyAttribute(dir.String()),
	)
	sd := sdp.SessionDescription{
		Origin: sdp.Origin{
			Username:       "switchboard",
			SessionID:      l.SessionID,
			SessionVersion: l.SessionVersion,
			NetworkType:    "IN",
			AddressType:    addrType,
			UnicastAddress: ip.String(),
		},
		SessionName: "switchboard",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN",
			AddressType: addrType,
			Address:     &sdp.Address{Address: ip.String()},
		},
		TimeDescriptions:  []sdp.TimeDescription{{}},
		MediaDescriptions: []*sdp.MediaDescription{md},
	}
	return sd.Marshal()
}
