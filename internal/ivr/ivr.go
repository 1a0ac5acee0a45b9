// Package ivr is the caller-facing dialog logic of SPEC §2 (ivrs) and §3
// (voice-captcha): menus, keypad data entry and the voice captcha. It knows
// no SIP and no sockets: the call executor hands it a Channel (its media
// towards the caller) and gets back where the call goes next, the variable
// that was filled, and lines for the call's trace.
//
// Keys and prompts interact the way callers expect:
//   - Barge-in: a key pressed while a menu prompt (or the "invalid" prompt)
//     plays stops that prompt, and the key counts as input. Keys already
//     waiting when a prompt is due (type-ahead) skip the prompt.
//   - Timeouts run from the end of the prompt, and again from each key.
//   - The captcha's read-out is not cut by a key, so a caller can type
//     along as the digits are read: see Options.Captcha.
//
// A menu or collect takes keys from the Channel only as it needs them, so
// the keys typed after the ones it used stay queued in the Channel for
// whatever the call does next (the executor may drain them). The one
// exception: a key that cuts the "invalid" prompt of a menu's last try is
// dropped. The captcha drops the keys it does not count (see there).
//
// Every function reads keys on the goroutine that called it and plays on
// one more that it starts and waits for: one dialog uses a Channel at a time.
package ivr

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
)

// Channel is the caller's side of the call as a dialog needs it. The call
// executor implements it over a media session (a Player and the RFC 4733
// receiver).
type Channel interface {
	// Play plays src to the caller and blocks until it has been played
	// (nil) or ctx ends (ctx's error). Dialogs cancel ctx to cut a prompt
	// short when a key is pressed.
	Play(ctx context.Context, src media.Source) error
	// Digits delivers the keys the caller presses: '0'-'9', '*', '#' (and
	// 'A'-'D'). A closed channel means no more keys will come.
	Digits() <-chan rune
}

// Prompts finds an account's prompts by name (without the "prompt:"
// prefix). *prompt.Library satisfies it.
type Prompts interface {
	Source(name string, loop bool) (media.Source, error)
}

var _ Prompts = (*prompt.Library)(nil)

// Defaults from SPEC §2 and §3.
const (
	// DefaultTimeout is the wait for a key when the configuration sets none,
	// and the captcha's wait per digit.
	DefaultTimeout = 5 * time.Second
	// DefaultGap is the pause between the parts of the captcha read-out.
	DefaultGap = 400 * time.Millisecond
	// MaxDigits bounds an entry whose max_digits is 0 (no maximum), as
	// configuration validation bounds max_digits.
	MaxDigits = 64
	// CaptchaTries is how many times a caller may type the captcha code.
	CaptchaTries = 2
	// CaptchaDigits is the length of the captcha code.
	CaptchaDigits = 3
)

// Options tune the dialogs; the zero value is what production uses. Tests
// shorten the waits and fix the random source.
type Options struct {
	// Timeout is the wait for a menu key when the IVR has no collect timeout,
	// and the captcha's wait per digit. Default DefaultTimeout.
	Timeout time.Duration
	// Rand is where the captcha code comes from. Default crypto/rand.
	Rand io.Reader
	// Gap is the silence between the parts of the captcha read-out. Default
	// DefaultGap; negative means none.
	Gap time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func (o Options) gap() time.Duration {
	switch {
	case o.Gap < 0:
		return 0
	case o.Gap == 0:
		return DefaultGap
	}
	return o.Gap
}

func (o Options) rand() io.Reader {
	if o.Rand != nil {
		return o.Rand
	}
	return rand.Reader
}

// keypad reads a Channel's keys for one dialog, keeping the keys that arrived
// while a prompt played until the dialog asks for them.
type keypad struct {
	ch      Channel
	keys    <-chan rune // nil once closed
	pending []rune
}

func newKeypad(ch Channel) *keypad {
	return &keypad{ch: ch, keys: ch.Digits()}
}

// bargeIn keeps every key and stops the prompt at the first one.
func (k *keypad) bargeIn() (func(rune) bool, func() bool) {
	return func(rune) bool { return true }, func() bool { return len(k.pending) > 0 }
}

// play plays src while reading keys: keep says whether a key is kept for
// the dialog (or dropped), and stop, asked after each kept key, whether to
// cut the prompt short. When stop already holds, nothing is played. A prompt
// cut short by a key is not an error; the end of ctx is (its cause).
func (k *keypad) play(ctx context.Context, src media.Source, keep func(rune) bool, stop func() bool) error {
	k.poll(keep, stop)
	if src == nil || stop() {
		return nil
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- k.ch.Play(pctx, src) }()
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if err != nil {
				return fmt.Errorf("ivr: play: %w", err)
			}
			return nil
		case d, ok := <-k.keys:
			if !ok {
				k.keys = nil
				continue
			}
			if !keep(d) {
				continue
			}
			k.pending = append(k.pending, d)
			if stop() {
				cancel()
				<-done // Play honours ctx; its error is only the cancellation
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				return nil
			}
		case <-ctx.Done():
			cancel()
			<-done
			return context.Cause(ctx)
		}
	}
}

// poll takes the keys already queued, without waiting, until stop holds:
// the keys after those stay queued in the Channel.
func (k *keypad) poll(keep func(rune) bool, stop func() bool) {
	for k.keys != nil && !stop() {
		select {
		case d, ok := <-k.keys:
			if !ok {
				k.keys = nil
			} else if keep(d) {
				k.pending = append(k.pending, d)
			}
		default:
			return
		}
	}
}

// next returns the next key: a pending one, or the next pressed within
// timeout. ok is false on timeout or once the Channel has no more keys.
func (k *keypad) next(ctx context.Context, timeout time.Duration) (d rune, ok bool, err error) {
	if len(k.pending) > 0 {
		d = k.pending[0]
		k.pending = k.pending[1:]
		return d, true, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, false, context.Cause(ctx)
	}
	if k.keys == nil {
		return 0, false, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case d, ok := <-k.keys:
		if !ok {
			k.keys = nil
			return 0, false, nil
		}
		return d, true, nil
	case <-t.C:
		return 0, false, nil
	case <-ctx.Done():
		return 0, false, context.Cause(ctx)
	}
}

// unread puts d back in front of the pending keys.
func (k *keypad) unread(d rune) {
	k.pending = append([]rune{d}, k.pending...)
}

// builtin returns a source for a built-in prompt.
func builtin(name string) (media.Source, error) {
	s, ok := prompt.Builtin(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrMissingPrompt, name)
	}
	return media.NewPCMSource(s, false), nil
}

// accountPrompt returns a source for a configuration prompt reference
// ("prompt:NAME" or "NAME"): the account's prompt, or else the built-in of
// that name.
func accountPrompt(prompts Prompts, ref string) (media.Source, error) {
	name, _ := strings.CutPrefix(ref, "prompt:")
	var err error
	if prompts != nil {
		var src media.Source
		if src, err = prompts.Source(name, false); err == nil {
			return src, nil
		}
	}
	if src, berr := builtin(name); berr == nil {
		return src, nil
	}
	if err == nil {
		err = fmt.Errorf("%w %q", prompt.ErrUnknown, name)
	}
	return nil, err
}
