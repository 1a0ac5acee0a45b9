package prompt

import "errors"

// Sentinel errors. Functions wrap them with detail; test with errors.Is.
var (
	// ErrUnknown means no prompt of that name exists.
	ErrUnknown = errors.New("unknown prompt")
	// ErrESpeakMissing means the espeak-ng binary is not on PATH.
	ErrESpeakMissing = errors.New("espeak-ng is not installed (apt-get install espeak-ng)")
	// ErrNoTTS means a say: prompt was loaded without a TTS engine.
	ErrNoTTS = errors.New("no text-to-speech engine configured")
	// ErrEmpty means a prompt (or the text to render) has no audio.
	ErrEmpty = errors.New("prompt is empty")
)
