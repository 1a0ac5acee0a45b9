package routing

import (
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
)

// Trace renders the decision's trace: one line per step, in order (SPEC §3:
// "every step appends an entry"). It must be called before d is reused.
func (d *Decision) Trace() []string {
	out := make([]string, 0, len(d.steps)+len(d.RulesFired))
	var b strings.Builder
	line := func(render func(b *strings.Builder)) {
		b.Reset()
		render(&b)
		out = append(out, b.String())
	}
	fired, results := 0, d.captchaResults()
	firedUpTo := func(n int) {
		for ; fired < n && fired < len(d.RulesFired); fired++ {
			i := d.RulesFired[fired]
			line(func(b *strings.Builder) {
				d.renderMatch(b, i)
				d.renderAction(b, &d.num.rules.rules[i], results[fired])
			})
		}
	}
	for _, st := range d.steps {
		switch st.kind {
		case stepRuleLow:
			firedUpTo(int(st.at))
		case stepRulesDone:
			firedUpTo(len(d.RulesFired))
			continue
		}
		line(func(b *strings.Builder) { d.render(b, st) })
	}
	return out
}

// captchaResults replays the voice-captcha logic of Route over the fired
// rules: a caller who passed is not asked again by later captcha rules.
func (d *Decision) captchaResults() []uint8 {
	out := make([]uint8, len(d.RulesFired))
	passed := false
	for k, i := range d.RulesFired {
		if d.num.rules.rules[i].Action != config.ActionVoiceCaptcha {
			continue
		}
		switch {
		case passed:
			out[k] = captchaAgain
		case d.captcha == CaptchaPassed:
			out[k], passed = captchaPassed, true
		case d.captcha == CaptchaFailed:
			out[k] = captchaFail
		default:
			out[k] = captchaAsk
		}
	}
	return out
}

func (d *Decision) render(b *strings.Builder, st step) {
	switch st.kind {
	case stepNotFound:
		if e, ok := NormalizeNumber(d.query); ok {
			b.WriteString("number " + e + ": not found -> 404")
		} else {
			b.WriteString("number " + strconv.Quote(d.query) + ": not a phone number -> 404")
		}
	case stepNumber:
		b.WriteString("number " + d.Number + ": found")
	case stepCaller:
		d.renderCaller(b)
	case stepRules:
		d.renderRules(b, int(st.n))
	case stepRuleLow:
		d.renderMatch(b, int(st.n))
		b.WriteString(": skipped, reputation ")
		b.WriteString(d.rep.String())
		b.WriteString(" is below ")
		b.WriteString(d.num.rules.rules[st.n].Reputation)
	case stepForward:
		d.renderForward(b, forwardReason(st.sub))
	case stepForwardOff:
		b.WriteString("forwarding: off")
	case stepExtension:
		b.WriteString("extension: " + d.Destination)
	case stepCallerName:
		b.WriteString("caller name: " + strconv.Quote(d.CallerName))
	case stepTags:
		if len(d.Tags) == 0 {
			b.WriteString("tags: none")
		} else {
			b.WriteString("tags: " + strings.Join(d.Tags, ", "))
		}
	}
}

func (d *Decision) renderCaller(b *strings.Builder) {
	b.WriteString("caller ")
	switch d.ckind {
	case callerWithheld:
		b.WriteString("anonymous (withheld)")
	case callerInvalid:
		b.WriteString(strconv.Quote(d.Caller) + ` (not a phone number: only "*" rules can match)`)
	default:
		b.WriteString(d.Caller)
		if d.callerNSN != "" {
			b.WriteString(" (national " + d.callerNSN + ", same country as the number)")
		}
	}
	b.WriteString(", reputation " + d.rep.String())
	if d.captcha != CaptchaNotRun {
		b.WriteString(", captcha result if asked: " + d.captcha.String())
	}
}

func (d *Decision) renderRules(b *strings.Builder, matched int) {
	rs := d.num.rules
	switch {
	case rs == nil:
		b.WriteString("rules: none configured")
	case matched == 0:
		b.WriteString("rules: none of " + strconv.Itoa(len(rs.rules)) + " match")
	default:
		b.WriteString("rules: " + strconv.Itoa(matched) + " of " + strconv.Itoa(len(rs.rules)) + " match, in weight order")
	}
}

// renderMatch writes "rule[i] prefix P matched C (national X)".
func (d *Decision) renderMatch(b *strings.Builder, i int) {
	r := &d.num.rules.rules[i]
	b.WriteString("rule[" + strconv.Itoa(i) + "] prefix " + r.Prefix)
	if r.Reputation != "" && r.Reputation != config.LevelNone.String() {
		b.WriteString(" (reputation " + r.Reputation + ")")
	}
	b.WriteString(" matched ")
	if d.ckind == callerInvalid {
		b.WriteString(strconv.Quote(d.Caller))
	} else {
		b.WriteString(d.Caller)
	}
	if d.callerNSN != "" {
		b.WriteString(" (national " + d.callerNSN + ")")
	}
}

func (d *Decision) renderAction(b *strings.Builder, r *config.Rule, sub uint8) {
	b.WriteString(": " + r.Action)
	switch r.Action {
	case config.ActionRejectBusy:
		b.WriteString(" -> 486 Busy Here")
	case config.ActionReject503:
		b.WriteString(" -> 503 Service Unavailable")
	case config.ActionCNAMPrefix:
		b.WriteString(" " + strconv.Quote(r.CNAMPrefix))
	case config.ActionRoute:
		b.WriteString(" -> " + r.Extension)
	case config.ActionVoiceCaptcha:
		switch sub {
		case captchaAsk:
			b.WriteString(" -> pending: the caller must type the code read out, then the call is decided again")
		case captchaPassed:
			b.WriteString(" -> passed, continue")
		case captchaAgain:
			b.WriteString(" -> already passed in this call, continue")
		case captchaFail:
			b.WriteString(" -> failed: goodbye and hang up (captcha_failed)")
		}
	}
	if len(r.Tags) > 0 {
		b.WriteString(" (tags: " + strings.Join(r.Tags, ", ") + ")")
	}
}

func (d *Decision) renderForward(b *strings.Builder, why forwardReason) {
	n := d.num
	switch why {
	case forwardNumber:
		b.WriteString("forwarding: number forward is on")
	case forwardLocation:
		b.WriteString("forwarding: location " + n.cfg.Location + " is on")
	case forwardBoth:
		b.WriteString("forwarding: number forward and location " + n.cfg.Location + " are on")
	}
	b.WriteString(" -> " + n.forwardDest)
	switch {
	case why == forwardLocation && !n.destFromLoc:
		b.WriteString(" (the number's forward destination)")
	case why&forwardNumber != 0 && n.destFromLoc:
		b.WriteString(" (location " + n.cfg.Location + "'s destination: the number has none)")
	}
}
