package prompt

import (
	"embed"
	"slices"
	"sync"

	"github.com/switchboard/switchboard/internal/media"
)

// The built-in prompts are 8 kHz mono 16-bit WAV files made once from
// espeak-ng by `make prompts` (./gen) and committed, so that a server without
// espeak-ng still has them.
//
//go:embed builtin
var builtinFS embed.FS

// builtinTexts is what each built-in prompt says; the file is builtin/NAME.wav.
var builtinTexts = map[string]string{
	"digit-0":       "zero",
	"digit-1":       "one",
	"digit-2":       "two",
	"digit-3":       "three",
	"digit-4":       "four",
	"digit-5":       "five",
	"digit-6":       "six",
	"digit-7":       "seven",
	"digit-8":       "eight",
	"digit-9":       "nine",
	"enter-code":    "please enter the code",
	"goodbye":       "goodbye",
	"please-hold":   "please hold",
	"recorded":      "this call may be recorded",
	"leave-message": "leave a message after the tone",
	"not-available": "the extension is not available",
	"invalid":       "invalid option",
	"wrong-code":    "the code was not correct",
	"enter-number":  "please enter the number followed by hash",
	"transferring":  "your call is being transferred",
	"parked":        "you have been parked in orbit",
	"press-one":     "press one to accept the call",
}

// BuiltinNames returns the names of the built-in prompts, sorted.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtinTexts))
	for n := range builtinTexts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// BuiltinText returns what the named built-in prompt says.
func BuiltinText(name string) (string, bool) {
	t, ok := builtinTexts[name]
	return t, ok
}

// DigitName returns the name of the built-in prompt that says digit d, or ""
// when d is not 0-9.
func DigitName(d int) string {
	if d < 0 || d > 9 {
		return ""
	}
	return "digit-" + string(rune('0'+d))
}

var (
	builtinOnce    sync.Once
	builtinSamples map[string][]int16
)

// Builtin returns the samples of a built-in prompt ("goodbye", "digit-7"...).
// The embedded files are decoded on first use.
func Builtin(name string) ([]int16, bool) {
	builtinOnce.Do(func() {
		builtinSamples = make(map[string][]int16, len(builtinTexts))
		for n := range builtinTexts {
			b, err := builtinFS.ReadFile(builtinFile(n))
			if err != nil {
				continue // not generated yet; TestBuiltins catches it
			}
			if s, err := media.DecodeWAV(b); err == nil {
				builtinSamples[n] = s
			}
		}
	})
	s, ok := builtinSamples[name]
	return s, ok
}

func builtinFile(name string) string { return "builtin/" + name + ".wav" }
