package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// WAV format tags we recognise (in the fmt chunk or an extensible subformat).
const (
	wavFormatPCM        = 0x0001
	wavFormatFloat      = 0x0003
	wavFormatALaw       = 0x0006
	wavFormatULaw       = 0x0007
	wavFormatExtensible = 0xFFFE
)

// Limits of ReadWAV and DecodeWAV.
const (
	// MaxWAVSize is the largest file ReadWAV and LoadWAV accept (128 MiB,
	// over an hour of 16-bit 16 kHz stereo).
	MaxWAVSize = 128 << 20
	minWAVRate = 4000
	maxWAVRate = 768000
	maxWAVChan = 32
)

// LoadWAV reads a WAV file and returns its audio as 8 kHz mono (see DecodeWAV).
func LoadWAV(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	samples, err := ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return samples, nil
}

// ReadWAV reads a whole WAV file of at most MaxWAVSize bytes from r and
// returns its audio as 8 kHz mono (see DecodeWAV).
func ReadWAV(r io.Reader) ([]int16, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxWAVSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxWAVSize {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrInvalidWAV, MaxWAVSize)
	}
	return DecodeWAV(data)
}

// DecodeWAV decodes a RIFF/WAVE file held in data and returns its audio as
// 8 kHz mono 16-bit samples: channels are averaged, and other sample rates are
// low-pass filtered (windowed sinc) and linearly interpolated to 8 kHz.
// It reads 8- and 16-bit PCM, µ-law (format 7) and A-law (format 6), plain or
// WAVE_FORMAT_EXTENSIBLE, any channel count up to 32 and rates of 4-768 kHz.
// Anything else is an error wrapping ErrNotWAV, ErrTruncatedWAV, ErrInvalidWAV
// or ErrUnsupportedWAV that names the problem. Header sizes are never trusted
// for allocation: buffers are sized from the bytes actually present.
func DecodeWAV(data []byte) ([]int16, error) {
	w, err := parseWAV(data)
	if err != nil {
		return nil, err
	}
	out := resampleTo8k(w.mono(), w.rate)
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: audio shorter than one 8 kHz sample", ErrInvalidWAV)
	}
	return out, nil
}

// wavInfo is a parsed, validated WAV file.
type wavInfo struct {
	format   uint16 // PCM, A-law or µ-law after resolving extensible
	channels int
	rate     int
	bits     int
	data     []byte // whole sample frames only
}

func parseWAV(b []byte) (wavInfo, error) {
	var w wavInfo
	if len(b) < 12 {
		if len(b) >= 4 && string(b[:4]) != "RIFF" {
			return w, ErrNotWAV
		}
		return w, fmt.Errorf("%w: file is %d bytes, the RIFF header needs 12", ErrTruncatedWAV, len(b))
	}
	switch string(b[:4]) {
	case "RIFF":
	case "RIFX":
		return w, fmt.Errorf("%w: big-endian RIFX", ErrUnsupportedWAV)
	case "RF64":
		return w, fmt.Errorf("%w: RF64 (64-bit WAV)", ErrUnsupportedWAV)
	default:
		return w, ErrNotWAV
	}
	if string(b[8:12]) != "WAVE" {
		return w, fmt.Errorf("%w: RIFF form type is %q, not WAVE", ErrNotWAV, b[8:12])
	}

	var fmtChunk, dataChunk []byte
	haveFmt, haveData := false, false
	off := uint64(12)
	end := uint64(len(b))
	for off+8 <= end && !(haveFmt && haveData) {
		id := string(b[off : off+4])
		size := uint64(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		left := end - body
		if size > left {
			switch {
			case id == "data" && size == math.MaxUint32:
				size = left // written by a streaming encoder that never patched the size
			case id == "data":
				return w, fmt.Errorf("%w: data chunk declares %d bytes, only %d present", ErrTruncatedWAV, size, left)
			default:
				return w, fmt.Errorf("%w: %q chunk declares %d bytes, only %d present", ErrTruncatedWAV, id, size, left)
			}
		}
		switch id {
		case "fmt ":
			if !haveFmt {
				fmtChunk, haveFmt = b[body:body+size], true
			}
		case "data":
			if !haveData {
				dataChunk, haveData = b[body:body+size], true
			}
		}
		off = body + size + size&1 // chunks are padded to even sizes
	}
	if !haveFmt {
		return w, fmt.Errorf("%w: fmt chunk missing", ErrInvalidWAV)
	}
	if !haveData {
		return w, fmt.Errorf("%w: data chunk missing", ErrInvalidWAV)
	}
	if err := w.parseFmt(fmtChunk); err != nil {
		return w, err
	}
	frame := w.channels * w.bits / 8
	whole := len(dataChunk) / frame * frame
	if whole == 0 {
		return w, fmt.Errorf("%w: data chunk holds no complete sample (%d bytes, %d per frame)", ErrInvalidWAV, len(dataChunk), frame)
	}
	w.data = dataChunk[:whole]
	return w, nil
}

func (w *wavInfo) parseFmt(f []byte) error {
	if len(f) < 16 {
		return fmt.Errorf("%w: fmt chunk is %d bytes, needs 16", ErrInvalidWAV, len(f))
	}
	w.format = binary.LittleEndian.Uint16(f[0:2])
	w.channels = int(binary.LittleEndian.Uint16(f[2:4]))
	w.rate = int(binary.LittleEndian.Uint32(f[4:8]))
	w.bits = int(binary.LittleEndian.Uint16(f[14:16]))
	if w.format == wavFormatExtensible {
		// cbSize(2) validBits(2) channelMask(4) subformat GUID(16): the
		// GUID's first two bytes are the real format tag.
		if len(f) < 40 {
			return fmt.Errorf("%w: extensible fmt chunk is %d bytes, needs 40", ErrInvalidWAV, len(f))
		}
		w.format = binary.LittleEndian.Uint16(f[24:26])
	}
	switch {
	case w.channels == 0:
		return fmt.Errorf("%w: zero channels", ErrInvalidWAV)
	case w.channels > maxWAVChan:
		return fmt.Errorf("%w: %d channels (at most %d)", ErrInvalidWAV, w.channels, maxWAVChan)
	case w.rate == 0:
		return fmt.Errorf("%w: sample rate 0", ErrInvalidWAV)
	case w.rate < minWAVRate || w.rate > maxWAVRate:
		return fmt.Errorf("%w: sample rate %d Hz (want %d-%d)", ErrInvalidWAV, w.rate, minWAVRate, maxWAVRate)
	}
	switch w.format {
	case wavFormatPCM:
		if w.bits != 8 && w.bits != 16 {
			return fmt.Errorf("%w: %d-bit PCM (only 8- and 16-bit)", ErrUnsupportedWAV, w.bits)
		}
	case wavFormatALaw, wavFormatULaw:
		if w.bits != 8 {
			return fmt.Errorf("%w: G.711 with %d bits per sample (must be 8)", ErrInvalidWAV, w.bits)
		}
	case wavFormatFloat:
		return fmt.Errorf("%w: IEEE float samples (format 3); convert to 16-bit PCM", ErrUnsupportedWAV)
	default:
		return fmt.Errorf("%w: format 0x%04X%s; use 16-bit PCM, µ-law or A-law", ErrUnsupportedWAV, w.format, wavFormatName(w.format))
	}
	return nil
}

func wavFormatName(tag uint16) string {
	switch tag {
	case 0x0002:
		return " (MS ADPCM)"
	case 0x0011:
		return " (IMA ADPCM)"
	case 0x0031:
		return " (GSM 6.10)"
	case 0x0055:
		return " (MP3)"
	}
	return ""
}

// mono decodes and averages the channels.
func (w *wavInfo) mono() []int16 {
	bps := w.bits / 8
	frames := len(w.data) / (bps * w.channels)
	out := make([]int16, frames)
	pos := 0
	for i := range out {
		var sum int32
		for range w.channels {
			var s int16
			switch {
			case w.format == wavFormatULaw:
				s = ulawTable[w.data[pos]]
			case w.format == wavFormatALaw:
				s = alawTable[w.data[pos]]
			case bps == 1: // 8-bit PCM is unsigned
				s = int16(int(w.data[pos])-128) << 8
			default:
				s = int16(binary.LittleEndian.Uint16(w.data[pos:]))
			}
			sum += int32(s)
			pos += bps
		}
		out[i] = int16(sum / int32(w.channels))
	}
	return out
}

// resampleTo8k converts in (at rate Hz) to 8 kHz. Downsampling first applies
// a Blackman-windowed sinc low-pass (cutoff 3.4 kHz, stop band from 4.6 kHz:
// whatever aliases lands above the telephone band), evaluated only where the
// linear interpolation needs it. Upsampling interpolates linearly.
func resampleTo8k(in []int16, rate int) []int16 {
	if rate == SampleRate || len(in) == 0 {
		return in
	}
	outLen := int(int64(len(in)) * SampleRate / int64(rate))
	out := make([]int16, outLen)
	at := func(i int) float64 { return float64(in[min(i, len(in)-1)]) }
	if rate > SampleRate {
		h := lowPass(rate)
		half := len(h) / 2
		at = func(i int) float64 {
			var acc float64
			lo := i - half
			for k, c := range h {
				j := lo + k
				if j >= 0 && j < len(in) {
					acc += c * float64(in[j])
				}
			}
			return acc
		}
	}
	ratio := float64(rate) / SampleRate
	prevI, a, b := -1, 0.0, 0.0
	for j := range out {
		pos := float64(j) * ratio
		i := int(pos)
		frac := pos - float64(i)
		switch {
		case i == prevI:
		case i == prevI+1:
			a, b = b, at(i+1)
		default:
			a, b = at(i), at(i+1)
		}
		prevI = i
		out[j] = clamp16(a + (b-a)*frac)
	}
	return out
}

func lowPass(rate int) []float64 {
	const pass, stop = 3400.0, 4600.0
	fc := (pass + stop) / 2 / float64(rate) // cycles per input sample
	n := int(5.5*float64(rate)/(stop-pass)) | 1
	n = min(n, 511)
	h := make([]float64, n)
	m := float64(n - 1)
	var sum float64
	for k := range h {
		x := float64(k) - m/2
		v := 2 * fc
		if x != 0 {
			v = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		win := 0.42 - 0.5*math.Cos(2*math.Pi*float64(k)/m) + 0.08*math.Cos(4*math.Pi*float64(k)/m)
		h[k] = v * win
		sum += h[k]
	}
	for k := range h {
		h[k] /= sum
	}
	return h
}

func clamp16(v float64) int16 {
	v = math.Round(v)
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}

// WAVWriter streams a stereo 16-bit 8 kHz WAV file (a call recording: caller
// left, callee right). The header is written first with zero sizes and
// patched by Close, so w must be seekable.
type WAVWriter struct {
	w     io.WriteSeeker
	start int64  // offset of the RIFF header in w
	size  uint32 // data bytes written
	buf   []byte
	err   error
}

const wavHeaderSize = 44

// maxWAVData keeps the RIFF size (data + 36) within 32 bits.
const maxWAVData = math.MaxUint32 - 36 - 3

// NewWAVWriter writes the header to w at its current offset.
func NewWAVWriter(w io.WriteSeeker) (*WAVWriter, error) {
	start, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("wav: %w", err)
	}
	ww := &WAVWriter{w: w, start: start, buf: make([]byte, 4*FrameSamples)}
	if _, err := w.Write(wavHeader(0)); err != nil {
		return nil, fmt.Errorf("wav: write header: %w", err)
	}
	return ww, nil
}

func wavHeader(dataSize uint32) []byte {
	h := make([]byte, wavHeaderSize)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+dataSize)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], wavFormatPCM)
	binary.LittleEndian.PutUint16(h[22:], 2)
	binary.LittleEndian.PutUint32(h[24:], SampleRate)
	binary.LittleEndian.PutUint32(h[28:], SampleRate*4)
	binary.LittleEndian.PutUint16(h[32:], 4)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], dataSize)
	return h
}

// WriteFrame appends max(len(left), len(right)) stereo samples; the shorter
// channel is padded with silence. Either may be nil.
func (w *WAVWriter) WriteFrame(left, right []int16) error {
	if w.err != nil {
		return w.err
	}
	n := max(len(left), len(right))
	if uint64(w.size)+uint64(n)*4 > maxWAVData {
		w.err = ErrWAVTooLarge
		return w.err
	}
	if cap(w.buf) < 4*n {
		w.buf = make([]byte, 4*n)
	}
	buf := w.buf[:4*n]
	for i := range n {
		var l, r int16
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		binary.LittleEndian.PutUint16(buf[4*i:], uint16(l))
		binary.LittleEndian.PutUint16(buf[4*i+2:], uint16(r))
	}
	if _, err := w.w.Write(buf); err != nil {
		w.err = fmt.Errorf("wav: write: %w", err)
		return w.err
	}
	w.size += uint32(4 * n)
	return nil
}

// Close patches the sizes in the header and leaves w positioned at the end.
// It does not close w. Calling Close again rewrites the same sizes.
func (w *WAVWriter) Close() error {
	if w.err != nil && !errors.Is(w.err, ErrWAVTooLarge) {
		return w.err
	}
	var sz [4]byte
	patch := func(off int64, v uint32) error {
		if _, err := w.w.Seek(w.start+off, io.SeekStart); err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(sz[:], v)
		_, err := w.w.Write(sz[:])
		return err
	}
	if err := patch(4, 36+w.size); err != nil {
		return fmt.Errorf("wav: patch header: %w", err)
	}
	if err := patch(40, w.size); err != nil {
		return fmt.Errorf("wav: patch header: %w", err)
	}
	if _, err := w.w.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("wav: %w", err)
	}
	return nil
}
