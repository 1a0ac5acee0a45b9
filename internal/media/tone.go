package media

import (
	"io"
	"math"
	"time"
)

// Audio framing shared by the whole package.
const (
	SampleRate    = 8000                  // Hz, G.711 and telephone-event clock
	FrameSamples  = 160                   // samples in one 20 ms frame
	FrameDuration = 20 * time.Millisecond // one frame
)

// Source produces 8 kHz mono 16-bit linear audio. ReadFrame fills dst (normally
// FrameSamples long) and returns how many samples it wrote; a finite source
// returns 0, io.EOF once it is exhausted, a looping one never ends. A Source is
// not safe for concurrent use.
type Source interface {
	ReadFrame(dst []int16) (n int, err error)
}

// ToneSpec describes a tone: Freqs summed, sounding for On, then silent for
// Off, repeated forever unless Once. Off == 0 with !Once is a continuous tone.
type ToneSpec struct {
	Freqs []float64     // Hz; one or two usually
	On    time.Duration // sounding part of the cadence (0: continuous)
	Off   time.Duration // silent part of the cadence
	Once  bool          // play one on+off cycle, then io.EOF
	Level float64       // peak of the sum, fraction of full scale; 0 means 0.3
}

// Standard tones. Ringback, RingbackUS and Busy loop; Beep ends.
var (
	RingbackSpec   = ToneSpec{Freqs: []float64{425}, On: time.Second, Off: 4 * time.Second}
	RingbackUSSpec = ToneSpec{Freqs: []float64{440, 480}, On: 2 * time.Second, Off: 4 * time.Second}
	BusySpec       = ToneSpec{Freqs: []float64{425}, On: 500 * time.Millisecond, Off: 500 * time.Millisecond}
	BeepSpec       = ToneSpec{Freqs: []float64{1000}, On: 500 * time.Millisecond, Once: true}
)

// Ringback is the European ring tone: 425 Hz, 1 s on, 4 s off, looping.
func Ringback() Source { return NewTone(RingbackSpec) }

// RingbackUS is the North American ring tone: 440+480 Hz, 2 s on, 4 s off.
func RingbackUS() Source { return NewTone(RingbackUSSpec) }

// Busy is the European busy tone: 425 Hz, 0.5 s on, 0.5 s off, looping.
func Busy() Source { return NewTone(BusySpec) }

// Beep is a single 1000 Hz tone of 0.5 s (the voicemail beep).
func Beep() Source { return NewTone(BeepSpec) }

// Sine is a continuous tone of one or more frequencies.
func Sine(freqs ...float64) Source { return NewTone(ToneSpec{Freqs: freqs}) }

// Silence is endless silence; wrap it in Limit for a pause.
func Silence() Source { return silence{} }

type silence struct{}

func (silence) ReadFrame(dst []int16) (int, error) {
	clear(dst)
	return len(dst), nil
}

// NewTone returns a generator for spec.
func NewTone(spec ToneSpec) Source {
	level := spec.Level
	if level <= 0 {
		level = 0.3
	}
	t := &tone{
		on:   durationSamples(spec.On),
		off:  durationSamples(spec.Off),
		once: spec.Once,
	}
	if len(spec.Freqs) > 0 {
		t.amp = level * math.MaxInt16 / float64(len(spec.Freqs))
	}
	for _, f := range spec.Freqs {
		t.step = append(t.step, 2*math.Pi*f/SampleRate)
	}
	t.phase = make([]float64, len(t.step))
	if t.on == 0 && t.off == 0 && t.once {
		t.done = true
	}
	return t
}

type tone struct {
	amp         float64
	step, phase []float64
	on, off     int // cadence in samples; on == 0 && off == 0: continuous
	once        bool
	pos         int // position in the cadence cycle
	done        bool
}

func (t *tone) ReadFrame(dst []int16) (int, error) {
	if t.done {
		return 0, io.EOF
	}
	if len(dst) == 0 {
		return 0, nil
	}
	cycle := t.on + t.off
	n := 0
	for n < len(dst) {
		if cycle > 0 && t.pos >= cycle {
			if t.once {
				t.done = true
				break
			}
			t.pos = 0
		}
		sounding := cycle == 0 || t.pos < t.on
		var v float64
		if sounding {
			for i, s := range t.step {
				v += math.Sin(t.phase[i])
				t.phase[i] += s
				if t.phase[i] >= 2*math.Pi {
					t.phase[i] -= 2 * math.Pi
				}
			}
		} else {
			// Restart each burst at phase 0 so every "on" sounds the same.
			clear(t.phase)
		}
		dst[n] = int16(math.Round(v * t.amp))
		n++
		t.pos++
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func durationSamples(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(d.Seconds()*SampleRate + 0.5)
}

// Limit returns a Source that ends after d of src (or when src ends).
func Limit(src Source, d time.Duration) Source {
	return &limited{src: src, left: durationSamples(d)}
}

type limited struct {
	src  Source
	left int
}

func (l *limited) ReadFrame(dst []int16) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if len(dst) > l.left {
		dst = dst[:l.left]
	}
	n, err := l.src.ReadFrame(dst)
	l.left -= n
	return n, err
}

// Concat plays sources one after another and ends after the last.
func Concat(srcs ...Source) Source { return &concat{srcs: srcs} }

type concat struct{ srcs []Source }

func (c *concat) ReadFrame(dst []int16) (int, error) {
	for len(c.srcs) > 0 {
		n, err := c.srcs[0].ReadFrame(dst)
		if n > 0 || err == nil {
			return n, nil
		}
		if err != io.EOF {
			return 0, err
		}
		c.srcs = c.srcs[1:]
	}
	return 0, io.EOF
}

// NewPCMSource plays samples (8 kHz mono, for example a prompt from ReadWAV),
// once or looping. An empty slice ends at once even when looping.
func NewPCMSource(samples []int16, loop bool) Source {
	return &pcmSource{samples: samples, loop: loop}
}

type pcmSource struct {
	samples []int16
	pos     int
	loop    bool
}

func (p *pcmSource) ReadFrame(dst []int16) (int, error) {
	if len(dst) == 0 && (p.loop || p.pos < len(p.samples)) && len(p.samples) > 0 {
		return 0, nil
	}
	n := 0
	for n < len(dst) && len(p.samples) > 0 {
		if p.pos >= len(p.samples) {
			if !p.loop {
				break
			}
			p.pos = 0
		}
		c := copy(dst[n:], p.samples[p.pos:])
		p.pos += c
		n += c
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// DetectTone returns the share of the block's energy found at freq (Hz),
// measured with the Goertzel algorithm: about 1 for a pure tone at freq,
// about 0.5 for each component of an equal two-tone mix, near 0 for other
// frequencies and 0 for digital silence. Resolution is about 8000/len(samples)
// Hz: use 800 samples (100 ms) or more to tell 425 Hz from 440 Hz.
func DetectTone(samples []int16, freq float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/SampleRate)
	var s1, s2, energy float64
	for _, x := range samples {
		v := float64(x)
		s0 := v + coeff*s1 - s2
		s2, s1 = s1, s0
		energy += v * v
	}
	if energy == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	return 2 * power / (float64(len(samples)) * energy)
}

// RMS returns the root mean square of samples (0..32768).
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var e float64
	for _, x := range samples {
		e += float64(x) * float64(x)
	}
	return math.Sqrt(e / float64(len(samples)))
}

// Thresholds of DominantFrequency.
const (
	silenceRMS   = 50  // about -56 dBFS
	minToneShare = 0.2 // of the block energy
)

// DominantFrequency returns the candidate frequency holding the largest share
// of the block's energy, and false when the block is silent (RMS under about
// -56 dBFS) or no candidate holds at least 20% of the energy. For a two-tone
// signal such as 440+480 Hz it returns either component.
func DominantFrequency(samples []int16, candidates []float64) (float64, bool) {
	if RMS(samples) < silenceRMS {
		return 0, false
	}
	best, bestShare := 0.0, 0.0
	for _, f := range candidates {
		if s := DetectTone(samples, f); s > bestShare {
			best, bestShare = f, s
		}
	}
	if bestShare < minToneShare {
		return 0, false
	}
	return best, true
}

// HoldMusic is a soft four-note chime in a loop, the music of a park lot or
// a hold without a prompt of its own.
func HoldMusic() Source { return &holdMusic{} }

var holdNotes = [...]float64{523.25, 659.25, 783.99, 659.25} // C5 E5 G5 E5

const holdNote = 400 * time.Millisecond

type holdMusic struct {
	note int
	cur  Source
}

func (h *holdMusic) ReadFrame(dst []int16) (int, error) {
	for {
		if h.cur == nil {
			f := holdNotes[h.note%len(holdNotes)]
			h.cur = NewTone(ToneSpec{Freqs: []float64{f}, On: holdNote - 50*time.Millisecond, Off: 50 * time.Millisecond, Once: true, Level: 0.15})
			h.note++
		}
		if n, err := h.cur.ReadFrame(dst); n > 0 || err == nil {
			return n, nil
		}
		h.cur = nil
	}
}
