package ivr

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
)

func TestMenu(t *testing.T) {
	t.Parallel()
	options := map[string]string{"1": "sales", "2": "support"}
	collect := &config.Collect{Variable: "dest", MinDigits: 3, MaxDigits: 12, Terminator: "#", Timeout: dur(tick)}
	menu := config.IVR{Prompt: "prompt:welcome", Options: options, OnFailure: "operator"}
	withRetries := func(m config.IVR, n int) config.IVR { m.Retries = n; return m }
	both := config.IVR{Prompt: "prompt:welcome", Options: options, Collect: collect, Next: "${dest}", Retries: 1, OnFailure: "operator"}

	tests := []struct {
		name   string
		ivr    config.IVR
		script []step
		want   Result // Trace: substrings of the trace's lines, in order
		err    error
		heard  []string
		queued string // keys left for what comes next
	}{
		{
			name:   "option",
			ivr:    menu,
			script: []step{after(1, 0, "2")},
			want:   Result{Target: "support", Trace: []string{"key 2 -> support"}},
			heard:  []string{"welcome"},
		},
		{
			name:   "option cuts the prompt",
			ivr:    menu,
			script: []step{during(1, 1600, "1")},
			want:   Result{Target: "sales"},
			heard:  []string{"welcome~"},
		},
		{
			name:   "option typed ahead skips the prompt",
			ivr:    menu,
			script: []step{wait(0, "1")},
			want:   Result{Target: "sales"},
			heard:  []string{},
		},
		{
			name:   "typed ahead, the keys after the option stay queued",
			ivr:    both,
			script: []step{wait(0, "13#")},
			want:   Result{Target: "sales"},
			heard:  []string{},
			queued: "3#",
		},
		{
			name:   "invalid then valid",
			ivr:    withRetries(menu, 1),
			script: []step{after(1, 0, "9"), after(3, 0, "1")},
			want:   Result{Target: "sales", Trace: []string{"key 9 is not an option (try 1 of 2)", "key 1 -> sales"}},
			heard:  []string{"welcome", "invalid", "welcome"},
		},
		{
			name:   "a key cuts the invalid prompt and skips the menu prompt",
			ivr:    withRetries(menu, 1),
			script: []step{after(1, 0, "9"), during(2, 1600, "2")},
			want:   Result{Target: "support"},
			heard:  []string{"welcome", "invalid~"},
		},
		{
			name:   "retries exhausted",
			ivr:    withRetries(menu, 2),
			script: []step{after(1, 0, "9"), after(3, 0, "*"), after(5, 0, "#")},
			want: Result{Target: "operator", Trace: []string{
				"key 9 is not an option (try 1 of 3)", "key * is not an option (try 2 of 3)",
				"key # is not an option (try 3 of 3)", "failed after 3 tries: ivr: key is not a menu option: # -> on_failure operator"}},
			heard: []string{"welcome", "invalid", "welcome", "invalid", "welcome", "invalid"},
		},
		{
			name: "silence exhausts the tries",
			ivr:  withRetries(menu, 1),
			want: Result{Target: "operator", Trace: []string{
				"no key within 50ms (try 1 of 2)", "no key within 50ms (try 2 of 2)", "no input before the timeout"}},
			heard: []string{"welcome", "welcome"},
		},
		{
			name:   "no on_failure",
			ivr:    config.IVR{Prompt: "prompt:welcome", Options: options},
			script: []step{after(1, 0, "7")},
			err:    ErrInvalid,
			want:   Result{Trace: []string{"key 7 is not an option (try 1 of 1)", "no on_failure"}},
			heard:  []string{"welcome", "invalid"},
		},
		{
			name:   "collect then next",
			ivr:    both,
			script: []step{after(1, 0, "34910#")},
			want:   Result{Target: "${dest}", Variable: "dest", Value: "34910", Trace: []string{"dest=34910 -> ${dest}"}},
			heard:  []string{"welcome"},
		},
		{
			name:   "collect ends at max_digits by barge-in",
			ivr:    both,
			script: []step{during(1, 800, "3"), wait(5*time.Millisecond, "49100000000000")},
			want:   Result{Target: "${dest}", Variable: "dest", Value: "349100000000"},
			heard:  []string{"welcome~"},
		},
		{
			name:   "an option key first wins over collect",
			ivr:    both,
			script: []step{after(1, 0, "2")},
			want:   Result{Target: "support"},
			heard:  []string{"welcome"},
		},
		{
			name:   "collect too short, then complete",
			ivr:    both,
			script: []step{after(1, 0, "34#"), after(3, 0, "345#")},
			want: Result{Target: "${dest}", Variable: "dest", Value: "345", Trace: []string{
				`entry "34" rejected: ivr: entry shorter than min_digits: 2 of 3 digits (try 1 of 2)`, "dest=345"}},
			heard: []string{"welcome", "invalid", "welcome"},
		},
		{
			name:   "collect too short twice",
			ivr:    both,
			script: []step{after(1, 0, "3"), after(3, 0, "#")},
			want:   Result{Target: "operator", Trace: []string{"(try 1 of 2)", "(try 2 of 2)", "-> on_failure operator"}},
			heard:  []string{"welcome", "invalid", "welcome", "invalid"},
		},
		{
			name:   "missing prompt",
			ivr:    config.IVR{Prompt: "prompt:gone", Options: options},
			script: []step{wait(20*time.Millisecond, "1")},
			want:   Result{Target: "sales", Trace: []string{`prompt prompt:gone not played: unknown prompt "gone"`, "key 1 -> sales"}},
			heard:  []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.script...)
			if len(tt.heard) == 0 {
				time.Sleep(10 * time.Millisecond) // type-ahead: keys queued before the menu
			}
			res, err := Options{Timeout: tick}.Menu(t.Context(), f, testPrompts, tt.ivr)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !errors.Is(err, ErrNoInput) {
					t.Errorf("err = %v, want ErrNoInput and %v", err, tt.err)
				}
			} else if err != nil {
				t.Errorf("err = %v", err)
			}
			if res.Target != tt.want.Target || res.Variable != tt.want.Variable || res.Value != tt.want.Value {
				t.Errorf("Menu = %+v, want %+v", res, tt.want)
			}
			checkTrace(t, res.Trace, tt.want.Trace)
			if h := f.heard(); !slices.Equal(h, tt.heard) {
				t.Errorf("heard %q, want %q", h, tt.heard)
			}
			if q := f.queued(); tt.queued != "" && q != tt.queued {
				t.Errorf("left %q queued, want %q", q, tt.queued)
			}
		})
	}
}

// checkTrace tells whether each of want is a substring of a line of trace,
// in order.
func checkTrace(t *testing.T, trace, want []string) {
	t.Helper()
	i := 0
	for _, line := range trace {
		if i < len(want) && strings.Contains(line, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("trace %q\nlacks %q (in order)", trace, want[i:])
	}
}

func TestMenuEnds(t *testing.T) {
	t.Parallel()
	m := config.IVR{Prompt: "prompt:welcome", Options: map[string]string{"1": "sales"}}
	t.Run("hang-up during the prompt", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancelCause(t.Context())
		hangup := errors.New("bye")
		f := newFake(t, step{play: 1, samples: 1600, do: func() { cancel(hangup) }})
		res, err := Menu(ctx, f, testPrompts, m)
		if !errors.Is(err, hangup) || res.Target != "" {
			t.Errorf("Menu = %+v, %v; want the cause %v", res, err, hangup)
		}
		if c := f.cut(); !slices.Equal(c, []bool{true}) {
			t.Errorf("plays cut = %v, want the prompt stopped", c)
		}
	})
	t.Run("play fails", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("media closed")
		_, err := Menu(t.Context(), failingChannel{boom}, testPrompts, m)
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
}

type failingChannel struct{ err error }

func (c failingChannel) Play(context.Context, media.Source) error { return c.err }
func (c failingChannel) Digits() <-chan rune                      { return nil }
