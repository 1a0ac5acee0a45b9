package main

import (
	"slices"
	"testing"

	"github.com/switchboard/switchboard/internal/media"
)

func TestMonoWAVRoundTrip(t *testing.T) {
	in := []int16{0, 1, -1, 32767, -32768, 1234, -4321}
	out, err := media.DecodeWAV(monoWAV(in))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, out) {
		t.Errorf("decoded %v, want %v", out, in)
	}
}

func TestNormalise(t *testing.T) {
	out := normalise([]int16{100, -200, 50}, 0.5)
	if out[1] != -16384 || out[0] != 8192 {
		t.Errorf("normalise = %v", out)
	}
	if out := normalise([]int16{0, 0}, 0.5); !slices.Equal(out, []int16{0, 0}) {
		t.Errorf("silence = %v", out)
	}
}
