// Package prompt holds the audio an account plays to callers: the prompts of
// its configuration (WAV files and say: texts rendered by a TTS engine),
// Switchboard's built-in prompts (embedded 8 kHz WAV files), and Correlate,
// which tells whether a recording contains a given prompt.
//
// All audio here is 8 kHz mono 16-bit linear, as package media uses it.
// Slices returned by Get, Builtin and TTS.Render are shared: do not modify them.
package prompt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
)

// Library is one account's prompts, decoded and rendered once per
// configuration version. It is immutable and safe for concurrent use.
type Library struct {
	prompts map[string][]int16
}

// Load reads every entry of doc's prompts: section. A file: is read with
// media.LoadWAV (relative paths are taken from baseDir) and a say: text is
// rendered by tts. Every failing prompt is reported, each with its path
// ("prompts.hold.file: ..."), in a *LoadError; config.Fields(err) lists them as
// field errors and errors.Is sees the causes (media.ErrNotWAV, ErrESpeakMissing...).
// A nil doc gives an empty Library.
func Load(ctx context.Context, doc *config.Document, baseDir string, tts TTS) (*Library, error) {
	l := &Library{prompts: map[string][]int16{}}
	if doc == nil {
		return l, nil
	}
	names := make([]string, 0, len(doc.Prompts))
	for n := range doc.Prompts {
		names = append(names, n)
	}
	slices.Sort(names)

	var errs []*Error
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		p := doc.Prompts[name]
		samples, field, err := loadOne(ctx, p, baseDir, tts)
		if err == nil && len(samples) == 0 {
			err = ErrEmpty
		}
		if err != nil {
			errs = append(errs, &Error{Name: name, Path: fieldPath(name, field), Err: err})
			continue
		}
		l.prompts[name] = samples
	}
	if len(errs) > 0 {
		// The prompts that did load are usable: a server keeps serving
		// calls with them and logs the others.
		return l, &LoadError{Errors: errs}
	}
	return l, nil
}

func loadOne(ctx context.Context, p config.Prompt, baseDir string, tts TTS) ([]int16, string, error) {
	switch {
	case p.File != "" && p.Say != "":
		return nil, "", errors.New("has both file and say; use one")
	case p.File != "":
		path := p.File
		if !filepath.IsAbs(path) && baseDir != "" {
			path = filepath.Join(baseDir, path)
		}
		s, err := loadFile(path)
		return s, "file", err
	case p.Say != "":
		if tts == nil {
			return nil, "say", ErrNoTTS
		}
		s, err := tts.Render(ctx, p.Say)
		return s, "say", err
	}
	return nil, "", errors.New("needs a file or a say text")
}

func init() {
	// validate (config) checks prompt files with the decoder that plays them.
	config.SetPromptDecoder(func(data []byte) error {
		_, err := media.DecodeWAV(data)
		return err
	})
}

// loadFile reads a prompt file as config.ReadPromptFile does (a regular
// file under its size limit, within its deadline) and decodes it.
func loadFile(path string) ([]int16, error) {
	data, err := config.ReadPromptFile(path)
	var pe *os.PathError
	if errors.As(err, &pe) {
		return nil, err // names the path already
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := media.DecodeWAV(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// fieldPath formats prompts.NAME.field the way config's validation does:
// names that are not plain words are quoted (prompts["my prompt"].file).
func fieldPath(name, field string) string {
	p := "prompts." + name
	if !plainName(name) {
		p = "prompts[" + strconv.Quote(name) + "]"
	}
	if field != "" {
		p += "." + field
	}
	return p
}

func plainName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Get returns the samples of the named prompt. A nil Library has none.
func (l *Library) Get(name string) ([]int16, bool) {
	if l == nil {
		return nil, false
	}
	s, ok := l.prompts[name]
	return s, ok
}

// Source returns a player source for the named prompt, looping if loop is
// set. An unknown name is an error wrapping ErrUnknown that names it.
func (l *Library) Source(name string, loop bool) (media.Source, error) {
	s, ok := l.Get(name)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknown, name)
	}
	return media.NewPCMSource(s, loop), nil
}

// Names returns the names of the loaded prompts, sorted.
func (l *Library) Names() []string {
	if l == nil {
		return nil
	}
	names := make([]string, 0, len(l.prompts))
	for n := range l.prompts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Error is one prompt that failed to load.
type Error struct {
	Name string // the prompt's name
	Path string // its field in the document: prompts.NAME.file or prompts.NAME.say
	Err  error
}

func (e *Error) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// LoadError lists every prompt Load could not load.
type LoadError struct {
	Errors []*Error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	for i, pe := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(pe.Error())
	}
	return b.String()
}

// Unwrap exposes each *Error (and through it the cause) and, so that
// config.Fields works on a failed Load, the same list as a
// config.ValidationError.
func (e *LoadError) Unwrap() []error {
	out := make([]error, 0, len(e.Errors)+1)
	out = append(out, e.Fields())
	for _, pe := range e.Errors {
		out = append(out, pe)
	}
	return out
}

// Fields returns the errors as config field errors (path + message).
func (e *LoadError) Fields() config.ValidationError {
	v := make(config.ValidationError, len(e.Errors))
	for i, pe := range e.Errors {
		v[i] = config.FieldError{Path: pe.Path, Msg: pe.Err.Error()}
	}
	return v
}
