// Command gen writes Switchboard's built-in prompts as 8 kHz mono 16-bit WAV
// files, rendered by espeak-ng through prompt.ESpeak (the same decoding,
// resampling and silence trimming as say: prompts). Run it with `make prompts`
// and commit the files; servers never need espeak-ng for the built-ins.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
)

func main() {
	out := flag.String("out", "internal/prompt/builtin", "directory to write NAME.wav files to")
	voice := flag.String("voice", "en-us", "espeak-ng voice")
	peak := flag.Float64("peak", 0.7, "peak level after normalising, fraction of full scale")
	flag.Parse()
	if err := run(*out, *voice, *peak); err != nil {
		log.Fatal(err)
	}
}

func run(dir, voice string, peak float64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tts := prompt.ESpeak{Voice: voice}
	for _, name := range prompt.BuiltinNames() {
		text, _ := prompt.BuiltinText(name)
		s, err := tts.Render(context.Background(), text)
		if err != nil {
			return fmt.Errorf("%s (%q): %w", name, text, err)
		}
		s = normalise(s, peak)
		path := filepath.Join(dir, name+".wav")
		if err := os.WriteFile(path, monoWAV(s), 0o644); err != nil {
			return err
		}
		fmt.Printf("%-14s %5.2fs %6d bytes  %q\n", name, float64(len(s))/media.SampleRate, 44+2*len(s), text)
	}
	return nil
}

// normalise scales s (a copy) so that its peak is peak of full scale: every
// built-in then plays at the same level.
func normalise(s []int16, peak float64) []int16 {
	var m float64
	for _, x := range s {
		m = math.Max(m, math.Abs(float64(x)))
	}
	out := make([]int16, len(s))
	if m == 0 {
		return out
	}
	g := peak * math.MaxInt16 / m
	for i, x := range s {
		out[i] = int16(math.Round(float64(x) * g))
	}
	return out
}

// monoWAV encodes 8 kHz mono 16-bit PCM (media.WAVWriter writes stereo
// recordings only).
func monoWAV(s []int16) []byte {
	const rate, channels, bits = media.SampleRate, 1, 16
	b := make([]byte, 44+2*len(s))
	le := binary.LittleEndian
	copy(b[0:], "RIFF")
	le.PutUint32(b[4:], uint32(36+2*len(s)))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1) // PCM
	le.PutUint16(b[22:], channels)
	le.PutUint32(b[24:], rate)
	le.PutUint32(b[28:], rate*channels*bits/8)
	le.PutUint16(b[32:], channels*bits/8)
	le.PutUint16(b[34:], bits)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*len(s)))
	for i, x := range s {
		le.PutUint16(b[44+2*i:], uint16(x))
	}
	return b
}
