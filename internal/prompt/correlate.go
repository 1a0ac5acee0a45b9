package prompt

import (
	"math"
	"math/bits"
	"math/cmplx"
)

// Correlate tells whether heard contains prompt: it returns the peak of the
// normalised cross-correlation of the two over every lag, from 0 (unrelated,
// or either is empty or silent) to 1 (a copy, at any gain or polarity).
// Both are pre-emphasised first (y[n] = x[n] - 0.95·x[n-1]): the vowels of one
// synthetic voice look alike in their strong low frequencies, and without it
// different built-in prompts sharing a sound correlate up to 0.6.
// The shorter signal is slid along the longer one, so heard may be a longer
// recording that contains the prompt somewhere, or a fragment of it; at least
// half of the shorter signal must overlap the longer at a lag for that lag to
// count, so a prompt cut off by the start or end of a recording is still found
// when at least half of it was heard. G.711 round trips keep a copy above
// 0.95; different speech, noise and tones stay well under 0.5.
// It runs in O(n log n) with n = len(heard)+len(prompt).
func Correlate(heard, prompt []int16) float64 {
	a, b := preEmphasis(heard), preEmphasis(prompt) // b slides along a
	if len(b) > len(a) {
		a, b = b, a
	}
	if len(b) == 0 {
		return 0
	}
	minOverlap := (len(b) + 1) / 2

	n := 1 << bits.Len(uint(len(a)+len(b)-1))
	x := make([]complex128, n) // a + i·b, transformed once
	for i, v := range a {
		x[i] = complex(v, 0)
	}
	for i, v := range b {
		x[i] += complex(0, v)
	}
	fft(x, false)
	// Split X into A and B (real-input symmetry), then form A·conj(B).
	y := make([]complex128, n)
	for k := range n {
		xk, xr := x[k], cmplx.Conj(x[(n-k)%n])
		ak := (xk + xr) / 2
		bk := (xk - xr) / complex(0, 2)
		y[k] = ak * cmplx.Conj(bk)
	}
	fft(y, true) // y[m] = sum_i a[i+m]·b[i]; a negative lag m is at n+m

	pa, pb := prefixEnergy(a), prefixEnergy(b)
	best := 0.0
	for k := -(len(b) - 1); k < len(a); k++ {
		i0 := max(0, -k)
		i1 := min(len(b), len(a)-k)
		l := i1 - i0
		if l < minOverlap {
			continue
		}
		ea := pa[k+i1] - pa[k+i0]
		eb := pb[i1] - pb[i0]
		// Under RMS 1 the window is digital silence plus rounding.
		if ea < float64(l) || eb < float64(l) {
			continue
		}
		idx := k
		if idx < 0 {
			idx += n
		}
		c := math.Abs(real(y[idx])/float64(n)) / math.Sqrt(ea*eb)
		best = max(best, c)
	}
	return min(best, 1)
}

func preEmphasis(s []int16) []float64 {
	out := make([]float64, len(s))
	prev := 0.0
	for i, v := range s {
		out[i] = float64(v) - 0.95*prev
		prev = float64(v)
	}
	return out
}

func prefixEnergy(s []float64) []float64 {
	p := make([]float64, len(s)+1)
	for i, v := range s {
		p[i+1] = p[i] + v*v
	}
	return p
}

// fft transforms x in place (len(x) a power of two); the inverse is not
// scaled by 1/n.
func fft(x []complex128, inverse bool) {
	n := len(x)
	if n < 2 {
		return
	}
	shift := 64 - bits.Len(uint(n-1))
	for i := range n {
		j := int(bits.Reverse64(uint64(i)) >> shift)
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	sign := -1.0
	if inverse {
		sign = 1
	}
	tw := make([]complex128, n/2)
	for k := range tw {
		s, c := math.Sincos(sign * 2 * math.Pi * float64(k) / float64(n))
		tw[k] = complex(c, s)
	}
	for size := 2; size <= n; size <<= 1 {
		half, step := size/2, n/size
		for start := 0; start < n; start += size {
			for k := range half {
				t := tw[k*step] * x[start+k+half]
				u := x[start+k]
				x[start+k] = u + t
				x[start+k+half] = u - t
			}
		}
	}
}
