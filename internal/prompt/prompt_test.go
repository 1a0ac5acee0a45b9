package prompt

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
)

// writeWAV writes interleaved 16-bit PCM samples as a WAV file.
func writeWAV(t *testing.T, path string, rate, channels int, interleaved []int16) {
	t.Helper()
	b := make([]byte, 44+2*len(interleaved))
	le := binary.LittleEndian
	copy(b, "RIFF")
	le.PutUint32(b[4:], uint32(36+2*len(interleaved)))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1)
	le.PutUint16(b[22:], uint16(channels))
	le.PutUint32(b[24:], uint32(rate))
	le.PutUint32(b[28:], uint32(rate*channels*2))
	le.PutUint16(b[32:], uint16(channels*2))
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*len(interleaved)))
	for i, v := range interleaved {
		le.PutUint16(b[44+2*i:], uint16(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// stereoTone is d seconds of freq Hz at rate Hz on both channels.
func stereoTone(freq float64, rate int, d float64) []int16 {
	n := int(d * float64(rate))
	out := make([]int16, 2*n)
	for i := range n {
		v := int16(10000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		out[2*i], out[2*i+1] = v, v
	}
	return out
}

// fakeTTS renders every text as a 300 Hz tone, one 100 ms per byte.
type fakeTTS struct{ err error }

func (f fakeTTS) Render(_ context.Context, text string) ([]int16, error) {
	if f.err != nil {
		return nil, f.err
	}
	s := make([]int16, len(text)*media.SampleRate/10)
	for i := range s {
		s[i] = int16(8000 * math.Sin(2*math.Pi*300*float64(i)/media.SampleRate))
	}
	return s, nil
}

func TestLoadFile16kStereo(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "prompts"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeWAV(t, filepath.Join(dir, "prompts", "hold.wav"), 16000, 2, stereoTone(1000, 16000, 1))
	doc := &config.Document{Prompts: map[string]config.Prompt{
		"hold": {File: "prompts/hold.wav"}, // relative to baseDir
	}}
	lib, err := Load(context.Background(), doc, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := lib.Get("hold")
	if !ok {
		t.Fatal("Get(hold): not found")
	}
	if d := len(s) - media.SampleRate; d < -10 || d > 10 {
		t.Errorf("1 s at 16 kHz gave %d samples, want about %d (8 kHz)", len(s), media.SampleRate)
	}
	f, ok := media.DominantFrequency(s[800:2400], []float64{500, 800, 1000, 1200, 2000})
	if !ok || f != 1000 {
		t.Errorf("dominant frequency = %v, %v; want 1000", f, ok)
	}
	if got := lib.Names(); len(got) != 1 || got[0] != "hold" {
		t.Errorf("Names() = %v", got)
	}
}

func TestLoadAbsolutePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.wav")
	writeWAV(t, path, 8000, 1, make([]int16, 800))
	doc := &config.Document{Prompts: map[string]config.Prompt{"a": {File: path}}}
	lib, err := Load(context.Background(), doc, "/nonexistent", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := lib.Get("a"); len(s) != 800 {
		t.Errorf("len = %d, want 800", len(s))
	}
}

func TestLoadSayESpeak(t *testing.T) {
	requireESpeak(t)
	doc := &config.Document{Prompts: map[string]config.Prompt{
		"closed": {Say: "Our office is closed. Please call again tomorrow."},
	}}
	lib, err := Load(context.Background(), doc, "", ESpeak{})
	if err != nil {
		t.Fatal(err)
	}
	s, ok := lib.Get("closed")
	if !ok {
		t.Fatal("Get(closed): not found")
	}
	// Eight words at espeak-ng's 175 words a minute: about 3 s.
	if d := float64(len(s)) / media.SampleRate; d < 1.5 || d > 8 {
		t.Errorf("rendered %.2f s, want 1.5-8 s", d)
	}
	if rms := media.RMS(s); rms < 300 {
		t.Errorf("RMS = %.0f, want speech (> 300)", rms)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.wav"), []byte("this is not audio at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := &config.Document{Prompts: map[string]config.Prompt{
		"hold":    {File: "broken.wav"},
		"missing": {File: "nope.wav"},
		"welcome": {Say: "hello"},
		"both":    {File: "x.wav", Say: "x"},
		"ok":      {Say: "fine"},
	}}
	lib, err := Load(context.Background(), doc, dir, fakeTTS{})
	if err == nil {
		t.Fatalf("Load succeeded: %v", lib.Names())
	}
	// The prompts that loaded stay usable beside the error.
	if got := lib.Names(); !slices.Equal(got, []string{"ok", "welcome"}) {
		t.Errorf("partial library has %v, want [ok welcome]", got)
	}
	// welcome and ok render with the fake TTS; three fail.
	want := []string{
		"prompts.both: has both file and say; use one",
		"prompts.hold.file: " + filepath.Join(dir, "broken.wav") + ": wav: not a RIFF/WAVE file",
		"prompts.missing.file: open " + filepath.Join(dir, "nope.wav") + ": no such file or directory",
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if !errors.Is(err, media.ErrNotWAV) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is does not see the causes: %v", err)
	}
	fields := config.Fields(err)
	if len(fields) != 3 || fields[1].Path != "prompts.hold.file" || fields[2].Path != "prompts.missing.file" {
		t.Errorf("config.Fields = %+v", fields)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Name != "both" {
		t.Errorf("errors.As(*Error) = %+v", pe)
	}
}

func TestLoadTTSErrors(t *testing.T) {
	doc := &config.Document{Prompts: map[string]config.Prompt{"closed": {Say: "closed"}}}
	_, err := Load(context.Background(), doc, "", nil)
	if !errors.Is(err, ErrNoTTS) || !strings.HasPrefix(err.Error(), "prompts.closed.say: ") {
		t.Errorf("nil TTS: %v", err)
	}
	_, err = Load(context.Background(), doc, "", fakeTTS{err: errors.New("boom")})
	if err == nil || err.Error() != "prompts.closed.say: boom" {
		t.Errorf("failing TTS: %v", err)
	}
	doc.Prompts = map[string]config.Prompt{"my prompt": {}}
	_, err = Load(context.Background(), doc, "", nil)
	if err == nil || err.Error() != `prompts["my prompt"]: needs a file or a say text` {
		t.Errorf("empty prompt: %v", err)
	}
}

func TestLoadESpeakMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	doc := &config.Document{Prompts: map[string]config.Prompt{
		// A text no other test renders, so that the cache cannot answer.
		"closed": {Say: "this text is only said when espeak is missing"},
	}}
	_, err := Load(context.Background(), doc, "", ESpeak{})
	if err == nil || err.Error() != "prompts.closed.say: espeak-ng is not installed (apt-get install espeak-ng)" {
		t.Errorf("err = %v", err)
	}
	if !errors.Is(err, ErrESpeakMissing) {
		t.Errorf("errors.Is(err, ErrESpeakMissing) = false")
	}
}

func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("config replaced")
	cancel(cause)
	doc := &config.Document{Prompts: map[string]config.Prompt{"a": {Say: "a"}}}
	if _, err := Load(ctx, doc, "", fakeTTS{}); !errors.Is(err, cause) {
		t.Errorf("err = %v, want the cancel cause", err)
	}
}

func TestLoadNil(t *testing.T) {
	lib, err := Load(context.Background(), nil, "", nil)
	if err != nil || len(lib.Names()) != 0 {
		t.Errorf("Load(nil) = %v, %v", lib, err)
	}
	var none *Library
	if _, ok := none.Get("x"); ok {
		t.Error("nil Library found a prompt")
	}
}

func TestSource(t *testing.T) {
	doc := &config.Document{Prompts: map[string]config.Prompt{"beep": {Say: "ab"}}} // 1600 samples
	lib, err := Load(context.Background(), doc, "", fakeTTS{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := lib.Get("beep")

	src, err := lib.Source("beep", true)
	if err != nil {
		t.Fatal(err)
	}
	// 50 frames (8000 samples) is five times round the 1600-sample prompt.
	frame := make([]int16, media.FrameSamples)
	for f := range 50 {
		n, err := src.ReadFrame(frame)
		if n != len(frame) || err != nil {
			t.Fatalf("looping frame %d: n=%d err=%v", f, n, err)
		}
		for i, v := range frame {
			if pos := (f*len(frame) + i) % len(want); v != want[pos] {
				t.Fatalf("frame %d sample %d = %d, want %d (prompt sample %d)", f, i, v, want[pos], pos)
			}
		}
	}

	once, err := lib.Source("beep", false)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for {
		n, err := once.ReadFrame(frame)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil || total > len(want) {
			t.Fatalf("total=%d err=%v", total, err)
		}
	}
	if total != len(want) {
		t.Errorf("played %d samples, want %d", total, len(want))
	}

	_, err = lib.Source("nope", false)
	if !errors.Is(err, ErrUnknown) || err.Error() != `unknown prompt "nope"` {
		t.Errorf("unknown prompt: %v", err)
	}
	if _, ok := lib.Get("nope"); ok {
		t.Error(`Get("nope") found something`)
	}
}
