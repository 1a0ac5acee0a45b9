package ivr

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// Collect reads a keypad entry (SPEC §2 collect) from ch. The entry ends
// when it has max_digits digits, when the terminator is pressed (the
// terminator is not part of the value), or when timeout (default 5 s) passes
// without a key — the wait for the first key included. It returns the digits
// typed; ErrTimeout (wrapped) when no key at all was pressed, ErrTooShort
// (with the digits typed) when the entry has fewer than min_digits digits. min_digits 0 counts as 1
// (an empty entry is never a value) and max_digits 0 as MaxDigits.
// Every key other than the terminator is part of the value, * and # included.
// The end of ctx ends it with ctx's cause.
func Collect(ctx context.Context, ch Channel, c config.Collect) (string, error) {
	return newKeypad(ch).collect(ctx, c, collectTimeout(c, Options{}))
}

func collectTimeout(c config.Collect, o Options) time.Duration {
	if d := c.Timeout.D(); d > 0 {
		return d
	}
	return o.timeout()
}

// collect is Collect on a keypad whose pending keys come first.
func (k *keypad) collect(ctx context.Context, c config.Collect, timeout time.Duration) (string, error) {
	minDigits, maxDigits := max(c.MinDigits, 1), c.MaxDigits
	if maxDigits <= 0 || maxDigits > MaxDigits {
		maxDigits = MaxDigits
	}
	var term rune = -1
	if t := []rune(c.Terminator); len(t) == 1 {
		term = t[0]
	}
	var got []rune
	pressed := false // any key, the terminator included
	for len(got) < maxDigits {
		d, ok, err := k.next(ctx, timeout)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		pressed = true
		if d == term {
			break
		}
		got = append(got, d)
	}
	switch {
	case !pressed:
		return "", fmt.Errorf("%w (%s)", ErrTimeout, timeout)
	case len(got) < minDigits:
		return string(got), fmt.Errorf("%w: %d of %d digits", ErrTooShort, len(got), minDigits)
	}
	return string(got), nil
}
