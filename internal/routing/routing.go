// Package routing makes the inbound-call decision of SPEC §3: given a called
// number, a calling number, a caller name, a reputation and the state of the
// voice captcha, which rules fire, whether the call is rejected, challenged,
// forwarded or routed, under which caller name and tags, and why (a trace).
//
// It is pure: a Snapshot is compiled once from a config.Document and then
// only read, by any number of goroutines. Nothing here does I/O or reads the
// clock. Route is the hot path: it allocates nothing on a rejecting path and
// at most the caller name on a routed one (plus the E.164 form of a caller
// given without '+'); the trace is kept as small structs and rendered only
// when Trace is called.
package routing

import (
	"math/bits"
	"slices"
	"unsafe"

	"github.com/switchboard/switchboard/internal/config"
)

// Outcome is the result of a routing decision, as written in call records
// and by `switchboard route --json`.
type Outcome string

// Outcomes, SPEC §6.
const (
	OutcomeRouted        Outcome = "routed"
	OutcomeForwarded     Outcome = "forwarded"
	OutcomeRejected      Outcome = "rejected"
	OutcomeNotFound      Outcome = "not_found"
	OutcomeCaptchaFailed Outcome = "captcha_failed"
	// OutcomeCaptchaPending is not a final outcome: a voice-captcha rule fired
	// and the executor must run the captcha, then call Route again with
	// CaptchaPassed or CaptchaFailed. It is never stored in a call record.
	OutcomeCaptchaPending Outcome = "captcha_pending"
)

// CaptchaState is what the executor knows about the voice captcha of a call.
type CaptchaState uint8

// Captcha states.
const (
	CaptchaNotRun CaptchaState = iota // not run yet: a voice-captcha rule makes the decision pending
	CaptchaPassed                     // the caller passed: voice-captcha rules continue
	CaptchaFailed                     // the caller failed: the first voice-captcha rule ends the call
)

var captchaNames = [...]string{"not run", "passed", "failed"}

// String names the state for traces and logs.
func (c CaptchaState) String() string {
	if int(c) < len(captchaNames) {
		return captchaNames[c]
	}
	return "unknown"
}

// Request is one inbound call to decide.
type Request struct {
	// Number is the called number N: +E164, 00E164 or bare E.164 digits.
	Number string
	// Caller is the calling number C in the same forms. "" or "anonymous"
	// (any case) is a withheld number, and so are "unknown", "private",
	// "restricted" and "unavailable", which carriers also send. Anything else
	// that is not a number matches only "*" rules. A caller already in +E164
	// form avoids one allocation.
	Caller     string
	CallerName string
	Reputation config.Level // R
	Captcha    CaptchaState
}

// Decision is the result of Route. It is meant to be reused: Route resets it,
// keeping the capacity of its slices. Strings in it may refer to the
// snapshot, which is immutable, so they stay valid after the decision is
// reused; the slices do not.
type Decision struct {
	Outcome   Outcome
	SIPStatus int    // 404 (not_found), 486 or 503 (rejected); 0 otherwise
	Number    string // E.164 of N, when found
	// Caller is the E.164 of C, "anonymous" when withheld, or C unchanged
	// when it is not a phone number.
	Caller string
	// Destination is the target the call goes to: a rule's extension, the
	// forward destination or the number's extension, as configured.
	Destination string
	// CallerName is the name with every prefix applied (SPEC §3 step 5) when
	// the call goes somewhere (routed, forwarded). A call that is rejected,
	// fails the captcha or awaits it reaches no callee, so it keeps the name
	// as received; that also keeps those paths free of allocations.
	CallerName string
	// Tags are the number's tags then those of fired rules, without repeats.
	Tags []string
	// RulesFired are indexes into the number's rule list (file order), in
	// execution order. A rule fires when it matches C, R is at or above its
	// reputation, and its action runs.
	RulesFired []int
	// Captcha is true when a voice-captcha step ran (or is pending).
	Captcha bool
	// CaptchaPending is true when the request had CaptchaNotRun and a
	// voice-captcha rule fired: the executor must run the captcha and call
	// Route again with CaptchaPassed or CaptchaFailed.
	CaptchaPending bool

	// What Trace needs to render the steps later.
	num       *number
	query     string // N as requested, for "not found"
	callerNSN string // C's national number when C is in N's country
	ckind     callerKind
	rep       config.Level
	captcha   CaptchaState
	steps     []step
	prefixes  []uint16 // positions of the fired cnam-prefix rules, in firing order (no pointers: no write barriers)
	nameLen   int      // total length of those prefixes
}

// step is one trace entry, kept small and free of strings: everything it
// refers to is in the Decision or the snapshot, and Trace renders it.
// Fired rules have no step of their own: RulesFired lists them in order, and
// a skipped rule's step records how many had fired before it, so Trace
// interleaves them again. That keeps the per-rule work of Route minimal.
type step struct {
	kind stepKind
	sub  uint8  // forwardReason for stepForward
	n    uint16 // rule index, or a count
	at   uint16 // stepRuleLow: len(RulesFired) when the rule was skipped
}

type stepKind uint8

const (
	stepNumber stepKind = iota
	stepNotFound
	stepCaller
	stepRules      // n = how many rules match C
	stepRuleLow    // n = rule index; matched, but R is below its reputation
	stepRulesDone  // end of the rules: fired rules not yet rendered follow
	stepForward    // sub = forwardReason
	stepForwardOff // forwarding is off
	stepExtension
	stepCallerName
	stepTags
)

// Results of a fired voice-captcha rule, for the trace.
const (
	captchaAsk uint8 = iota + 1
	captchaPassed
	captchaAgain // passed earlier in this call: not asked again
	captchaFail
)

// reset clears d for a new call, keeping its slices' capacity.
func (d *Decision) reset() {
	*d = Decision{
		Tags:       d.Tags[:0],
		RulesFired: d.RulesFired[:0],
		steps:      d.steps[:0],
		prefixes:   d.prefixes[:0],
	}
}

func (d *Decision) add(k stepKind, sub uint8, n int) {
	d.steps = append(d.steps, step{kind: k, sub: sub, n: uint16(n)})
}

func (d *Decision) addTag(t string) {
	if !slices.Contains(d.Tags, t) {
		d.Tags = append(d.Tags, t)
	}
}

// Route decides the call req and writes the decision into d (SPEC §3). d is
// reset first; its slices keep their capacity, so a reused Decision makes
// Route allocation-free on every path except the caller name of a routed or
// forwarded call (and a Caller not given in +E164 form).
func (s *Snapshot) Route(req *Request, d *Decision) {
	d.reset()
	d.rep = req.Reputation
	d.captcha = req.Captcha
	c := parseCaller(req.Caller)
	d.Caller, d.ckind = c.e164, c.kind

	// 1. Number.
	n := s.lookup(req.Number)
	if n == nil {
		d.query = req.Number
		d.Outcome, d.SIPStatus = OutcomeNotFound, 404
		d.CallerName = req.CallerName
		d.add(stepNotFound, 0, 0)
		return
	}
	d.num, d.Number = n, n.e164
	d.add(stepNumber, 0, 0)
	sameCountry := c.kind == callerNumber && c.cc != 0 && c.cc == n.cc
	if sameCountry {
		d.callerNSN = c.nsn
	}
	d.add(stepCaller, 0, 0)
	for _, t := range n.cfg.Tags {
		d.addTag(t)
	}

	// 2. Rules.
	stop := d.rules(n, &c)
	switch {
	case stop && d.Outcome != OutcomeRouted:
		// Rejected, captcha pending or failed: nobody is called, so the
		// name is left as received; the tags still go to the call record.
		d.CallerName = req.CallerName
		d.add(stepTags, 0, 0)
		return
	case stop:
		// A route rule sent the call away: forwarding does not apply.
	case n.forward != forwardOff:
		// 3. Forwarding.
		d.Outcome, d.Destination = OutcomeForwarded, n.forwardDest
		d.add(stepForward, uint8(n.forward), 0)
	default:
		// 4. Extension.
		d.add(stepForwardOff, 0, 0)
		d.Outcome, d.Destination = OutcomeRouted, n.cfg.Extension
		d.add(stepExtension, 0, 0)
	}

	// 5. Caller name.
	d.CallerName = d.callerName(n, req.CallerName)
	d.add(stepCallerName, 0, 0)
	// 6. Tags: collected as rules fired; this step is for the trace.
	d.add(stepTags, 0, 0)
}

// rules runs step 2 and reports whether a rule ended the decision (rejected,
// routed, captcha pending or failed).
func (d *Decision) rules(n *number, c *caller) (stop bool) {
	rs := n.rules
	if rs == nil {
		d.add(stepRules, 0, 0)
		return false
	}
	var m bitset
	rs.match(c, n.cc, &m)
	d.add(stepRules, 0, m.count())
	// The loop appends to locals, stored back once: up to 300 rules can fire
	// and writing slice headers into *d each time costs more than the rest.
	fired, steps, prefixes, tags := d.RulesFired, d.steps, d.prefixes, d.Tags
	byPos, tagIDs, runs, rep := rs.byPos, rs.tagIDs, rs.runs, d.rep
	seen, nameLen := n.tagSeen, 0 // tag bits already in tags; length of the fired cnam prefixes
loop:
	for w := range m {
		for word := m[w]; word != 0; {
			pos := w<<6 + bits.TrailingZeros64(word)
			word &= word - 1
			ri := &byPos[pos]
			if rep < ri.level {
				steps = append(steps, step{kind: stepRuleLow, n: ri.idx, at: uint16(len(fired))})
				continue
			}
			if ri.act == actCNAMRun {
				fired = append(fired, runs.fileIdx[pos:pos+int(runs.runLen[pos])]...)
			} else {
				fired = append(fired, int(ri.idx))
			}
			if ri.ntags > 0 {
				if tagIDs == nil {
					for _, t := range rs.tags[ri.tags : ri.tags+ri.ntags] {
						if !slices.Contains(tags, t) {
							tags = append(tags, t)
						}
					}
				} else if fresh := ri.mask &^ seen; fresh != 0 {
					seen |= fresh
					for k := int(ri.tags); fresh != 0; k++ {
						if bit := uint64(1) << tagIDs[k]; fresh&bit != 0 {
							fresh &^= bit
							tags = append(tags, rs.tags[k])
						}
					}
				}
			}
			switch ri.act {
			case actCNAMPrefix:
				prefixes = append(prefixes, uint16(pos))
				nameLen += len(ri.arg)
			case actCNAMRun:
				// One entry: arg holds the run's prefixes, joined. The
				// run's other bits are all set (same pattern): skip them.
				prefixes = append(prefixes, uint16(pos))
				nameLen += len(ri.arg)
				end := pos + int(runs.runLen[pos])
				if rel := end - w<<6; rel < 64 {
					word &= ^uint64(0) << rel
				} else {
					word = 0
					for k := w + 1; k < end>>6; k++ {
						m[k] = 0
					}
					if k := end >> 6; k < len(m) {
						m[k] &= ^uint64(0) << (end & 63)
					}
				}
			case actRejectBusy:
				d.Outcome, d.SIPStatus, stop = OutcomeRejected, 486, true
			case actReject503:
				d.Outcome, d.SIPStatus, stop = OutcomeRejected, 503, true
			case actRoute:
				d.Outcome, d.Destination, stop = OutcomeRouted, ri.arg, true
			case actVoiceCaptcha:
				// Trace replays this to say which captcha rule asked,
				// passed, was passed already or failed (captchaResults).
				d.Captcha = true
				switch d.captcha {
				case CaptchaPassed:
				case CaptchaFailed:
					d.Outcome, stop = OutcomeCaptchaFailed, true
				default:
					d.Outcome, d.CaptchaPending, stop = OutcomeCaptchaPending, true, true
				}
			}
			if stop {
				break loop
			}
		}
	}
	d.RulesFired, d.prefixes, d.Tags, d.nameLen = fired, prefixes, tags, nameLen
	d.steps = append(steps, step{kind: stepRulesDone})
	return stop
}

// callerName applies step 5: the number's cnam_prefix, then the prefixes of
// the fired cnam-prefix rules with the latest leftmost, then the name. It
// allocates once at most, and not at all when there is nothing to prepend.
func (d *Decision) callerName(n *number, name string) string {
	pre := n.cfg.CNAMPrefix
	switch {
	case len(d.prefixes) == 0 && pre == "":
		return name
	case len(d.prefixes) == 0 && name == "":
		return pre
	case len(d.prefixes) == 1 && pre == "" && name == "":
		return n.rules.byPos[d.prefixes[0]].arg
	}
	var byPos []ruleInfo
	if len(d.prefixes) > 0 {
		byPos = n.rules.byPos
	}
	// Built in place and handed over as a string without a copy (as
	// strings.Builder does): b is never written again.
	b := make([]byte, len(pre)+d.nameLen+len(name))
	i := copy(b, pre)
	for j := len(d.prefixes) - 1; j >= 0; j-- {
		p := byPos[d.prefixes[j]].arg
		if len(p) <= 16 {
			// Short prefixes ("VIP ") are the rule: a loop beats a memmove call.
			for k := 0; k < len(p); k++ {
				b[i+k] = p[k]
			}
			i += len(p)
		} else {
			i += copy(b[i:], p)
		}
	}
	copy(b[i:], name)
	return unsafe.String(&b[0], len(b))
}
