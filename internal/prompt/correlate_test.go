package prompt

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/switchboard/switchboard/internal/media"
)

// correlateNaive is Correlate by definition, in O(n·m).
func correlateNaive(heard, prompt []int16) float64 {
	a, b := preEmphasis(heard), preEmphasis(prompt)
	if len(b) > len(a) {
		a, b = b, a
	}
	if len(b) == 0 {
		return 0
	}
	best := 0.0
	for k := -(len(b) - 1); k < len(a); k++ {
		var dot, ea, eb float64
		l := 0
		for i := range b {
			if j := i + k; j >= 0 && j < len(a) {
				dot += a[j] * b[i]
				ea += a[j] * a[j]
				eb += b[i] * b[i]
				l++
			}
		}
		if 2*l < len(b) || ea < float64(l) || eb < float64(l) {
			continue
		}
		best = max(best, math.Abs(dot)/math.Sqrt(ea*eb))
	}
	return min(best, 1)
}

func noise(r *rand.Rand, n int, rms float64) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(r.NormFloat64() * rms)
	}
	return s
}

// mix adds src scaled by gain into dst at off.
func mix(dst, src []int16, off int, gain float64) {
	for i, v := range src {
		if j := off + i; j >= 0 && j < len(dst) {
			dst[j] = clamp(float64(dst[j]) + gain*float64(v))
		}
	}
}

func clamp(v float64) int16 {
	return int16(max(min(math.Round(v), math.MaxInt16), math.MinInt16))
}

// ulaw is what a party hears over a PCMU call.
func ulaw(s []int16) []int16 {
	out := make([]int16, len(s))
	for i, v := range s {
		out[i] = media.DecodeULaw(media.EncodeULaw(v))
	}
	return out
}

func TestCorrelateMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range [][2]int{{1, 1}, {7, 3}, {3, 7}, {100, 100}, {257, 64}, {64, 257}, {500, 499}} {
		a, b := noise(r, n[0], 3000), noise(r, n[1], 3000)
		mix(a, b, n[0]/3, 0.5) // a real peak somewhere
		got, want := Correlate(a, b), correlateNaive(a, b)
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("lengths %v: Correlate = %.12f, by definition %.12f", n, got, want)
		}
	}
}

func TestCorrelate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	goodbye, _ := Builtin("goodbye")
	recorded, _ := Builtin("recorded")
	hold, _ := Builtin("please-hold")
	ringback := make([]int16, 3*media.SampleRate)
	media.Ringback().ReadFrame(ringback)

	// 0.5 s silence, the prompt at -10 dB, 1 s more, over -44 dBFS noise,
	// heard through µ-law.
	heardIn := func(p []int16) []int16 {
		h := slices.Concat(make([]int16, 4000), make([]int16, len(p)), make([]int16, 8000))
		mix(h, noise(r, len(h), 200), 0, 1)
		mix(h, p, 4000, 0.3)
		return ulaw(h)
	}
	tests := []struct {
		name          string
		heard, prompt []int16
		min, max      float64
	}{
		{"copy", goodbye, goodbye, 0.999, 1},
		{"inverted and quieter", scale(goodbye, -0.1), goodbye, 0.99, 1},
		{"in noise and silence over PCMU", heardIn(recorded), recorded, 0.85, 1},
		{"over PCMU", ulaw(recorded), recorded, 0.95, 1},
		{"short prompt in noise", heardIn(goodbye), goodbye, 0.85, 1},
		{"recording starts a third into the prompt", heardIn(recorded)[4000+len(recorded)/3:], recorded, 0.85, 1},
		{"heard only the middle half", recorded[len(recorded)/4 : 3*len(recorded)/4], recorded, 0.99, 1},
		{"another prompt", heardIn(hold), recorded, 0, 0.45},
		{"another short prompt", heardIn(goodbye), hold, 0, 0.45},
		{"ringback", ringback, recorded, 0, 0.3},
		{"noise", noise(r, 3*media.SampleRate, 3000), recorded, 0, 0.3},
		{"silence", make([]int16, 8000), recorded, 0, 0},
		{"empty heard", nil, recorded, 0, 0},
		{"empty prompt", recorded, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Correlate(tt.heard, tt.prompt)
			if c < tt.min || c > tt.max {
				t.Errorf("Correlate = %.3f, want %.2f-%.2f", c, tt.min, tt.max)

			}
		})
	}
}

func scale(s []int16, g float64) []int16 {
	out := make([]int16, len(s))
	for i, v := range s {
		out[i] = clamp(g * float64(v))
	}
	return out
}

func BenchmarkCorrelate(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	heard := noise(r, 10*media.SampleRate, 1000)
	p, _ := Builtin("enter-number") // about 2 s
	for b.Loop() {
		Correlate(heard, p)
	}
}
