package ivr

import "errors"

// Sentinel errors. Functions wrap them with detail; test with errors.Is.
var (
	// ErrTimeout means no key was pressed before the timeout.
	ErrTimeout = errors.New("ivr: no input before the timeout")
	// ErrTooShort means the entry ended (terminator or timeout) with fewer
	// digits than min_digits.
	ErrTooShort = errors.New("ivr: entry shorter than min_digits")
	// ErrInvalid means a key that is not one of the menu's options was pressed
	// in a menu without collect.
	ErrInvalid = errors.New("ivr: key is not a menu option")
	// ErrNoInput means a menu used up every try without a usable answer and
	// has no on_failure to go to. The error also wraps the last try's reason
	// (ErrTimeout, ErrTooShort or ErrInvalid).
	ErrNoInput = errors.New("ivr: no usable input and no on_failure")
	// ErrMissingPrompt means a built-in prompt the dialog needs is not
	// embedded (run `make prompts`).
	ErrMissingPrompt = errors.New("ivr: built-in prompt missing")
)
