package demo

import (
	"encoding/binary"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/switchboard/switchboard/internal/config"
)

// ToneForSpeech replaces every say: prompt of doc with a short tone WAV
// written under dir, for a machine without espeak-ng: the demo then runs
// without TTS errors. It returns how many prompts it replaced.
func ToneForSpeech(doc *config.Document, dir string) (int, error) {
	n := 0
	for _, name := range slices.Sorted(maps.Keys(doc.Prompts)) {
		p := doc.Prompts[name]
		if p.Say == "" {
			continue
		}
		path := filepath.Join(dir, "tone-"+name+".wav")
		if err := os.WriteFile(path, toneWAV(440, 8000, 8000), 0o600); err != nil {
			return n, err
		}
		doc.Prompts[name] = config.Prompt{File: path}
		n++
	}
	return n, nil
}

// toneWAV is a 16-bit mono PCM WAV of n samples of a quiet sine at rate.
func toneWAV(freq float64, rate, n int) []byte {
	data := make([]byte, 2*n)
	for i := range n {
		v := int16(4000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		binary.LittleEndian.PutUint16(data[2*i:], uint16(v))
	}
	b := make([]byte, 0, 44+len(data))
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(36+len(data)))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, 1) // mono
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*2))
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}
