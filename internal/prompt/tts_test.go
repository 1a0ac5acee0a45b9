package prompt

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
)

// requireESpeak fails (not skips) without espeak-ng: CI installs it, and a
// skipped TTS test would hide a broken say: path.
func requireESpeak(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatal("espeak-ng is not installed (apt-get install espeak-ng); .ci/run installs it")
	}
}

// fakeESpeak puts a shell script named espeak-ng alone on PATH.
func fakeESpeak(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "espeak-ng"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+"/usr/bin:/bin")
}

func TestESpeakRender(t *testing.T) {
	requireESpeak(t)
	ctx := context.Background()
	s, err := ESpeak{}.Render(ctx, "please hold the line")
	if err != nil {
		t.Fatal(err)
	}
	if d := float64(len(s)) / media.SampleRate; d < 0.5 || d > 4 {
		t.Errorf("rendered %.2f s, want 0.5-4 s", d)
	}
	if rms := media.RMS(s); rms < 300 {
		t.Errorf("RMS = %.0f", rms)
	}
	// Trimmed: speech starts and ends within the 40 ms margin.
	if head := media.RMS(s[:trimPad/2]); head > trimLevel {
		t.Errorf("leading silence not trimmed? RMS of first 20 ms = %.0f", head)
	}
	if len(TrimSilence(s)) != len(s) {
		t.Errorf("Render output is not trimmed")
	}

	again, err := ESpeak{Voice: DefaultVoice}.Render(ctx, "  please hold the line ")
	if err != nil {
		t.Fatal(err)
	}
	if &again[0] != &s[0] {
		t.Error("second rendering of the same text was not served from the cache")
	}

	// A text that looks like an option is still said.
	if s, err := (ESpeak{}).Render(ctx, "-v is not an option here"); err != nil || len(s) == 0 {
		t.Errorf("dash text: %d samples, %v", len(s), err)
	}
}

func TestESpeakErrors(t *testing.T) {
	requireESpeak(t)
	ctx := context.Background()
	_, err := ESpeak{Voice: "zzz"}.Render(ctx, "hello")
	if err == nil || !strings.Contains(err.Error(), `voice "zzz"`) {
		t.Errorf("bad voice: %v", err)
	}
	if _, err := (ESpeak{}).Render(ctx, "  "); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty text: %v", err)
	}
	if _, err := (ESpeak{}).Render(ctx, strings.Repeat("a", MaxSayText+1)); err == nil {
		t.Error("overlong text accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (ESpeak{}).Render(cctx, "cancelled before it started"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestESpeakMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := ESpeak{}.Render(context.Background(), "nobody will ever hear this")
	if !errors.Is(err, ErrESpeakMissing) {
		t.Fatalf("err = %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "espeak-ng") || !strings.Contains(msg, "apt-get install espeak-ng") {
		t.Errorf("message %q does not name the binary and the package", msg)
	}
}

func TestESpeakTimeout(t *testing.T) {
	fakeESpeak(t, "exec sleep 10")
	start := time.Now()
	_, err := ESpeak{Timeout: 200 * time.Millisecond}.Render(context.Background(), "a slow engine")
	if err == nil || err.Error() != "espeak-ng timed out after 200ms" {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestESpeakBadOutput(t *testing.T) {
	fakeESpeak(t, "echo garbage")
	_, err := ESpeak{}.Render(context.Background(), "garbage out")
	if !errors.Is(err, media.ErrNotWAV) || !strings.HasPrefix(err.Error(), "espeak-ng output: ") {
		t.Errorf("err = %v", err)
	}
	fakeESpeak(t, "echo 'cannot open audio' >&2; exit 3")
	_, err = ESpeak{}.Render(context.Background(), "failing engine")
	if err == nil || !strings.Contains(err.Error(), "exit status 3: cannot open audio") {
		t.Errorf("err = %v", err)
	}
}

func TestFixStreamedWAV(t *testing.T) {
	// A 22050 Hz mono WAV as espeak-ng writes it to a pipe: placeholder sizes.
	pcm := make([]byte, 2*2205)
	for i := range 2205 {
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16(8000*((i/10)%2*2-1))))
	}
	b := make([]byte, 44)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], 0x7ffff024)
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], 22050)
	binary.LittleEndian.PutUint32(b[28:], 44100)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], 0x7ffff000)
	b = append(b, pcm...)
	if _, err := media.DecodeWAV(slices.Clone(b)); !errors.Is(err, media.ErrTruncatedWAV) {
		t.Fatalf("unpatched: %v (the test no longer shows the problem)", err)
	}
	fixStreamedWAV(b)
	s, err := media.DecodeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 800 {
		t.Errorf("%d samples, want 800", len(s))
	}
	// Anything that is not a WAV is left alone; a cut header does not panic.
	for _, in := range [][]byte{nil, []byte("RIFF"), []byte("not a wav file at all")} {
		before := slices.Clone(in)
		fixStreamedWAV(in)
		if !slices.Equal(in, before) {
			t.Errorf("changed %q", before)
		}
	}
	fixStreamedWAV(slices.Clone(b[:20]))
}

func TestTrimSilence(t *testing.T) {
	loud := func(n int) []int16 { return slices.Repeat([]int16{5000, -5000}, n/2) }
	quiet := func(n int) []int16 { return slices.Repeat([]int16{100}, n) }
	tests := []struct {
		name string
		in   []int16
		want int
	}{
		{"empty", nil, 0},
		{"all quiet", quiet(1000), 0},
		{"no silence", loud(1000), 1000},
		{"long silence both ends", slices.Concat(quiet(2000), loud(1000), quiet(2000)), 1000 + 2*trimPad},
		{"short lead", slices.Concat(quiet(100), loud(1000), quiet(2000)), 1100 + trimPad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(TrimSilence(tt.in)); got != tt.want {
				t.Errorf("len = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestLRU(t *testing.T) {
	c := newLRU(3, 100)
	k := func(s string) cacheKey { return cacheKey{"en", s} }
	c.put(k("a"), make([]int16, 10))
	c.put(k("b"), make([]int16, 10))
	c.put(k("c"), make([]int16, 10))
	c.get(k("a")) // a is now the most recent; b the least
	c.put(k("d"), make([]int16, 10))
	if _, ok := c.get(k("b")); ok {
		t.Error("b survived past maxEntries")
	}
	for _, s := range []string{"a", "c", "d"} {
		if _, ok := c.get(k(s)); !ok {
			t.Errorf("%s evicted", s)
		}
	}
	c.put(k("big"), make([]int16, 90)) // over the sample budget with the others
	if c.samples > 100 || c.len() > 3 {
		t.Errorf("samples=%d entries=%d", c.samples, c.len())
	}
	if _, ok := c.get(k("big")); !ok {
		t.Error("the newest entry was evicted")
	}
	c.put(k("huge"), make([]int16, 101))
	if _, ok := c.get(k("huge")); ok {
		t.Error("an entry larger than the budget was cached")
	}
	if _, hit := c.get(cacheKey{"en-us", "big"}); hit {
		t.Error("the voice is not part of the key")
	}
}
