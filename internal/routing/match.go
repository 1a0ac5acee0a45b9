package routing

import (
	"math/bits"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/switchboard/switchboard/internal/config"
)

// maxDigits is the longest E.164 number (country code included). A caller
// with more digits is not a phone number, and a pattern with more digits can
// never match one, so the matcher never has to look further.
const maxDigits = 15

// callingCodes[cc] is true for every assigned country calling code. Calling
// codes are prefix-free (ITU E.164), so the first 1-, 2- or 3-digit prefix of
// a number found here is its country code: no phonenumbers.Parse per call.
var callingCodes = func() (t [1000]bool) {
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		if cc > 0 && cc < len(t) {
			t[cc] = true
		}
	}
	return t
}()

// countryCode returns the calling code of E.164 digits (no '+') and its
// length in digits, or 0, 0 when no assigned code starts the number or
// nothing follows it.
func countryCode(digits string) (cc, n int) {
	v := 0
	for l := 1; l <= 3 && l < len(digits); l++ {
		v = v*10 + int(digits[l-1]-'0')
		if callingCodes[v] {
			return v, l
		}
	}
	return 0, 0
}

// isWithheld reports whether a calling number means "no number". Besides the
// empty string and "anonymous" (SPEC §6) it accepts the other From user parts
// that carriers send for a presentation-restricted call, so that an
// "anonymous" rule catches them too.
func isWithheld(s string) bool {
	switch len(s) {
	case 0:
		return true
	case 7:
		return strings.EqualFold(s, "unknown") || strings.EqualFold(s, "private")
	case 9:
		return strings.EqualFold(s, "anonymous")
	case 10:
		return strings.EqualFold(s, "restricted")
	case 11:
		return strings.EqualFold(s, "unavailable")
	}
	return false
}

// isSeparator reports the visual separators people put in phone numbers.
func isSeparator(c byte) bool {
	return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')'
}

// e164Digits returns the E.164 digits (without '+') of a number written as
// +E164, 00E164 or bare E.164 digits, ignoring visual separators. It does not
// allocate unless separators have to be removed. A leading 0 after the
// international prefix is refused: that is a national (trunk-prefixed) form,
// whose country cannot be known.
func e164Digits(s string) (string, bool) {
	switch {
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	case strings.HasPrefix(s, "00"):
		s = s[2:]
	}
	clean := true
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			n++
		case isSeparator(c):
			clean = false
		default:
			return "", false
		}
	}
	if !clean {
		b := make([]byte, 0, n)
		for i := 0; i < len(s); i++ {
			if c := s[i]; c >= '0' && c <= '9' {
				b = append(b, c)
			}
		}
		s = string(b)
	}
	if n == 0 || n > maxDigits || s[0] == '0' {
		return "", false
	}
	return s, true
}

// NormalizeNumber returns s (+E164, 00E164 or bare E.164 digits, visual
// separators allowed) in E.164 form, or false if it is not a number.
func NormalizeNumber(s string) (string, bool) {
	d, ok := e164Digits(s)
	if !ok {
		return "", false
	}
	if len(s) == len(d)+1 && s[0] == '+' {
		return s, true
	}
	return "+" + d, true
}

// callerKind says what kind of calling number a request carried.
type callerKind uint8

const (
	callerNumber   callerKind = iota // a phone number
	callerWithheld                   // presentation restricted / no number
	callerInvalid                    // something that is not a number (a SIP user name...)
)

// caller is a parsed calling number. All strings point into the request's
// string when it was already in E.164 form, so parsing does not allocate.
type caller struct {
	kind   callerKind
	e164   string // "+digits"; the raw string for callerInvalid; "anonymous" when withheld
	digits string // E.164 digits without '+'
	cc     int    // country calling code, 0 if unknown
	nsn    string // national significant number: digits after cc
}

// Anonymous is the normalised form of a withheld calling number.
const Anonymous = "anonymous"

func parseCaller(s string) caller {
	if isWithheld(s) {
		return caller{kind: callerWithheld, e164: Anonymous}
	}
	d, ok := e164Digits(s)
	if !ok {
		return caller{kind: callerInvalid, e164: s}
	}
	c := caller{digits: d}
	if len(s) == len(d)+1 && s[0] == '+' {
		c.e164 = s
	} else {
		c.e164 = "+" + d
	}
	var l int
	if c.cc, l = countryCode(d); c.cc != 0 {
		c.nsn = d[l:]
	}
	return c
}

// patternKind classifies a caller-prefix pattern (config.CheckPrefix syntax).
type patternKind uint8

const (
	patAll       patternKind = iota // "*": every caller
	patAnonymous                    // "anonymous": a withheld caller
	patDigits                       // [+]digits[*]
	patNever                        // more digits than any number has: matches nothing
)

// pattern is a compiled caller-prefix pattern.
type pattern struct {
	raw    string // as configured
	kind   patternKind
	plus   bool   // written with '+': matched against E.164 digits only
	prefix bool   // trailing '*': prefix match, otherwise the whole number
	body   string // the digits
}

func parsePattern(p string) (pattern, error) {
	if err := config.CheckPrefix(p); err != nil {
		return pattern{}, err
	}
	switch p {
	case "*":
		return pattern{raw: p, kind: patAll}, nil
	case "anonymous":
		return pattern{raw: p, kind: patAnonymous}, nil
	}
	pt := pattern{raw: p, kind: patDigits}
	if strings.HasPrefix(p, "+") {
		pt.plus, p = true, p[1:]
	}
	if strings.HasSuffix(p, "*") {
		pt.prefix, p = true, p[:len(p)-1]
	}
	pt.body = p
	if len(p) > maxDigits {
		pt.kind = patNever
	}
	return pt, nil
}

// match is the straightforward matcher, used for user blocklists (a handful
// of patterns, off the hot path). Rules use the trie in ruleSet.
// A lone '*' matches every caller, withheld and invalid ones included: it is
// the catch-all (a captcha for everybody, a night-time reject) and hiding the
// number must not be a way around it.
func (p *pattern) match(c *caller, sameCountry bool) bool {
	switch p.kind {
	case patAll:
		return true
	case patAnonymous:
		return c.kind == callerWithheld
	case patNever:
		return false
	}
	if c.kind != callerNumber {
		return false
	}
	if p.matchDigits(c.digits) {
		return true
	}
	return !p.plus && sameCountry && c.nsn != "" && p.matchDigits(c.nsn)
}

func (p *pattern) matchDigits(d string) bool {
	if p.prefix {
		return strings.HasPrefix(d, p.body)
	}
	return d == p.body
}

// words is the size of a bitset that holds one bit per rule of a number.
const words = (config.MaxRulesPerNumber + 63) / 64

// bitset has one bit per rule position (rules sorted by weight, then file
// order), so iterating its set bits visits matching rules in execution order
// without sorting or allocating.
type bitset [words]uint64

func (b *bitset) set(pos uint16)      { b[pos>>6] |= 1 << (pos & 63) }
func (b *bitset) has(pos uint16) bool { return b[pos>>6]&(1<<(pos&63)) != 0 }
func (b *bitset) setAll(list []uint16) {
	for _, p := range list {
		b.set(p)
	}
}

func (b *bitset) or(o *bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

func (b *bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// trieNode is one digit of the pattern trie. Child and term indexes are
// uint16: a number has at most 300 rules of at most 15 digits, so at most
// 4501 nodes. Index 0 is the root, which is never a child, so 0 means "none".
type trieNode struct {
	child [10]uint16
	term  uint16 // 1 + index into ruleSet.terms, 0 if no pattern ends here
}

// trieTerm lists the rule positions whose pattern ends at a node, stored in
// ruleSet.lists from off as four runs: prefix patterns without '+', prefix
// patterns with '+', exact patterns without '+', exact patterns with '+'.
// The order lets a walk take a run or two adjacent runs as one slice.
type trieTerm struct {
	off                                  uint32
	prefix, prefixPlus, exact, exactPlus uint16
}

// Categories of a pattern at its trie node, in trieTerm's run order.
const (
	catPrefix = iota
	catPrefixPlus
	catExact
	catExactPlus
)

// walk sets the bits of the rules whose digit pattern matches digits. When
// national is true, digits is a national significant number and patterns
// written with '+' are left out.
func (rs *ruleSet) walk(digits string, national bool, m *bitset) {
	nodes := rs.nodes
	if len(nodes) == 0 {
		return
	}
	n := uint16(0)
	for i := 0; i < len(digits); i++ {
		n = nodes[n].child[digits[i]-'0']
		if n == 0 {
			return
		}
		t := nodes[n].term
		if t == 0 {
			continue
		}
		tm := &rs.terms[t-1]
		l := rs.lists[tm.off:]
		p, pp := int(tm.prefix), int(tm.prefixPlus)
		if national {
			m.setAll(l[:p])
		} else {
			m.setAll(l[:p+pp])
		}
		if i == len(digits)-1 {
			e := l[p+pp:]
			if national {
				m.setAll(e[:tm.exact])
			} else {
				m.setAll(e[:int(tm.exact)+int(tm.exactPlus)])
			}
		}
	}
}

// match sets in m the positions of every rule whose pattern matches c, on a
// number in country cc. "*" rules match every caller, withheld and
// non-numeric ones included (see pattern.match for why).
func (rs *ruleSet) match(c *caller, cc int, m *bitset) {
	t := rs.runs
	if t != nil && t.allDense {
		m.or(&t.all)
	} else {
		m.setAll(rs.all)
	}
	switch c.kind {
	case callerWithheld:
		if t != nil && t.anonDense {
			m.or(&t.anonymous)
		} else {
			m.setAll(rs.anonymous)
		}
	case callerNumber:
		rs.walk(c.digits, false, m)
		if cc != 0 && c.cc == cc && c.nsn != "" {
			rs.walk(c.nsn, true, m)
		}
	}
}
