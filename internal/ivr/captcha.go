package ivr

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
)

// Captcha runs the voice captcha with the default Options, taking the code
// from rnd (nil: crypto/rand). See Options.Captcha.
func Captcha(ctx context.Context, ch Channel, rnd io.Reader) (passed bool, trace []string, err error) {
	return Options{Rand: rnd}.Captcha(ctx, ch)
}

// Captcha runs the voice captcha of SPEC §3 on ch: it reads out a random
// 3-digit code with the built-in prompts ("please enter the code", then the
// digits, o.Gap apart), and the caller types it back, each digit within
// o.Timeout (5 s) of the end of the read-out or of the previous digit.
// A wrong or incomplete code gets a second try with the same code, read out
// again after "the code was not correct" (only the read-out when nothing
// was typed). After the second failed try it plays "goodbye" and returns
// false; the executor hangs up. Nothing is played on success.
//
// Keys typed during the read-out:
//   - before the first digit of the code is read out they are dropped (the
//     caller cannot know the code yet: leftovers and robots), and the trace
//     says how many;
//   - from then on they count as the answer and do not interrupt the
//     read-out, so a caller may type along as the digits are read without
//     missing the rest; once three keys are in, the read-out stops and the
//     answer is judged.
//
// Keys during "goodbye" are dropped. The trace names the code and what was
// typed on each try. err is the end of ctx (its cause), a failed Play, a
// failing random source or a missing built-in prompt; passed is then false.
func (o Options) Captcha(ctx context.Context, ch Channel) (passed bool, trace []string, err error) {
	tracef := func(format string, args ...any) {
		trace = append(trace, fmt.Sprintf(format, args...))
	}
	pcm := map[string][]int16{}
	for _, name := range []string{"enter-code", "wrong-code", "goodbye"} {
		s, ok := prompt.Builtin(name)
		if !ok {
			return false, nil, fmt.Errorf("%w: %q", ErrMissingPrompt, name)
		}
		pcm[name] = s
	}
	for d := range 10 {
		name := prompt.DigitName(d)
		s, ok := prompt.Builtin(name)
		if !ok {
			return false, nil, fmt.Errorf("%w: %q", ErrMissingPrompt, name)
		}
		pcm[name] = s
	}
	code, err := randomCode(o.rand())
	if err != nil {
		return false, nil, err
	}
	play := func(name string) media.Source { return media.NewPCMSource(pcm[name], false) }
	gap := func() media.Source { return media.Limit(media.Silence(), o.gap()) }
	timeout := o.timeout()
	k := newKeypad(ch)

	answer := ""
	for try := 1; try <= CaptchaTries; try++ {
		var reading atomic.Bool // the code's first digit is being played
		var parts []media.Source
		if answer != "" {
			parts = append(parts, play("wrong-code"), gap())
		}
		parts = append(parts, play("enter-code"), gap())
		for i, c := range code {
			src := play(prompt.DigitName(int(c - '0')))
			if i == 0 {
				src = &onStart{Source: src, fn: func() { reading.Store(true) }}
			} else {
				parts = append(parts, gap())
			}
			parts = append(parts, src)
		}

		early := 0
		keep := func(rune) bool {
			if reading.Load() {
				return true
			}
			early++
			return false
		}
		complete := func() bool { return len(k.pending) >= CaptchaDigits }
		if err := k.play(ctx, media.Concat(parts...), keep, complete); err != nil {
			return false, trace, err
		}
		if early > 0 {
			tracef("captcha: %d key(s) pressed before the code was read out, ignored (try %d of %d)", early, try, CaptchaTries)
		}

		typed := []rune{}
		for len(typed) < CaptchaDigits {
			d, ok, err := k.next(ctx, timeout)
			if err != nil {
				return false, trace, err
			}
			if !ok {
				break
			}
			typed = append(typed, d)
		}
		answer = string(typed)
		of := fmt.Sprintf("try %d of %d", try, CaptchaTries)
		switch {
		case answer == code:
			tracef("captcha: code %s typed, passed (%s)", code, of)
			return true, trace, nil
		case answer == "":
			tracef("captcha: code %s, no key within %s (%s)", code, timeout, of)
		case len(typed) < CaptchaDigits:
			tracef("captcha: code %s, typed %s then no key within %s (%s)", code, answer, timeout, of)
		default:
			tracef("captcha: code %s, typed %s (%s)", code, answer, of)
		}
	}

	tracef("captcha: failed, goodbye")
	drop := func(rune) bool { return false }
	never := func() bool { return false }
	if err := k.play(ctx, play("goodbye"), drop, never); err != nil {
		return false, trace, err
	}
	return false, trace, nil
}

// randomCode returns a uniformly random code of CaptchaDigits digits.
func randomCode(r io.Reader) (string, error) {
	var b [2]byte
	for range 100 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("ivr: captcha code: %w", err)
		}
		// 64000 is the largest multiple of 1000 under 65536: no bias.
		if n := binary.BigEndian.Uint16(b[:]); n < 64000 {
			return fmt.Sprintf("%03d", n%1000), nil
		}
	}
	return "", errors.New("ivr: captcha code: random source keeps returning out-of-range values")
}

// onStart calls fn when the first frame of its Source is read, which the
// player does just before sending that frame.
type onStart struct {
	media.Source
	fn      func()
	started bool
}

func (s *onStart) ReadFrame(dst []int16) (int, error) {
	if !s.started {
		s.started = true
		s.fn()
	}
	return s.Source.ReadFrame(dst)
}
