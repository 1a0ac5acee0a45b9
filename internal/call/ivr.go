package call

import (
	"context"
	"fmt"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/ivr"
	"github.com/switchboard/switchboard/internal/media"
)

// captcha answers the caller and runs the voice captcha of SPEC §3; ok is
// false when the call ended during it.
func (c *call) captcha() (passed, ok bool) {
	if err := c.openMedia(); err != nil {
		return false, false
	}
	if !c.answerCaller() {
		return false, false
	}
	ch := media.NewChannel(c.sess, c.neg.Codec, c.neg.PayloadType, c.neg.EventPT, c.log)
	dctx := c.dlg.Context()
	ch.Start(dctx)
	defer ch.Stop()
	passed, trace, err := ivr.Options{Rand: c.e.cfg.CaptchaRand}.Captcha(dctx, ch)
	c.rec.Trace = append(c.rec.Trace, trace...)
	if err != nil {
		if dctx.Err() != nil {
			c.cause = CauseCallerBye
			return false, false
		}
		c.tracef("captcha: %v", err)
	}
	c.tracef("captcha passed: %v", passed)
	return passed, true
}

// runIVR answers the caller and runs an IVR menu or data entry; the call
// goes on to the target the caller chose (SPEC §2 ivrs).
func (c *call) runIVR(ctx, dctx context.Context, name string, cfg config.IVR, depth int) result {
	if !c.answerCaller() {
		return result{class: failNoAnswer}
	}
	ch := media.NewChannel(c.sess, c.neg.Codec, c.neg.PayloadType, c.neg.EventPT, c.log)
	ch.Start(dctx)
	c.tracef("ivr %s", name)
	res, err := ivr.Menu(dctx, ch, promptsOrNone{c.in.Prompts}, cfg)
	ch.Stop()
	c.rec.Trace = append(c.rec.Trace, res.Trace...)
	if res.Variable != "" {
		c.vars.set(res.Variable, res.Value)
		c.tracef("ivr %s: ${%s} = %q", name, res.Variable, res.Value)
	}
	if err != nil || res.Target == "" {
		if dctx.Err() == nil {
			c.tracef("ivr %s: %v", name, err)
		}
		return result{class: failUnavailable}
	}
	c.tracef("ivr %s: continuing to %s", name, res.Target)
	return c.connect(ctx, dctx, res.Target, depth+1)
}

// promptsOrNone lets an account without prompts still run menus (they
// fall back to the built-in prompts).
type promptsOrNone struct{ p Prompts }

func (p promptsOrNone) Source(name string, loop bool) (media.Source, error) {
	if p.p == nil {
		return nil, fmt.Errorf("unknown prompt %q", name)
	}
	return p.p.Source(name, loop)
}

// variable resolves a ${var} destination: an extension code or user
// extension number, a name of the account, or an E.164 number that
// allowed_destinations allow (limits.go).
func (c *call) variable(name string) (string, bool) {
	v, ok := c.vars.get(name)
	if !ok {
		c.tracef("${%s} is not set", name)
		return "", false
	}
	t, ok := c.dialled(v)
	if !ok {
		c.tracef("${%s} = %q is not an extension, code or E.164 number", name, v)
		return "", false
	}
	return t, c.variableAllowed(name, t)
}
