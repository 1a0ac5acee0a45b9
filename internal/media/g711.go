package media

import (
	"math/bits"
	"strings"
)

// Static RTP payload types (RFC 3551) and the dynamic one we offer for
// RFC 4733 telephone-events.
const (
	PayloadTypePCMU           uint8 = 0
	PayloadTypePCMA           uint8 = 8
	PayloadTypeTelephoneEvent uint8 = 101
)

// Codec is an audio encoding the media path can decode and encode.
type Codec uint8

// Supported codecs. The zero value is CodecNone (not supported).
const (
	CodecNone Codec = iota
	PCMU            // G.711 µ-law
	PCMA            // G.711 A-law
)

// CodecByName returns the codec for an SDP encoding name ("PCMU", "pcma"),
// or CodecNone.
func CodecByName(name string) Codec {
	switch {
	case strings.EqualFold(name, "PCMU"):
		return PCMU
	case strings.EqualFold(name, "PCMA"):
		return PCMA
	}
	return CodecNone
}

// String returns the SDP encoding name.
func (c Codec) String() string {
	switch c {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return "none"
}

// PayloadType returns the codec's static RTP payload type.
func (c Codec) PayloadType() uint8 {
	if c == PCMA {
		return PayloadTypePCMA
	}
	return PayloadTypePCMU
}

// Decode decodes min(len(dst), len(src)) samples and returns how many.
func (c Codec) Decode(dst []int16, src []byte) int {
	switch c {
	case PCMU:
		return DecodeULawFrame(dst, src)
	case PCMA:
		return DecodeALawFrame(dst, src)
	}
	return 0
}

// Encode encodes min(len(dst), len(src)) samples and returns how many.
func (c Codec) Encode(dst []byte, src []int16) int {
	switch c {
	case PCMU:
		return EncodeULawFrame(dst, src)
	case PCMA:
		return EncodeALawFrame(dst, src)
	}
	return 0
}

// Transcode converts G.711 bytes from one codec to the other through a
// direct table (no linear step) and returns how many bytes it wrote. Equal
// codecs copy.
func Transcode(dst, src []byte, from, to Codec) int {
	n := min(len(dst), len(src))
	switch {
	case from == to:
		return copy(dst, src)
	case from == PCMU && to == PCMA:
		for i, b := range src[:n] {
			dst[i] = ulawToALaw[b]
		}
	case from == PCMA && to == PCMU:
		for i, b := range src[:n] {
			dst[i] = alawToULaw[b]
		}
	default:
		return 0
	}
	return n
}

// The encoders follow the classic Sun/CCITT reference (g711.c): µ-law works
// on 14-bit magnitudes with a bias of 33, A-law on 13-bit magnitudes. The
// segment search is a bit-length instead of a table scan.

// EncodeULaw encodes one 16-bit linear sample as µ-law.
func EncodeULaw(s int16) byte {
	v := int32(s) >> 2
	mask := byte(0xFF)
	if v < 0 {
		v = -v
		mask = 0x7F
	}
	if v > 8159 {
		v = 8159
	}
	v += 0x21
	seg := bits.Len32(uint32(v) >> 6) // 0..8
	if seg > 7 {
		return 0x7F ^ mask // clipped
	}
	return byte(seg<<4|int(v>>(seg+1))&0x0F) ^ mask
}

// DecodeULaw decodes one µ-law byte to 16-bit linear.
func DecodeULaw(b byte) int16 { return ulawTable[b] }

// EncodeALaw encodes one 16-bit linear sample as A-law.
func EncodeALaw(s int16) byte {
	v := int32(s) >> 3
	mask := byte(0xD5)
	if v < 0 {
		v = -v - 1
		mask = 0x55
	}
	seg := bits.Len32(uint32(v) >> 5) // 0..7 since v <= 4095
	var a int32
	if seg < 2 {
		a = v >> 1 & 0x0F
	} else {
		a = v >> seg & 0x0F
	}
	return byte(int32(seg<<4)|a) ^ mask
}

// DecodeALaw decodes one A-law byte to 16-bit linear.
func DecodeALaw(b byte) int16 { return alawTable[b] }

// ULawToALaw converts one µ-law byte to A-law.
func ULawToALaw(b byte) byte { return ulawToALaw[b] }

// ALawToULaw converts one A-law byte to µ-law.
func ALawToULaw(b byte) byte { return alawToULaw[b] }

// EncodeULawFrame encodes min(len(dst), len(src)) samples and returns how many.
func EncodeULawFrame(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	for i, s := range src[:n] {
		dst[i] = EncodeULaw(s)
	}
	return n
}

// DecodeULawFrame decodes min(len(dst), len(src)) samples and returns how many.
func DecodeULawFrame(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = ulawTable[b]
	}
	return n
}

// EncodeALawFrame encodes min(len(dst), len(src)) samples and returns how many.
func EncodeALawFrame(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	for i, s := range src[:n] {
		dst[i] = EncodeALaw(s)
	}
	return n
}

// DecodeALawFrame decodes min(len(dst), len(src)) samples and returns how many.
func DecodeALawFrame(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i, b := range src[:n] {
		dst[i] = alawTable[b]
	}
	return n
}

var (
	ulawTable, alawTable   [256]int16
	ulawToALaw, alawToULaw [256]byte
)

func init() {
	for i := range 256 {
		ulawTable[i] = decodeULaw(byte(i))
		alawTable[i] = decodeALaw(byte(i))
	}
	// Transcoding through the linear value picks the nearest code of the
	// other law, which is what G.711's conversion tables aim for.
	for i := range 256 {
		ulawToALaw[i] = EncodeALaw(ulawTable[i])
		alawToULaw[i] = EncodeULaw(alawTable[i])
	}
}

func decodeULaw(b byte) int16 {
	u := ^b
	t := (int32(u&0x0F) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func decodeALaw(b byte) int16 {
	a := b ^ 0x55
	t := int32(a&0x0F) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}
