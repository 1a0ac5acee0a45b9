package media

import (
	"errors"
	"io"
	"math"
	"testing"
	"time"
)

// readSamples reads d of audio from src (fewer if it ends).
func readSamples(t *testing.T, src Source, d time.Duration) []int16 {
	t.Helper()
	want := int(d.Seconds() * SampleRate)
	out := make([]int16, 0, want)
	frame := make([]int16, FrameSamples)
	for len(out) < want {
		n, err := src.ReadFrame(frame)
		out = append(out, frame[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// samplesAt returns 100 ms of samples starting at offset.
func samplesAt(s []int16, offset time.Duration) []int16 {
	i := int(offset.Seconds() * SampleRate)
	return s[i : i+800]
}

var toneCandidates = []float64{350, 425, 440, 480, 620, 1000}

func TestToneCadences(t *testing.T) {
	type probe struct {
		at    time.Duration
		freqs []float64 // empty: silence
	}
	tests := []struct {
		name   string
		src    Source
		length time.Duration
		probes []probe
	}{
		{"Ringback", Ringback(), 11 * time.Second, []probe{
			{100 * time.Millisecond, []float64{425}},
			{800 * time.Millisecond, []float64{425}},
			{1500 * time.Millisecond, nil},
			{4800 * time.Millisecond, nil},
			{5200 * time.Millisecond, []float64{425}}, // second cycle
			{7 * time.Second, nil},
			{10300 * time.Millisecond, []float64{425}},
		}},
		{"RingbackUS", RingbackUS(), 7 * time.Second, []probe{
			{100 * time.Millisecond, []float64{440, 480}},
			{1800 * time.Millisecond, []float64{440, 480}},
			{2500 * time.Millisecond, nil},
			{5800 * time.Millisecond, nil},
			{6200 * time.Millisecond, []float64{440, 480}},
		}},
		{"Busy", Busy(), 3 * time.Second, []probe{
			{100 * time.Millisecond, []float64{425}},
			{600 * time.Millisecond, nil},
			{1100 * time.Millisecond, []float64{425}},
			{1700 * time.Millisecond, nil},
			{2200 * time.Millisecond, []float64{425}},
		}},
		{"Beep", Beep(), 2 * time.Second, []probe{
			{0, []float64{1000}},
			{350 * time.Millisecond, []float64{1000}},
		}},
		{"Sine 620", Sine(620), time.Second, []probe{{0, []float64{620}}, {850 * time.Millisecond, []float64{620}}}},
		{"Silence", Silence(), time.Second, []probe{{0, nil}, {500 * time.Millisecond, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := readSamples(t, tt.src, tt.length)
			for _, p := range tt.probes {
				block := samplesAt(s, p.at)
				f, ok := DominantFrequency(block, toneCandidates)
				if len(p.freqs) == 0 {
					if ok || RMS(block) != 0 {
						t.Errorf("at %v: heard %v Hz (rms %.0f), want silence", p.at, f, RMS(block))
					}
					continue
				}
				if !ok {
					t.Errorf("at %v: silence, want %v", p.at, p.freqs)
					continue
				}
				share := 1 / float64(len(p.freqs))
				for _, want := range p.freqs {
					if got := DetectTone(block, want); got < 0.8*share {
						t.Errorf("at %v: %v Hz holds %.2f of the energy, want about %.2f", p.at, want, got, share)
					}
				}
				for _, other := range toneCandidates {
					isWanted := false
					for _, w := range p.freqs {
						isWanted = isWanted || w == other
					}
					if got := DetectTone(block, other); !isWanted && got > 0.1 {
						t.Errorf("at %v: %v Hz holds %.2f, want ~0", p.at, other, got)
					}
				}
			}
		})
	}
}

func TestToneLengthAndLevel(t *testing.T) {
	s := readSamples(t, Beep(), 5*time.Second)
	if len(s) != 4000 {
		t.Errorf("Beep is %d samples, want 4000", len(s))
	}
	if n, err := Beep().ReadFrame(make([]int16, 0)); n != 0 || err != nil {
		t.Errorf("empty read: %d %v", n, err)
	}
	b := Beep()
	frames := 0
	for {
		n, err := b.ReadFrame(make([]int16, FrameSamples))
		if err == io.EOF {
			break
		}
		if n != FrameSamples {
			t.Fatalf("frame %d has %d samples", frames, n)
		}
		frames++
	}
	if frames != 25 {
		t.Errorf("Beep frames = %d, want 25", frames)
	}
	peak := 0.0
	for _, v := range s {
		peak = math.Max(peak, math.Abs(float64(v)))
	}
	if peak < 0.29*32767 || peak > 0.31*32767 {
		t.Errorf("peak %v, want 0.3 of full scale", peak)
	}
	us := readSamples(t, RingbackUS(), time.Second)
	for _, v := range us {
		if math.Abs(float64(v)) > 0.301*32767 {
			t.Fatalf("two-tone sum exceeds level: %d", v)
		}
	}
}

func TestSourcesCompose(t *testing.T) {
	src := Concat(Limit(Sine(1000), 100*time.Millisecond), Limit(Silence(), 50*time.Millisecond), NewPCMSource([]int16{1, 2, 3}, false))
	s := readSamples(t, src, 10*time.Second)
	if len(s) != 800+400+3 {
		t.Fatalf("len %d", len(s))
	}
	if f, ok := DominantFrequency(s[:800], toneCandidates); !ok || f != 1000 {
		t.Errorf("first part %v %v", f, ok)
	}
	if RMS(s[800:1200]) != 0 || s[1200] != 1 || s[1202] != 3 {
		t.Errorf("tail %v", s[1195:])
	}
	loop := NewPCMSource([]int16{5, 6, 7}, true)
	frame := make([]int16, 8)
	if n, _ := loop.ReadFrame(frame); n != 8 || frame[3] != 5 || frame[7] != 6 {
		t.Errorf("loop %v", frame)
	}
	if n, err := NewPCMSource(nil, true).ReadFrame(frame); n != 0 || err != io.EOF {
		t.Errorf("empty loop: %d %v", n, err)
	}
}

func TestDetectToneEdges(t *testing.T) {
	if DetectTone(nil, 1000) != 0 || DetectTone(make([]int16, 160), 1000) != 0 {
		t.Error("silence should give 0")
	}
	if _, ok := DominantFrequency(make([]int16, 800), toneCandidates); ok {
		t.Error("silence has no dominant frequency")
	}
	s := readSamples(t, Sine(2000), 100*time.Millisecond)
	if _, ok := DominantFrequency(s, []float64{425, 440, 480}); ok {
		t.Error("2000 Hz matched a ringback candidate")
	}
	// A 20 ms frame is enough to tell 425 from 1000 Hz.
	s = readSamples(t, Sine(425), FrameDuration)
	if f, ok := DominantFrequency(s, []float64{425, 1000}); !ok || f != 425 {
		t.Errorf("20 ms: %v %v", f, ok)
	}
}

func BenchmarkToneFrame(b *testing.B) {
	src := RingbackUS()
	frame := make([]int16, FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		src.ReadFrame(frame)
	}
}

func BenchmarkDetectTone800(b *testing.B) {
	s := make([]int16, 800)
	Sine(425).ReadFrame(s)
	b.ReportAllocs()
	for b.Loop() {
		DetectTone(s, 425)
	}
}

func TestHoldMusicLoopsItsNotes(t *testing.T) {
	src := HoldMusic()
	buf := make([]int16, 8*SampleRate/10*5) // 4 s: ten 400 ms notes
	n, err := src.ReadFrame(buf)
	for n < len(buf) && err == nil {
		var m int
		m, err = src.ReadFrame(buf[n:])
		n += m
	}
	if err != nil {
		t.Fatal(err)
	}
	note := int(holdNote.Seconds() * SampleRate)
	for i := range 10 {
		want := holdNotes[i%len(holdNotes)]
		block := buf[i*note : i*note+note*3/4]
		if got, ok := DominantFrequency(block, holdNotes[:]); !ok || got != want {
			t.Errorf("note %d: %v Hz (%v), want %v", i, got, ok, want)
		}
	}
}
