package prompt

import (
	"encoding/binary"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/media"
)

func TestBuiltins(t *testing.T) {
	for _, name := range BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			b, err := builtinFS.ReadFile(builtinFile(name))
			if err != nil {
				t.Fatalf("%v (run `make prompts`)", err)
			}
			le := binary.LittleEndian
			if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " {
				t.Fatal("not a canonical WAV file")
			}
			format, channels, rate, bits := le.Uint16(b[20:]), le.Uint16(b[22:]), le.Uint32(b[24:]), le.Uint16(b[34:])
			if format != 1 || channels != 1 || rate != 8000 || bits != 16 {
				t.Errorf("format %d, %d channels, %d Hz, %d bits; want PCM mono 8000 Hz 16-bit", format, channels, rate, bits)
			}
			s, ok := Builtin(name)
			if !ok {
				t.Fatal("Builtin: not found")
			}
			if len(s) != (len(b)-44)/2 {
				t.Errorf("decoded %d samples from %d bytes: resampled?", len(s), len(b))
			}
			if d := float64(len(s)) / media.SampleRate; d < 0.3 || d > 4 {
				t.Errorf("%.2f s long, want 0.3-4 s", d)
			}
			if rms := media.RMS(s); rms < 1000 {
				t.Errorf("RMS = %.0f, want speech", rms)
			}
			// Trimmed: no more than the 40 ms margin of silence at either end.
			if len(TrimSilence(s)) < len(s)-2*trimPad {
				t.Errorf("untrimmed silence: %d of %d samples are loud", len(TrimSilence(s)), len(s))
			}
		})
	}
	if _, ok := Builtin("nope"); ok {
		t.Error(`Builtin("nope") found something`)
	}
}

// Every file under builtin/ is a prompt that BuiltinNames lists.
func TestBuiltinNoStrayFiles(t *testing.T) {
	err := fs.WalkDir(builtinFS, "builtin", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".wav" {
			return err
		}
		if _, ok := BuiltinText(strings.TrimSuffix(path.Base(p), ".wav")); !ok {
			t.Errorf("%s has no text in builtinTexts", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBuiltinsDiffer(t *testing.T) {
	// Each built-in correlates with itself and not with the others, so that
	// in-call tests can tell which one a party heard.
	names := BuiltinNames()
	for i, a := range names {
		sa, _ := Builtin(a)
		for _, b := range names[i+1:] {
			sb, _ := Builtin(b)
			if c := Correlate(sa, sb); c > 0.45 {
				t.Errorf("Correlate(%s, %s) = %.2f", a, b, c)
			}
		}
	}
}

func TestDigitName(t *testing.T) {
	for d := range 10 {
		if _, ok := Builtin(DigitName(d)); !ok {
			t.Errorf("DigitName(%d) = %q: no such built-in", d, DigitName(d))
		}
	}
	if DigitName(-1) != "" || DigitName(10) != "" {
		t.Error("DigitName accepts a non-digit")
	}
}
