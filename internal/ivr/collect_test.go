package ivr

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

const tick = 50 * time.Millisecond // the timeout of most tests

func dur(d time.Duration) config.Duration { return config.Duration(d) }

func TestCollect(t *testing.T) {
	t.Parallel()
	c := func(minD, maxD int, term string) config.Collect {
		return config.Collect{Variable: "v", MinDigits: minD, MaxDigits: maxD, Terminator: term, Timeout: dur(tick)}
	}
	tests := []struct {
		name    string
		c       config.Collect
		script  []step
		want    string
		err     error
		queued  string        // keys left for the next dialog
		atLeast time.Duration // the wait it must have taken
	}{
		{name: "max digits", c: c(1, 3, "#"), script: []step{wait(0, "12345")}, want: "123", queued: "45"},
		{name: "terminator", c: c(1, 10, "#"), script: []step{wait(0, "12#3")}, want: "12", queued: "3"},
		{name: "star terminator", c: c(1, 10, "*"), script: []step{wait(0, "4#*")}, want: "4#"},
		{name: "timeout ends the entry", c: c(2, 10, "#"), script: []step{wait(0, "12")}, want: "12", atLeast: tick},
		{name: "timeout runs from the last key", c: c(1, 10, "#"),
			script: []step{wait(0, "1"), wait(tick/2, "2"), wait(tick/2, "3"), wait(0, "#")}, want: "123"},
		{name: "inter-digit timeout", c: c(1, 10, "#"),
			script: []step{wait(0, "1"), wait(3*tick, "2")}, want: "1", atLeast: tick},
		{name: "first-digit timeout", c: c(1, 10, "#"), script: []step{wait(3*tick, "1")}, err: ErrTimeout, atLeast: tick},
		{name: "nothing", c: c(1, 10, "#"), err: ErrTimeout, atLeast: tick},
		{name: "too short by terminator", c: c(3, 10, "#"), script: []step{wait(0, "12#")}, want: "12", err: ErrTooShort},
		{name: "too short by timeout", c: c(3, 10, "#"), script: []step{wait(0, "1")}, want: "1", err: ErrTooShort, atLeast: tick},
		{name: "terminator alone is too short", c: c(0, 0, "#"), script: []step{wait(0, "#")}, err: ErrTooShort},
		{name: "no terminator configured", c: c(1, 0, ""), script: []step{wait(0, "12#")}, want: "12#", atLeast: tick},
		{name: "no maximum means 64", c: c(1, 0, "#"), script: []step{wait(0, string(slices.Repeat([]rune{'7'}, 70)))},
			want: string(slices.Repeat([]rune{'7'}, 64)), queued: "777777"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.script...)
			start := time.Now()
			got, err := Collect(t.Context(), f, tt.c)
			took := time.Since(start)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("Collect = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
			if took < tt.atLeast || took > tt.atLeast+2*time.Second {
				t.Errorf("took %v, want at least %v", took, tt.atLeast)
			}
			time.Sleep(10 * time.Millisecond) // let a late script key arrive
			if q := f.queued(); tt.script != nil && tt.script[len(tt.script)-1].delay == 0 && q != tt.queued {
				t.Errorf("left %q queued, want %q", q, tt.queued)
			}
			if len(f.heard()) != 0 {
				t.Errorf("played %q; Collect plays nothing", f.heard())
			}
		})
	}
}

func TestCollectDefaultTimeout(t *testing.T) {
	if o := (Options{}); o.timeout() != 5*time.Second || o.gap() != DefaultGap || o.rand() == nil {
		t.Errorf("zero Options: timeout %v, gap %v; want 5s (SPEC §3), %v", o.timeout(), o.gap(), DefaultGap)
	}
	if got := collectTimeout(config.Collect{}, Options{}); got != 5*time.Second {
		t.Errorf("default timeout = %v, want 5s (SPEC §2)", got)
	}
	if got := collectTimeout(config.Collect{Timeout: dur(2 * time.Second)}, Options{Timeout: time.Second}); got != 2*time.Second {
		t.Errorf("configured timeout = %v, want 2s", got)
	}
	if got := collectTimeout(config.Collect{}, Options{Timeout: time.Second}); got != time.Second {
		t.Errorf("timeout from options = %v, want 1s", got)
	}
}

func TestCollectEnds(t *testing.T) {
	t.Parallel()
	t.Run("ctx", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancelCause(t.Context())
		hangup := errors.New("caller hung up")
		time.AfterFunc(20*time.Millisecond, func() { cancel(hangup) })
		start := time.Now()
		_, err := Collect(ctx, newFake(t), config.Collect{Timeout: dur(5 * time.Second)})
		if !errors.Is(err, hangup) || time.Since(start) > time.Second {
			t.Errorf("Collect = %v after %v; want the cause %v at once", err, time.Since(start), hangup)
		}
	})
	t.Run("keys closed", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.keys <- '5'
		close(f.keys)
		start := time.Now()
		got, err := Collect(t.Context(), f, config.Collect{Timeout: dur(5 * time.Second)})
		if got != "5" || err != nil || time.Since(start) > time.Second {
			t.Errorf("Collect = %q, %v after %v; want \"5\" at once", got, err, time.Since(start))
		}
	})
}

// Barge-in: a menu whose only step is a collect plays its prompt (here the
// built-in "enter-number", found without an account prompt of that name)
// and the first key cuts it short and starts the entry.
func TestCollectBargeIn(t *testing.T) {
	t.Parallel()
	m := config.IVR{
		Prompt:  "prompt:enter-number",
		Collect: &config.Collect{Variable: "dest", MinDigits: 2, MaxDigits: 5, Terminator: "#", Timeout: dur(tick)},
		Next:    "${dest}",
	}
	tests := []struct {
		name   string
		script []step
		want   string
		heard  []string
	}{
		{"during the prompt", []step{during(1, 1600, "4"), wait(5*time.Millisecond, "2#")}, "42", []string{"enter-number~"}},
		{"after the prompt", []step{after(1, 0, "42#")}, "42", []string{"enter-number"}},
		{"typed ahead", []step{wait(0, "42#")}, "42", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, tt.script...)
			if tt.heard != nil && len(tt.heard) == 0 {
				time.Sleep(10 * time.Millisecond) // keys queued before the menu starts
			}
			res, err := Menu(t.Context(), f, fakePrompts{}, m)
			if err != nil || res.Value != tt.want || res.Variable != "dest" || res.Target != "${dest}" {
				t.Fatalf("Menu = %+v, %v; want dest=%s -> ${dest}", res, err, tt.want)
			}
			if h := f.heard(); !slices.Equal(h, tt.heard) {
				t.Errorf("heard %q, want %q", h, tt.heard)
			}
		})
	}
}
