package ivr

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
)

// react is how long the fake waits, after the dialog has read keys pressed
// during a prompt, for the dialog to stop that prompt.
const react = 5 * time.Millisecond

// fakeChannel is a Channel that records what was played (as fast as it can,
// honouring ctx) and presses keys when its script says so.
type fakeChannel struct {
	keys   chan rune
	script []step

	mu      sync.Mutex
	plays   []*playRec
	fired   []bool        // script steps done by Play itself
	changed chan struct{} // closed and replaced on every change
}

type playRec struct {
	samples []int16
	done    bool // Play returned
	cut     bool // Play returned because ctx ended
}

// step is one action of a fake caller: wait for a condition, wait delay,
// then press keys (all at once) and call do.
//
// A step "during" a Play (play set, ended not) is taken by that Play itself
// once it has played samples samples (or when it ends short of them), and
// the Play plays nothing more until the dialog has read the keys and had
// react to stop it: the dialog reacts within a frame, as a real one does
// within 20 ms, and the test does not depend on scheduling. The other steps run in order on a
// goroutine of the script, each after the one before.
type step struct {
	play    int           // wait until Play number play (1-based) ...
	samples int           // ... has played this many samples,
	ended   bool          // ... or has returned; play 0: no wait
	delay   time.Duration // then wait this long
	keys    string        // then press these keys
	do      func()        // and call this
}

// during presses keys once Play n has played samples samples.
func during(n, samples int, keys string) step { return step{play: n, samples: samples, keys: keys} }

// after presses keys delay after Play n returned.
func after(n int, delay time.Duration, keys string) step {
	return step{play: n, ended: true, delay: delay, keys: keys}
}

// wait presses keys delay after the previous step.
func wait(delay time.Duration, keys string) step { return step{delay: delay, keys: keys} }

func (s step) isDuring() bool { return s.play > 0 && !s.ended }

func newFake(t *testing.T, script ...step) *fakeChannel {
	t.Helper()
	f := &fakeChannel{keys: make(chan rune, 128), script: script, fired: make([]bool, len(script)), changed: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, s := range script {
			if s.isDuring() {
				if !f.waitFor(ctx, func() bool { return f.fired[i] }) {
					return
				}
				continue
			}
			if s.play > 0 && !f.waitFor(ctx, func() bool { return len(f.plays) >= s.play && f.plays[s.play-1].done }) {
				return // the dialog ended first; the test's assertions tell
			}
			if s.delay > 0 {
				select {
				case <-time.After(s.delay):
				case <-ctx.Done():
					return
				}
			}
			f.press(s)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func (f *fakeChannel) press(s step) {
	for _, k := range s.keys {
		f.keys <- k
	}
	if s.do != nil {
		s.do()
	}
}

// fireDuring takes the steps due during Play n; f.mu is held.
func (f *fakeChannel) fireDuring(n int, rec *playRec) bool {
	pressed := false
	for i, s := range f.script {
		if !f.fired[i] && s.isDuring() && s.play == n && (len(rec.samples) >= s.samples || rec.done) {
			f.press(s)
			f.fired[i] = true
			pressed = true
		}
	}
	return pressed
}

func (f *fakeChannel) waitFor(ctx context.Context, cond func() bool) bool {
	for {
		f.mu.Lock()
		ok, changed := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// notify wakes waitFor; f.mu is held.
func (f *fakeChannel) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeChannel) Digits() <-chan rune { return f.keys }

func (f *fakeChannel) Play(ctx context.Context, src media.Source) error {
	rec := &playRec{}
	f.mu.Lock()
	f.plays = append(f.plays, rec)
	n := len(f.plays)
	f.notify()
	f.mu.Unlock()
	end := func(cut bool) {
		f.mu.Lock()
		rec.done, rec.cut = true, cut
		f.fireDuring(n, rec)
		f.notify()
		f.mu.Unlock()
	}
	buf := make([]int16, media.FrameSamples)
	for {
		if err := ctx.Err(); err != nil {
			end(true)
			return err
		}
		n2, err := src.ReadFrame(buf)
		f.mu.Lock()
		rec.samples = append(rec.samples, buf[:n2]...)
		pressed := f.fireDuring(n, rec)
		f.notify()
		f.mu.Unlock()
		if err == io.EOF {
			end(false)
			return nil
		} else if err != nil {
			end(false)
			return err
		}
		if pressed {
			for len(f.keys) > 0 && ctx.Err() == nil {
				time.Sleep(50 * time.Microsecond) // until the dialog has read them
			}
			select {
			case <-ctx.Done():
			case <-time.After(react):
			}
		}
	}
}

// heard names what each Play played, prompts separated by spaces (silence
// is skipped); a prompt cut short ends in "~", and unknown audio is "?".
func (f *fakeChannel) heard() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.plays))
	for i, p := range f.plays {
		out[i] = strings.Join(identify(p.samples), " ")
	}
	return out
}

// cut tells which Plays were cut short by their ctx.
func (f *fakeChannel) cut() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]bool, len(f.plays))
	for i, p := range f.plays {
		out[i] = p.cut
	}
	return out
}

// queued returns the keys nobody read.
func (f *fakeChannel) queued() string {
	var b strings.Builder
	for {
		select {
		case k := <-f.keys:
			b.WriteRune(k)
		default:
			return b.String()
		}
	}
}

// known is every prompt identify can name: the built-ins and testPrompts.
var known = sync.OnceValue(func() map[string][]int16 {
	m := map[string][]int16{}
	for _, n := range prompt.BuiltinNames() {
		s, ok := prompt.Builtin(n)
		if !ok {
			panic("built-in prompt " + n + " missing (make prompts)")
		}
		m[n] = s
	}
	for n, s := range testPrompts {
		m[n] = s
	}
	return m
})

// identify splits played audio into the prompts it is made of, comparing
// samples exactly: dialogs play prompts unchanged, joined by digital silence.
func identify(s []int16) []string {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range known() {
			if !yield(n) {
				return
			}
		}
	})
	var out []string
	unknown := false
	for p := 0; p < len(s); {
		match := ""
		for _, n := range names {
			if c := known()[n]; len(c) <= len(s)-p && slices.Equal(s[p:p+len(c)], c) && len(c) > len(known()[match]) {
				match = n
			}
		}
		if match != "" {
			out = append(out, match)
			p += len(known()[match])
			unknown = false
			continue
		}
		if rest := s[p:]; slices.ContainsFunc(rest, func(v int16) bool { return v != 0 }) {
			for _, n := range names {
				if c := known()[n]; len(c) > len(rest) && slices.Equal(rest, c[:len(rest)]) {
					match = n
					break
				}
			}
			if match != "" {
				out = append(out, match+"~")
				break
			}
		}
		if s[p] != 0 && !unknown {
			out = append(out, "?")
			unknown = true
		} else if s[p] == 0 {
			unknown = false
		}
		p++
	}
	return out
}

// testPrompts are an account's prompts: synthetic audio unlike any speech.
var testPrompts = fakePrompts{
	"welcome": synth(2*media.SampleRate, 7),
	"menu2":   synth(media.SampleRate, 11),
}

func synth(n, seed int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16((i*seed*7919)%16000-8000) | 1
	}
	return s
}

type fakePrompts map[string][]int16

func (p fakePrompts) Source(name string, loop bool) (media.Source, error) {
	s, ok := p[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", prompt.ErrUnknown, name)
	}
	return media.NewPCMSource(s, loop), nil
}

func samplesOf(name string) int { return len(known()[name]) }

func TestIdentify(t *testing.T) {
	d := func(name string) []int16 { return known()[name] }
	gap := make([]int16, 80)
	var s []int16
	s = append(s, d("enter-code")...)
	s = append(s, gap...)
	s = append(s, d("digit-0")...)
	s = append(s, synth(50, 3)...)
	s = append(s, gap...)
	s = append(s, d("goodbye")[:500]...)
	got := strings.Join(identify(s), " ")
	if want := "enter-code digit-0 ? goodbye~"; got != want {
		t.Errorf("identify = %q, want %q", got, want)
	}
}
