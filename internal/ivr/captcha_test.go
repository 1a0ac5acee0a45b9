package ivr

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"
)

// codeReader is a random source that makes randomCode return code.
func codeReader(code string) io.Reader {
	n, err := strconv.Atoi(code)
	if err != nil {
		panic(err)
	}
	return bytes.NewReader([]byte{byte(n >> 8), byte(n)})
}

func TestCaptcha(t *testing.T) {
	t.Parallel()
	const gap = 10 * time.Millisecond
	gapSamples := 80
	d4 := samplesOf("enter-code") + gapSamples // where the code starts in the read-out
	d7 := d4 + samplesOf("digit-4") + gapSamples
	const readout = "enter-code digit-4 digit-7 digit-2"

	tests := []struct {
		name    string
		code    string // default 472
		script  []step
		pass    bool
		trace   []string // substrings, in order
		heard   []string
		atLeast time.Duration
	}{
		{
			name:   "pass first try",
			script: []step{after(1, 0, "472")},
			pass:   true,
			trace:  []string{"code 472 typed, passed (try 1 of 2)"},
			heard:  []string{readout},
		},
		{
			name:   "pass second try",
			script: []step{after(1, 0, "471"), after(2, 0, "472")},
			pass:   true,
			trace:  []string{"code 472, typed 471 (try 1 of 2)", "passed (try 2 of 2)"},
			heard:  []string{readout, "wrong-code " + readout},
		},
		{
			name:   "fail twice",
			script: []step{after(1, 0, "111"), after(2, 0, "222")},
			trace:  []string{"typed 111 (try 1 of 2)", "typed 222 (try 2 of 2)", "failed, goodbye"},
			heard:  []string{readout, "wrong-code " + readout, "goodbye"},
		},
		{
			name:    "silence",
			trace:   []string{"no key within 50ms (try 1 of 2)", "no key within 50ms (try 2 of 2)", "failed"},
			heard:   []string{readout, readout, "goodbye"}, // "not correct" only after a wrong code
			atLeast: 2 * tick,
		},
		{
			name:    "incomplete, then right",
			script:  []step{after(1, 0, "47"), after(2, 0, "472")},
			pass:    true,
			trace:   []string{"typed 47 then no key within 50ms (try 1 of 2)", "passed (try 2 of 2)"},
			heard:   []string{readout, "wrong-code " + readout},
			atLeast: tick,
		},
		{
			name:   "a slow caller within 5 s per digit",
			script: []step{after(1, tick/2, "4"), wait(tick/2, "7"), wait(tick/2, "2")},
			pass:   true,
			heard:  []string{readout},
		},
		{
			name:   "typed along the read-out, which goes on",
			script: []step{during(1, d4+400, "4"), during(1, d7+400, "7"), after(1, 0, "2")},
			pass:   true,
			heard:  []string{readout},
		},
		{
			name:   "three keys stop the read-out",
			script: []step{during(1, d4+400, "472")},
			pass:   true,
			heard:  []string{"enter-code digit-4~"},
		},
		{
			name:   "keys before the code are dropped",
			script: []step{during(1, 800, "999"), after(1, 0, "472")},
			pass:   true,
			trace:  []string{"3 key(s) pressed before the code was read out, ignored (try 1 of 2)", "passed (try 1 of 2)"},
			heard:  []string{readout},
		},
		{
			name:   "keys during goodbye are dropped",
			script: []step{after(1, 0, "111"), after(2, 0, "222"), during(3, 400, "472")},
			heard:  []string{readout, "wrong-code " + readout, "goodbye"},
		},
		{
			name:   "leading zeros are read out",
			code:   "007",
			script: []step{after(1, 0, "007")},
			pass:   true,
			heard:  []string{"enter-code digit-0 digit-0 digit-7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code := tt.code
			if code == "" {
				code = "472"
			}
			f := newFake(t, tt.script...)
			start := time.Now()
			pass, trace, err := Options{Timeout: tick, Gap: gap, Rand: codeReader(code)}.Captcha(t.Context(), f)
			if err != nil || pass != tt.pass {
				t.Errorf("Captcha = %v, %v; want %v", pass, err, tt.pass)
			}
			if took := time.Since(start); took < tt.atLeast {
				t.Errorf("took %v, want at least %v", took, tt.atLeast)
			}
			checkTrace(t, trace, tt.trace)
			if h := f.heard(); !slices.Equal(h, tt.heard) {
				t.Errorf("heard %q, want %q", h, tt.heard)
			}
		})
	}
}

func TestCaptchaEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(t.Context())
	hangup := errors.New("bye")
	f := newFake(t, step{play: 1, samples: 1600, do: func() { cancel(hangup) }})
	pass, _, err := Options{Timeout: tick, Rand: codeReader("123")}.Captcha(ctx, f)
	if pass || !errors.Is(err, hangup) {
		t.Errorf("Captcha = %v, %v; want false and the cause %v", pass, err, hangup)
	}
	if c := f.cut(); !slices.Equal(c, []bool{true}) {
		t.Errorf("plays cut = %v, want the read-out stopped", c)
	}

	_, _, err = Captcha(t.Context(), newFake(t), bytes.NewReader(nil))
	if !errors.Is(err, io.EOF) {
		t.Errorf("Captcha with an empty random source = %v, want io.EOF", err)
	}
}

func TestRandomCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		want string
		err  bool
	}{
		{"leading zeros", []byte{0, 7}, "007", false},
		{"modulo", []byte{0xF9, 0xFF}, "999", false}, // 63999
		{"out of range is redrawn", []byte{0xFA, 0x00, 0x01, 0xC8}, "456", false},
		{"short source", []byte{1}, "", true},
	}
	for _, tt := range tests {
		got, err := randomCode(bytes.NewReader(tt.in))
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%s: randomCode = %q, %v; want %q (error %v)", tt.name, got, err, tt.want, tt.err)
		}
	}
	seen := map[string]bool{}
	for range 50 {
		c, err := randomCode(rand.Reader)
		if err != nil || len(c) != 3 {
			t.Fatalf("randomCode(crypto/rand) = %q, %v", c, err)
		}
		seen[c] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 codes from crypto/rand gave only %d distinct ones", len(seen))
	}
}
