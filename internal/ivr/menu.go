package ivr

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard/switchboard/internal/config"
)

// Result is where a menu sends the call.
type Result struct {
	// Target is the chosen option's target, the IVR's next after a collect,
	// or its on_failure once every try failed.
	Target string
	// Variable and Value are the call variable a collect filled (empty
	// otherwise): the executor sets Variable = Value before going to Target.
	Variable, Value string
	// Trace says what the caller did, one line per step, for the call's trace.
	Trace []string
}

// Menu runs an IVR with the default Options. See Options.Menu.
func Menu(ctx context.Context, ch Channel, prompts Prompts, ivr config.IVR) (Result, error) {
	return Options{}.Menu(ctx, ch, prompts, ivr)
}

// Menu runs an IVR step (SPEC §2 ivrs) on ch and says where the call goes.
//
// A try plays ivr.Prompt (an account prompt, or a built-in of that name;
// one that cannot be found is noted in the trace and the menu goes on
// silently), then waits for a key — the collect timeout if collect is set,
// else o.Timeout — and:
//   - a key that is one of Options goes to its target;
//   - otherwise, with collect set, that key is the first digit of the entry,
//     read as Collect does; a complete entry fills the variable and goes to
//     Next. With both options and collect, the first key of a try decides:
//     an option key picks that option (so no entry can start with it), any
//     other key starts the entry. With options {"1": sales}, "1" goes to
//     sales and "31#" is the entry 31, while "13#" is option 1 (the 3 and
//     the # stay queued for whatever the call does next);
//   - any other key, or an entry that is too short, plays the built-in
//     "invalid" prompt;
//   - no key at all plays nothing more.
//
// A failed try is followed by another while retries last (ivr.Retries
// extra tries, so 0 means one try), each replaying the prompt unless the
// caller has already pressed a key (type-ahead and barge-in skip or cut it).
// After the last failed try the result is ivr.OnFailure with the reason in
// the trace; without OnFailure, Menu returns an error wrapping ErrNoInput
// and the last reason (ErrTimeout, ErrTooShort, ErrInvalid).
// Other errors are the end of ctx (its cause) and a Play that failed; the
// Result's trace is filled in every case.
func (o Options) Menu(ctx context.Context, ch Channel, prompts Prompts, ivr config.IVR) (Result, error) {
	var res Result
	tracef := func(format string, args ...any) {
		res.Trace = append(res.Trace, fmt.Sprintf(format, args...))
	}
	k := newKeypad(ch)
	keep, stop := k.bargeIn()
	timeout := o.timeout()
	if ivr.Collect != nil {
		timeout = collectTimeout(*ivr.Collect, o)
	}
	tries := 1 + max(ivr.Retries, 0)

	var reason error
	for try := 1; try <= tries; try++ {
		if ivr.Prompt != "" {
			src, err := accountPrompt(prompts, ivr.Prompt)
			if err != nil {
				if try == 1 {
					tracef("ivr: prompt %s not played: %v", ivr.Prompt, err)
				}
			} else if err := k.play(ctx, src, keep, stop); err != nil {
				return res, err
			}
		}

		d, ok, err := k.next(ctx, timeout)
		if err != nil {
			return res, err
		}
		of := fmt.Sprintf("try %d of %d", try, tries)
		target, isOption := ivr.Options[string(d)]
		switch {
		case !ok:
			reason = fmt.Errorf("%w (%s)", ErrTimeout, timeout)
			tracef("ivr: no key within %s (%s)", timeout, of)
			continue // silence: the prompt again, no "invalid"
		case isOption:
			res.Target = target
			tracef("ivr: key %c -> %s", d, target)
			return res, nil
		case ivr.Collect != nil:
			k.unread(d)
			v, err := k.collect(ctx, *ivr.Collect, timeout)
			if err == nil {
				res.Target, res.Variable, res.Value = ivr.Next, ivr.Collect.Variable, v
				tracef("ivr: %s=%s -> %s", res.Variable, v, ivr.Next)
				return res, nil
			}
			if !errors.Is(err, ErrTooShort) && !errors.Is(err, ErrTimeout) {
				return res, err
			}
			reason = err
			tracef("ivr: entry %q rejected: %v (%s)", v, err, of)
		default:
			reason = fmt.Errorf("%w: %c", ErrInvalid, d)
			tracef("ivr: key %c is not an option (%s)", d, of)
		}
		// Also after the last try: the caller learns why the menu gave up.
		if src, err := builtin("invalid"); err != nil {
			tracef("ivr: %v", err)
		} else if err := k.play(ctx, src, keep, stop); err != nil {
			return res, err
		}
	}

	if ivr.OnFailure == "" {
		tracef("ivr: failed after %d tries: %v; no on_failure", tries, reason)
		return res, fmt.Errorf("%w after %d tries: %w", ErrNoInput, tries, reason)
	}
	res.Target = ivr.OnFailure
	tracef("ivr: failed after %d tries: %v -> on_failure %s", tries, reason, ivr.OnFailure)
	return res, nil
}
