package media

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"testing"
)

// Reference values produced by CPython's audioop (the Sun/CCITT g711.c
// algorithms), independent of this implementation.
func TestG711EncodeReference(t *testing.T) {
	tests := []struct {
		in   int16
		ulaw byte
		alaw byte
	}{
		{0, 0xFF, 0xD5}, {1, 0xFF, 0xD5}, {-1, 0x7E, 0x55}, {2, 0xFF, 0xD5}, {-2, 0x7E, 0x55},
		{7, 0xFE, 0xD5}, {8, 0xFE, 0xD5}, {-8, 0x7E, 0x55}, {31, 0xFB, 0xD4}, {32, 0xFB, 0xD7},
		{100, 0xF2, 0xD3}, {-100, 0x72, 0x53}, {255, 0xE7, 0xDA}, {1000, 0xCE, 0xFA}, {-1000, 0x4E, 0x7A},
		{4000, 0xAF, 0x9A}, {-4000, 0x2F, 0x1A}, {8000, 0xA0, 0x8A}, {8158, 0x9F, 0x8A}, {8159, 0x9F, 0x8A},
		{10000, 0x9C, 0xB6}, {-10000, 0x1C, 0x36}, {16000, 0x90, 0xBA}, {-16000, 0x10, 0x3A},
		{30000, 0x82, 0xA8}, {32000, 0x80, 0xAA}, {32767, 0x80, 0xAA}, {-32767, 0x00, 0x2A},
		{-32768, 0x00, 0x2A}, {123, 0xF0, 0xD2}, {-5555, 0x29, 0x00},
	}
	for _, tt := range tests {
		if got := EncodeULaw(tt.in); got != tt.ulaw {
			t.Errorf("EncodeULaw(%d) = %#02x, want %#02x", tt.in, got, tt.ulaw)
		}
		if got := EncodeALaw(tt.in); got != tt.alaw {
			t.Errorf("EncodeALaw(%d) = %#02x, want %#02x", tt.in, got, tt.alaw)
		}
	}
}

// The whole 16-bit input range against SHA-256 digests of audioop's output
// (lin2ulaw/lin2alaw over -32768..32767, little-endian order).
func TestG711EncodeExhaustive(t *testing.T) {
	tests := []struct {
		name string
		enc  func(int16) byte
		want string
	}{
		{"ulaw", EncodeULaw, "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a"},
		{"alaw", EncodeALaw, "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b"},
	}
	for _, tt := range tests {
		out := make([]byte, 0, 65536)
		for v := math.MinInt16; v <= math.MaxInt16; v++ {
			out = append(out, tt.enc(int16(v)))
		}
		sum := sha256.Sum256(out)
		if got := hex.EncodeToString(sum[:]); got != tt.want {
			t.Errorf("%s: sha256 = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestG711DecodeReference(t *testing.T) {
	for i := range 256 {
		if got := DecodeULaw(byte(i)); got != refULawDecode[i] {
			t.Errorf("DecodeULaw(%#02x) = %d, want %d", i, got, refULawDecode[i])
		}
		if got := DecodeALaw(byte(i)); got != refALawDecode[i] {
			t.Errorf("DecodeALaw(%#02x) = %d, want %d", i, got, refALawDecode[i])
		}
	}
}

func TestG711RoundTrip(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if v := DecodeULaw(b); DecodeULaw(EncodeULaw(v)) != v {
			t.Errorf("ulaw %#02x: decode(encode(%d)) = %d", b, v, DecodeULaw(EncodeULaw(v)))
		}
		if v := DecodeALaw(b); DecodeALaw(EncodeALaw(v)) != v {
			t.Errorf("alaw %#02x: decode(encode(%d)) = %d", b, v, DecodeALaw(EncodeALaw(v)))
		}
	}
	// Quantisation error stays within half a step of the segment (plus the
	// clipping at the top of the µ-law range).
	for v := math.MinInt16; v <= math.MaxInt16; v++ {
		s := int16(v)
		a := math.Abs(float64(v))
		if e := math.Abs(float64(DecodeULaw(EncodeULaw(s))) - float64(v)); e > max(a/8, 16) && a < 32124 {
			t.Fatalf("ulaw error %v at %d", e, v)
		}
		if e := math.Abs(float64(DecodeALaw(EncodeALaw(s))) - float64(v)); e > max(a/8, 16) {
			t.Fatalf("alaw error %v at %d", e, v)
		}
	}
}

func TestTranscodeTables(t *testing.T) {
	ua, _ := hex.DecodeString("2a2b28292e2f2c2d22232021262724253a3b38393e3f3c3d32333031363734350b08090e0f0c0d02030001060704051a1b18191e1f1c1d12131011161714156b68696e6f6c6d62636061666764657b797e7f7c7d72737071767774754b494f4d42434041464744455a5b58595e5f5c5d525353505051515656575754545555d5aaaba8a9aeafacada2a3a0a1a6a7a4a5babbb8b9bebfbcbdb2b3b0b1b6b7b4b58b88898e8f8c8d82838081868784859a9b98999e9f9c9d9293909196979495ebe8e9eeefecede2e3e0e1e6e7e4e5fbf9fefffcfdf2f3f0f1f6f7f4f5cbc9cfcdc2c3c0c1c6c7c4c5dadbd8d9dedfdcddd2d2d3d3d0d0d1d1d6d6d7d7d4d4d5d5")
	au, _ := hex.DecodeString("292a27282d2e2b2c21221f2025262324393a37383d3e3b3c31322f30353633340a0b08090e0f0c0d02030001060704051a1b18191e1f1c1d121310111617141562636061666764655d5d5c5c5f5f5e5e747670727c7e787a6a6b68696e6f6c6d484946474c4d4a4b40413f3f44454243565754555a5b58594f4f4e4e52535051a9aaa7a8adaeabaca1a29fa0a5a6a3a4b9bab7b8bdbebbbcb1b2afb0b5b6b3b48a8b88898e8f8c8d82838081868784859a9b98999e9f9c9d9293909196979495e2e3e0e1e6e7e4e5dddddcdcdfdfdedef4f6f0f2fcfef8faeaebe8e9eeefecedc8c9c6c7cccdcacbc0c1bfbfc4c5c2c3d6d7d4d5dadbd8d9cfcfceced2d3d0d1")
	for i := range 256 {
		if got := ULawToALaw(byte(i)); got != ua[i] {
			t.Errorf("ULawToALaw(%#02x) = %#02x, want %#02x", i, got, ua[i])
		}
		if got := ALawToULaw(byte(i)); got != au[i] {
			t.Errorf("ALawToULaw(%#02x) = %#02x, want %#02x", i, got, au[i])
		}
	}
	src := []byte{0xFF, 0x00, 0x80, 0x7E, 0xCE}
	dst := make([]byte, len(src))
	if n := Transcode(dst, src, PCMU, PCMA); n != len(src) {
		t.Fatalf("Transcode wrote %d", n)
	}
	back := make([]byte, len(src))
	Transcode(back, dst, PCMA, PCMU)
	for i := range src {
		if d := math.Abs(float64(DecodeULaw(back[i])) - float64(DecodeULaw(src[i]))); d > math.Abs(float64(DecodeULaw(src[i])))/8+16 {
			t.Errorf("µ→A→µ %#02x -> %#02x: drift %v", src[i], back[i], d)
		}
	}
	if n := Transcode(dst, src, PCMU, PCMU); n != len(src) || dst[4] != 0xCE {
		t.Errorf("same-codec transcode should copy")
	}
}

func TestCodec(t *testing.T) {
	tests := []struct {
		name string
		want Codec
		pt   uint8
	}{
		{"PCMU", PCMU, 0}, {"pcmu", PCMU, 0}, {"PCMA", PCMA, 8}, {"G729", CodecNone, 0},
	}
	for _, tt := range tests {
		c := CodecByName(tt.name)
		if c != tt.want {
			t.Errorf("CodecByName(%q) = %v", tt.name, c)
		}
		if c != CodecNone && (c.PayloadType() != tt.pt || c.String() != CodecByName(tt.name).String()) {
			t.Errorf("%v: pt %d", c, c.PayloadType())
		}
	}
	pcm := []int16{0, 1000, -1000, 32767}
	for _, c := range []Codec{PCMU, PCMA} {
		enc := make([]byte, len(pcm))
		dec := make([]int16, len(pcm))
		if c.Encode(enc, pcm) != len(pcm) || c.Decode(dec, enc) != len(pcm) {
			t.Fatalf("%v: short encode/decode", c)
		}
		if math.Abs(float64(dec[1]-1000)) > 64 {
			t.Errorf("%v: 1000 -> %d", c, dec[1])
		}
	}
}

func BenchmarkEncodeULawFrame(b *testing.B) {
	pcm := make([]int16, FrameSamples)
	Sine(1000).ReadFrame(pcm)
	out := make([]byte, FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		EncodeULawFrame(out, pcm)
	}
}

func BenchmarkTranscodeFrame(b *testing.B) {
	in := make([]byte, FrameSamples)
	out := make([]byte, FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		Transcode(out, in, PCMU, PCMA)
	}
}

var refULawDecode = [256]int16{
	-32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884, -20860, -19836, -18812, -17788, -16764,
	-15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412, -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316,
	-7932, -7676, -7420, -7164, -6908, -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348, -4092,
	-3900, -3772, -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492, -2364, -2236, -2108, -1980,
	-1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372, -1308, -1244, -1180, -1116, -1052, -988, -924,
	-876, -844, -812, -780, -748, -716, -684, -652, -620, -588, -556, -524, -492, -460, -428, -396,
	-372, -356, -340, -324, -308, -292, -276, -260, -244, -228, -212, -196, -180, -164, -148, -132,
	-120, -112, -104, -96, -88, -80, -72, -64, -56, -48, -40, -32, -24, -16, -8, 0,
	32124, 31100, 30076, 29052, 28028, 27004, 25980, 24956, 23932, 22908, 21884, 20860, 19836, 18812, 17788, 16764,
	15996, 15484, 14972, 14460, 13948, 13436, 12924, 12412, 11900, 11388, 10876, 10364, 9852, 9340, 8828, 8316,
	7932, 7676, 7420, 7164, 6908, 6652, 6396, 6140, 5884, 5628, 5372, 5116, 4860, 4604, 4348, 4092,
	3900, 3772, 3644, 3516, 3388, 3260, 3132, 3004, 2876, 2748, 2620, 2492, 2364, 2236, 2108, 1980,
	1884, 1820, 1756, 1692, 1628, 1564, 1500, 1436, 1372, 1308, 1244, 1180, 1116, 1052, 988, 924,
	876, 844, 812, 780, 748, 716, 684, 652, 620, 588, 556, 524, 492, 460, 428, 396,
	372, 356, 340, 324, 308, 292, 276, 260, 244, 228, 212, 196, 180, 164, 148, 132,
	120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0,
}
var refALawDecode = [256]int16{
	-5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528, -6272, -7040, -6784,
	-2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648, -4032, -3904, -3264, -3136, -3520, -3392,
	-22016, -20992, -24064, -23040, -17920, -16896, -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136,
	-11008, -10496, -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056, -12544, -14080, -13568,
	-344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504, -488, -408, -392, -440, -424,
	-88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248, -232, -152, -136, -184, -168,
	-1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184, -1888, -1824, -2016, -1952, -1632, -1568, -1760, -1696,
	-688, -656, -752, -720, -560, -528, -624, -592, -944, -912, -1008, -976, -816, -784, -880, -848,
	5504, 5248, 6016, 5760, 4480, 4224, 4992, 4736, 7552, 7296, 8064, 7808, 6528, 6272, 7040, 6784,
	2752, 2624, 3008, 2880, 2240, 2112, 2496, 2368, 3776, 3648, 4032, 3904, 3264, 3136, 3520, 3392,
	22016, 20992, 24064, 23040, 17920, 16896, 19968, 18944, 30208, 29184, 32256, 31232, 26112, 25088, 28160, 27136,
	11008, 10496, 12032, 11520, 8960, 8448, 9984, 9472, 15104, 14592, 16128, 15616, 13056, 12544, 14080, 13568,
	344, 328, 376, 360, 280, 264, 312, 296, 472, 456, 504, 488, 408, 392, 440, 424,
	88, 72, 120, 104, 24, 8, 56, 40, 216, 200, 248, 232, 152, 136, 184, 168,
	1376, 1312, 1504, 1440, 1120, 1056, 1248, 1184, 1888, 1824, 2016, 1952, 1632, 1568, 1760, 1696,
	688, 656, 752, 720, 560, 528, 624, 592, 944, 912, 1008, 976, 816, 784, 880, 848,
}
