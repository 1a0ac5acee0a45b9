package media

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wavSpec describes a test file built in code.
type wavSpec struct {
	format   uint16
	channels int
	rate     int
	bits     int
	extended bool // WAVE_FORMAT_EXTENSIBLE
	extra    bool // a LIST chunk of odd size before data
}

// chunk returns id, size and body, padded to even length.
func chunk(id string, body []byte) []byte {
	b := make([]byte, 8, 8+len(body)+1)
	copy(b, id)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func riff(chunks ...[]byte) []byte {
	body := []byte("WAVE")
	for _, c := range chunks {
		body = append(body, c...)
	}
	out := append([]byte("RIFF0000"), body...)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(body)))
	return out
}

func fmtChunk(s wavSpec) []byte {
	tag := s.format
	size := 16
	if s.extended {
		tag, size = wavFormatExtensible, 40
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint16(b[0:], tag)
	binary.LittleEndian.PutUint16(b[2:], uint16(s.channels))
	binary.LittleEndian.PutUint32(b[4:], uint32(s.rate))
	binary.LittleEndian.PutUint32(b[8:], uint32(s.rate*s.channels*s.bits/8))
	binary.LittleEndian.PutUint16(b[12:], uint16(s.channels*s.bits/8))
	binary.LittleEndian.PutUint16(b[14:], uint16(s.bits))
	if s.extended {
		binary.LittleEndian.PutUint16(b[16:], 22)
		binary.LittleEndian.PutUint16(b[18:], uint16(s.bits))
		binary.LittleEndian.PutUint16(b[24:], s.format)
		copy(b[26:], "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xAA\x00\x38\x9B\x71")
	}
	return b
}

// makeWAV encodes d of a freq Hz sine (amplitude 10000) on every channel.
func makeWAV(s wavSpec, freq float64, d time.Duration) []byte {
	frames := int(d.Seconds() * float64(s.rate))
	var data []byte
	for i := range frames {
		v := int16(10000 * math.Sin(2*math.Pi*freq*float64(i)/float64(s.rate)))
		for range s.channels {
			switch {
			case s.format == wavFormatULaw:
				data = append(data, EncodeULaw(v))
			case s.format == wavFormatALaw:
				data = append(data, EncodeALaw(v))
			case s.bits == 8:
				data = append(data, byte(int(v>>8)+128))
			default:
				data = binary.LittleEndian.AppendUint16(data, uint16(v))
			}
		}
	}
	chunks := [][]byte{chunk("fmt ", fmtChunk(s))}
	if s.extra {
		chunks = append(chunks, chunk("LIST", []byte("INFOISFT\x03\x00\x00\x00ab\x00")))
	}
	chunks = append(chunks, chunk("data", data))
	return riff(chunks...)
}

func TestDecodeWAVFormats(t *testing.T) {
	tests := []struct {
		name string
		spec wavSpec
	}{
		{"pcm16 8k mono", wavSpec{format: wavFormatPCM, channels: 1, rate: 8000, bits: 16}},
		{"pcm16 8k stereo", wavSpec{format: wavFormatPCM, channels: 2, rate: 8000, bits: 16}},
		{"pcm16 16k mono", wavSpec{format: wavFormatPCM, channels: 1, rate: 16000, bits: 16}},
		{"pcm16 16k stereo", wavSpec{format: wavFormatPCM, channels: 2, rate: 16000, bits: 16}},
		{"pcm16 44.1k mono", wavSpec{format: wavFormatPCM, channels: 1, rate: 44100, bits: 16}},
		{"pcm16 44.1k stereo", wavSpec{format: wavFormatPCM, channels: 2, rate: 44100, bits: 16}},
		{"pcm16 48k mono", wavSpec{format: wavFormatPCM, channels: 1, rate: 48000, bits: 16}},
		{"pcm16 48k stereo extensible", wavSpec{format: wavFormatPCM, channels: 2, rate: 48000, bits: 16, extended: true}},
		{"pcm16 22.05k mono with LIST", wavSpec{format: wavFormatPCM, channels: 1, rate: 22050, bits: 16, extra: true}},
		{"pcm16 6k mono (upsampled)", wavSpec{format: wavFormatPCM, channels: 1, rate: 6000, bits: 16}},
		{"pcm8 11.025k mono", wavSpec{format: wavFormatPCM, channels: 1, rate: 11025, bits: 8}},
		{"ulaw 8k mono", wavSpec{format: wavFormatULaw, channels: 1, rate: 8000, bits: 8}},
		{"ulaw 8k stereo", wavSpec{format: wavFormatULaw, channels: 2, rate: 8000, bits: 8}},
		{"alaw 8k mono", wavSpec{format: wavFormatALaw, channels: 1, rate: 8000, bits: 8}},
		{"alaw 16k stereo", wavSpec{format: wavFormatALaw, channels: 2, rate: 16000, bits: 8}},
		{"ulaw 8k extensible", wavSpec{format: wavFormatULaw, channels: 1, rate: 8000, bits: 8, extended: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const d = 500 * time.Millisecond
			got, err := DecodeWAV(makeWAV(tt.spec, 1000, d))
			if err != nil {
				t.Fatal(err)
			}
			if want := 4000; abs(len(got)-want) > 1 {
				t.Errorf("%d samples, want %d", len(got), want)
			}
			// Skip the filter's edges.
			mid := got[400:3600]
			if f, ok := DominantFrequency(mid, []float64{500, 1000, 2000}); !ok || f != 1000 {
				t.Errorf("dominant %v %v", f, ok)
			}
			if share := DetectTone(mid, 1000); share < 0.9 {
				t.Errorf("1000 Hz share %.2f", share)
			}
			// Amplitude 10000 sine: RMS 7071 (linear interpolation when
			// upsampling loses about 1 dB at 1 kHz).
			if rms := RMS(mid); rms < 6000 || rms > 7600 {
				t.Errorf("rms %.0f, want about 7071", rms)
			}
		})
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestDecodeWAVLowPass(t *testing.T) {
	// 6 kHz cannot be represented at 8 kHz: the filter must remove it
	// instead of folding it to 2 kHz.
	for _, rate := range []int{16000, 44100, 48000} {
		got, err := DecodeWAV(makeWAV(wavSpec{format: wavFormatPCM, channels: 1, rate: rate, bits: 16}, 6000, 500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if rms := RMS(got[400:3600]); rms > 200 {
			t.Errorf("%d Hz: 6 kHz tone left rms %.0f after resampling", rate, rms)
		}
	}
	// 3 kHz passes.
	got, err := DecodeWAV(makeWAV(wavSpec{format: wavFormatPCM, channels: 1, rate: 44100, bits: 16}, 3000, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if rms := RMS(got[400:3600]); rms < 6000 {
		t.Errorf("3 kHz attenuated to rms %.0f", rms)
	}
}

func TestDecodeWAVDownmix(t *testing.T) {
	// Left +8000, right -2000: the mix is +3000.
	var data []byte
	for range 100 {
		data = binary.LittleEndian.AppendUint16(data, uint16(8000))
		data = binary.LittleEndian.AppendUint16(data, uint16(0xFFFF-2000+1))
	}
	got, err := DecodeWAV(riff(chunk("fmt ", fmtChunk(wavSpec{format: wavFormatPCM, channels: 2, rate: 8000, bits: 16})), chunk("data", data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 || got[0] != 3000 || got[99] != 3000 {
		t.Errorf("got %d samples, first %d", len(got), got[0])
	}
}

func TestDecodeWAVErrors(t *testing.T) {
	pcm := wavSpec{format: wavFormatPCM, channels: 1, rate: 8000, bits: 16}
	good := makeWAV(pcm, 1000, 100*time.Millisecond)
	withFmt := func(mod func(s *wavSpec)) []byte {
		s := pcm
		mod(&s)
		return riff(chunk("fmt ", fmtChunk(s)), chunk("data", make([]byte, 320)))
	}
	hugeData := riff(chunk("fmt ", fmtChunk(pcm)), []byte("data\xff\xff\xff\x7f\x00\x00"))
	hugeFmt := riff([]byte("fmt \xff\xff\xff\xff\x01\x00"))
	tests := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrTruncatedWAV, "0 bytes"},
		{"riff only", []byte("RIFF\x04\x00"), ErrTruncatedWAV, "needs 12"},
		{"text", []byte("hello, this is not audio at all"), ErrNotWAV, ""},
		{"avi", []byte("RIFF\x04\x00\x00\x00AVI LIST"), ErrNotWAV, "AVI"},
		{"rifx", []byte("RIFX\x04\x00\x00\x00WAVE"), ErrUnsupportedWAV, "big-endian"},
		{"rf64", []byte("RF64\xff\xff\xff\xffWAVE"), ErrUnsupportedWAV, "RF64"},
		{"float", withFmt(func(s *wavSpec) { s.format, s.bits = wavFormatFloat, 32 }), ErrUnsupportedWAV, "float"},
		{"float extensible", withFmt(func(s *wavSpec) { s.format, s.bits, s.extended = wavFormatFloat, 32, true }), ErrUnsupportedWAV, "float"},
		{"24-bit", withFmt(func(s *wavSpec) { s.bits = 24 }), ErrUnsupportedWAV, "24-bit"},
		{"32-bit", withFmt(func(s *wavSpec) { s.bits = 32 }), ErrUnsupportedWAV, "32-bit"},
		{"adpcm", withFmt(func(s *wavSpec) { s.format, s.bits = 2, 4 }), ErrUnsupportedWAV, "ADPCM"},
		{"ulaw 16-bit", withFmt(func(s *wavSpec) { s.format = wavFormatULaw }), ErrInvalidWAV, "G.711"},
		{"zero channels", withFmt(func(s *wavSpec) { s.channels = 0 }), ErrInvalidWAV, "zero channels"},
		{"1000 channels", withFmt(func(s *wavSpec) { s.channels = 1000 }), ErrInvalidWAV, "1000 channels"},
		{"rate 0", withFmt(func(s *wavSpec) { s.rate = 0 }), ErrInvalidWAV, "rate 0"},
		{"rate absurd", withFmt(func(s *wavSpec) { s.rate = 100_000_000 }), ErrInvalidWAV, "100000000 Hz"},
		{"fmt too short", riff(chunk("fmt ", make([]byte, 10)), chunk("data", make([]byte, 4))), ErrInvalidWAV, "needs 16"},
		{"no fmt", riff(chunk("data", make([]byte, 4))), ErrInvalidWAV, "fmt chunk missing"},
		{"no data", riff(chunk("fmt ", fmtChunk(pcm))), ErrInvalidWAV, "data chunk missing"},
		{"data size beyond file", hugeData, ErrTruncatedWAV, "data chunk declares 2147483647"},
		{"fmt size beyond file", hugeFmt, ErrTruncatedWAV, "fmt"},
		{"cut in data", good[:len(good)-100], ErrTruncatedWAV, "only"},
		{"empty data", riff(chunk("fmt ", fmtChunk(pcm)), chunk("data", nil)), ErrInvalidWAV, "no complete sample"},
		{"half a sample", riff(chunk("fmt ", fmtChunk(pcm)), chunk("data", []byte{1})), ErrInvalidWAV, "no complete sample"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeWAV(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %q does not mention %q", err, tt.msg)
			}
			if got != nil {
				t.Errorf("samples returned with error")
			}
		})
	}
	// A 16-byte fmt chunk tagged 0xFFFE lacks the subformat.
	short := fmtChunk(wavSpec{format: wavFormatPCM, channels: 1, rate: 8000, bits: 16})
	binary.LittleEndian.PutUint16(short, wavFormatExtensible)
	if _, err := DecodeWAV(riff(chunk("fmt ", short), chunk("data", make([]byte, 4)))); !errors.Is(err, ErrInvalidWAV) || !strings.Contains(err.Error(), "extensible") {
		t.Errorf("short extensible: %v", err)
	}
}

func TestDecodeWAVLenient(t *testing.T) {
	pcm := wavSpec{format: wavFormatPCM, channels: 1, rate: 8000, bits: 16}
	// A streaming writer's data size of 0xFFFFFFFF means "to the end".
	streamed := riff(chunk("fmt ", fmtChunk(pcm)), append([]byte("data\xff\xff\xff\xff"), make([]byte, 321)...))
	got, err := DecodeWAV(streamed)
	if err != nil || len(got) != 160 {
		t.Errorf("streamed: %d samples, %v", len(got), err)
	}
	// Trailing junk shorter than a chunk header, and chunks after data.
	good := makeWAV(pcm, 1000, 20*time.Millisecond)
	if got, err := DecodeWAV(append(good, 1, 2, 3)); err != nil || len(got) != 160 {
		t.Errorf("trailing junk: %d, %v", len(got), err)
	}
	// data before fmt.
	data := chunk("data", make([]byte, 320))
	if got, err := DecodeWAV(riff(data, chunk("fmt ", fmtChunk(pcm)))); err != nil || len(got) != 160 {
		t.Errorf("data first: %d, %v", len(got), err)
	}
}

func TestReadWAVLimits(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.wav")
	if err := os.WriteFile(p, makeWAV(wavSpec{format: wavFormatALaw, channels: 1, rate: 8000, bits: 8}, 425, time.Second), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadWAV(p)
	if err != nil || len(got) != 8000 {
		t.Fatalf("LoadWAV: %d, %v", len(got), err)
	}
	if _, err := LoadWAV(filepath.Join(dir, "missing.wav")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	bad := filepath.Join(dir, "bad.wav")
	_ = os.WriteFile(bad, []byte("nope"), 0o600)
	if _, err := LoadWAV(bad); !errors.Is(err, ErrNotWAV) || !strings.Contains(err.Error(), "bad.wav") {
		t.Errorf("bad: %v", err)
	}
}

func TestWAVWriter(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "rec.wav"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWAVWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	left := make([]int16, FrameSamples)
	Sine(1000).ReadFrame(left)
	right := []int16{100, -100}
	for range 50 {
		if err := w.WriteFrame(left, right); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFrame(nil, left[:10]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	frames := 50*FrameSamples + 10
	if info.format != wavFormatPCM || info.channels != 2 || info.rate != 8000 || info.bits != 16 || len(info.data) != 4*frames {
		t.Fatalf("header %+v, %d data bytes", info, len(info.data))
	}
	if riffSize := binary.LittleEndian.Uint32(b[4:]); int(riffSize) != len(b)-8 {
		t.Errorf("RIFF size %d, file %d", riffSize, len(b))
	}
	sample := func(frame, ch int) int16 { return int16(binary.LittleEndian.Uint16(info.data[4*frame+2*ch:])) }
	if sample(5, 0) != left[5] || sample(0, 1) != 100 || sample(1, 1) != -100 || sample(2, 1) != 0 {
		t.Errorf("interleaving: %d %d %d %d", sample(5, 0), sample(0, 1), sample(1, 1), sample(2, 1))
	}
	if sample(50*FrameSamples+3, 0) != 0 || sample(50*FrameSamples+3, 1) != left[3] {
		t.Error("nil left channel not silent")
	}
	// Close again is harmless; the file reads back as 8 kHz mono.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mono, err := LoadWAV(f.Name())
	if err != nil || len(mono) != frames {
		t.Fatalf("read back: %d, %v", len(mono), err)
	}
	if f, ok := DominantFrequency(mono[:8000], []float64{425, 1000}); !ok || f != 1000 {
		t.Errorf("read back tone %v %v", f, ok)
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(makeWAV(wavSpec{format: wavFormatPCM, channels: 1, rate: 8000, bits: 16}, 1000, 10*time.Millisecond))
	f.Add(makeWAV(wavSpec{format: wavFormatPCM, channels: 2, rate: 48000, bits: 16, extended: true}, 1000, 5*time.Millisecond))
	f.Add(makeWAV(wavSpec{format: wavFormatULaw, channels: 1, rate: 8000, bits: 8, extra: true}, 1000, 10*time.Millisecond))
	f.Add(makeWAV(wavSpec{format: wavFormatALaw, channels: 2, rate: 11025, bits: 8}, 1000, 10*time.Millisecond))
	f.Add(makeWAV(wavSpec{format: wavFormatPCM, channels: 1, rate: 4000, bits: 8}, 1000, 10*time.Millisecond))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeWAV(b)
		if err != nil {
			if got != nil {
				t.Fatal("samples with error")
			}
			return
		}
		// Output is bounded by the input: at most 2 samples per byte at
		// the 4 kHz minimum rate.
		if len(got) == 0 || len(got) > 2*len(b) {
			t.Fatalf("%d samples from %d bytes", len(got), len(b))
		}
	})
}
