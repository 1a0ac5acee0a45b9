package routing

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// This file holds the policy the SIP front applies around Route (SPEC §3
// "Reputation", the dial plan of registered users, the toll-fraud guard) as
// pure functions, so that every branch is table-tested without a SIP stack.

// ScoreLevel is the reputation of a carrier's 0-100 spam score (SPEC §3):
// >=90 high, >=60 medium, >=30 low, anything lower (negative included) none.
func ScoreLevel(score int) config.Level {
	switch {
	case score >= 90:
		return config.LevelHigh
	case score >= 60:
		return config.LevelMedium
	case score >= 30:
		return config.LevelLow
	}
	return config.LevelNone
}

// HeaderLevel is the reputation of a trunk's reputation_header value: a
// decimal integer score, optionally signed, with surrounding white space.
// Like the fmt.Sscan it replaces, it reads the leading integer and ignores
// what follows it ("60.5" is 60, "95;src=x" is 95), so carriers that append
// a fraction or a comment keep working. Unlike fmt.Sscan it reads leading
// zeros as decimal ("0095" is 95, not 0) and no base prefixes or '_'. A value
// without a leading integer, or one out of int range, is none: an unreadable
// header must not make a caller look worse than no header does.
func HeaderLevel(value string) config.Level {
	v := strings.TrimSpace(value)
	i := 0
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		i++
	}
	j := i
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	if j == i {
		return config.LevelNone
	}
	score, err := strconv.Atoi(v[:j])
	if err != nil {
		return config.LevelNone
	}
	return ScoreLevel(score)
}

// Verstat values of STIR/SHAKEN (3GPP TS 24.229) that lower a caller's
// reputation; TN-Validation-Passed leaves it alone.
const (
	verstatParam  = "verstat="
	verstatFailed = "tn-validation-failed"
	verstatNone   = "no-tn-validation"
)

// VerstatLevel is the reputation a STIR/SHAKEN verstat parameter in a header
// value (P-Asserted-Identity or From) gives the caller, compared without
// regard to ASCII case: TN-Validation-Failed is high (the carrier checked and
// the number is spoofed), No-TN-Validation low (nobody vouches for it), any
// other value or none at all is none. As before, the parameter is found
// anywhere in the value and a value is matched by its start, so
// carrier-specific suffixes ("TN-Validation-Failed-B") count; when a value
// carries several, the worst wins.
func VerstatLevel(value string) config.Level {
	level := config.LevelNone
	for i := 0; i+len(verstatParam) <= len(value); i++ {
		if value[i]|0x20 != 'v' || !hasPrefixFold(value[i:], verstatParam) {
			continue
		}
		rest := value[i+len(verstatParam):]
		switch {
		case hasPrefixFold(rest, verstatFailed):
			return config.LevelHigh
		case hasPrefixFold(rest, verstatNone):
			level = config.LevelLow
		}
	}
	return level
}

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix,
// ignoring case. Comparing a window of exactly len(prefix) bytes means only
// ASCII can match: a non-ASCII rune takes several bytes, so the window would
// hold fewer runes than prefix has.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// AllowedDestination reports whether a registered user of the account may
// dial number (E.164; the other forms NormalizeNumber accepts are read too)
// through the default trunk: the toll-fraud guard. With
// defaults.allowed_destinations configured, number must match one of them: a
// pattern ending in '*' is a prefix, any other an exact number, and a pattern
// without '+' is read as if it had one ("34*" is "+34*", "*" allows all).
// Without them, only numbers in the account's home country may be dialled
// (see homeCountry); an account without any number may dial none.
func (s *Snapshot) AllowedDestination(number string) bool {
	d, ok := e164Digits(number)
	if !ok {
		return false
	}
	if patterns := s.doc.Defaults.AllowedDestinations; len(patterns) > 0 {
		for _, p := range patterns {
			if destinationMatches(p, d) {
				return true
			}
		}
		return false
	}
	cc, _ := s.homeCountry()
	if cc == 0 {
		return false
	}
	got, _ := countryCode(d)
	return got == cc
}

// destinationMatches matches an allowed_destinations pattern against E.164
// digits (no '+'). It compares the digits rather than building "+"+pattern,
// so the check does not allocate.
func destinationMatches(p, digits string) bool {
	p = strings.TrimPrefix(p, "+")
	if body, prefix := strings.CutSuffix(p, "*"); prefix {
		return strings.HasPrefix(digits, body)
	}
	return digits == p
}

// homeCountry is the country a user may dial when allowed_destinations is
// not configured, and what it comes from (for the trace): the country of
// defaults.service_number, or else of the account's lowest number in sort
// order — the old code took whichever number map iteration gave first, so
// an account with numbers in several countries allowed a different country
// from one call to the next. cc is 0 when there is no home number at all.
func (s *Snapshot) homeCountry() (cc int, from string) {
	if d, ok := e164Digits(s.doc.Defaults.ServiceNumber); ok {
		if cc, _ := countryCode(d); cc != 0 {
			return cc, "the service number " + s.doc.Defaults.ServiceNumber
		}
	}
	// Compile set homeCC to the country every number shares (see
	// accountCountry), which is then also the lowest number's: this spares a
	// scan of a large account's numbers on every external call.
	if s.homeCC != 0 && len(s.numbers) > 0 {
		return s.homeCC, "the account's numbers"
	}
	var lowest *number
	for i := range s.numbers {
		if n := &s.numbers[i]; lowest == nil || n.e164 < lowest.e164 {
			lowest = n
		}
	}
	if lowest == nil {
		return 0, ""
	}
	return lowest.cc, "the account's number " + lowest.e164
}

// DialKind is what a registered user's dialled string turned out to be.
type DialKind uint8

// Kinds of dialled strings, in the order Dial tries them.
const (
	DialNotFound DialKind = iota // none of the below: answer 404
	DialOrbit                    // a park orbit: pick up the call parked there
	DialCode                     // a user's extension number or an extension's code
	DialExternal                 // an E.164 number, allowed: out through the default trunk
	DialRefused                  // an E.164 number outside allowed_destinations: answer 403
)

var dialKindNames = [...]string{"not found", "orbit", "code", "external", "refused"}

// String returns the kind's name, for logs and test failures.
func (k DialKind) String() string {
	if int(k) < len(dialKindNames) {
		return dialKindNames[k]
	}
	return "DialKind(" + strconv.Itoa(int(k)) + ")"
}

// Dialled is the dial-plan decision for what a registered user dialled.
type Dialled struct {
	Kind DialKind
	// Target is where the call goes: the code's target ("user:bob" or an
	// extension's name) for DialCode, the E.164 number for DialExternal and
	// DialRefused, the orbit to pick up from for DialOrbit.
	Target string
	// Park is the park lot that owns the orbit, for DialOrbit.
	Park string
	// Note is the decision as one line of the call's trace (or, for
	// DialRefused and DialNotFound, of the log: those calls get no trace).
	Note string
}

// Dial decides what a registered user's dialled string (the Request-URI
// user) is, in the order the SIP front has always used: a park orbit, then a
// user extension or extension code, then an external number, which
// AllowedDestination must allow. Orbits come before codes because picking
// up a parked call is not sending a call to the lot. The orbit, code and
// external notes are worded as the call traces have always been.
func (s *Snapshot) Dial(dialled string) Dialled {
	if lot, ok := s.LookupOrbit(dialled); ok {
		return Dialled{Kind: DialOrbit, Target: dialled, Park: lot,
			Note: fmt.Sprintf("%s is an orbit of park lot %s: pick up", dialled, lot)}
	}
	if target, ok := s.LookupCode(dialled); ok {
		return Dialled{Kind: DialCode, Target: target, Note: fmt.Sprintf("%s is %s", dialled, target)}
	}
	number, ok := NormalizeNumber(dialled)
	if !ok {
		return Dialled{Kind: DialNotFound, Note: fmt.Sprintf("%q is not a park orbit, a code or a number", dialled)}
	}
	if !s.AllowedDestination(number) {
		return Dialled{Kind: DialRefused, Target: number, Note: s.refusal(number)}
	}
	return Dialled{Kind: DialExternal, Target: number, Note: fmt.Sprintf("external number %s via the default trunk", number)}
}

// refusal explains why AllowedDestination refused number, naming the
// default when no allowed_destinations are configured, since nothing in the
// document then says which country is allowed.
func (s *Snapshot) refusal(number string) string {
	if len(s.doc.Defaults.AllowedDestinations) > 0 {
		return number + " is not in allowed_destinations"
	}
	cc, from := s.homeCountry()
	if cc == 0 {
		return number + " is not in allowed_destinations (none configured, and the account has no number to take a country from)"
	}
	return fmt.Sprintf("%s is not in allowed_destinations (none configured: only +%d, the country of %s)", number, cc, from)
}

// The flood guard of SPEC §3: the same caller placing more than FloodLimit
// calls within FloodWindow to the account is high.
const (
	FloodLimit  = 10
	FloodWindow = time.Minute
)

// floodRing is the number of timestamps kept per caller: FloodLimit+1 is the
// most FloodLevel ever needs to see, so counts saturate there.
const floodRing = FloodLimit + 1

// floodKey is a caller of an account; caller is E.164 digits without '+'.
type floodKey struct {
	account, caller string
}

// floodCalls are the newest floodRing call times of one key, in Unix
// microseconds (8 bytes each rather than a time.Time's 24, and defined for
// every date a clock gives), in no particular order.
type floodCalls struct {
	at [floodRing]int64
	n  uint8
}

// add records a call at t, replacing the oldest kept one when full, so that
// the ring always holds the newest times even if calls arrive out of order.
func (c *floodCalls) add(t int64) {
	if int(c.n) < len(c.at) {
		c.at[c.n] = t
		c.n++
		return
	}
	oldest := 0
	for i := 1; i < len(c.at); i++ {
		if c.at[i] < c.at[oldest] {
			oldest = i
		}
	}
	if t > c.at[oldest] {
		c.at[oldest] = t
	}
}

// since counts the kept calls after cutoff. Calls later than now count too:
// two calls taking time.Now and then the guard's lock can swap order.
func (c *floodCalls) since(cutoff int64) int {
	n := 0
	for _, t := range c.at[:c.n] {
		if t > cutoff {
			n++
		}
	}
	return n
}

// FloodGuard counts each caller's recent calls to each account. It is pure
// (the clock is passed in, nothing is stored outside the process) and safe
// for concurrent use. The times passed in should come from one clock
// (time.Now): a jump of more than FloodWindow forward ends the counts so far,
// as the window itself would have.
//
// Memory stays bounded without scanning: keys live in two generations, each
// at least FloodWindow long. A call moves its key into the current one; when
// a generation is over, the previous one is dropped whole, since none of its
// keys has had a call for at least FloodWindow. So the guard holds at most
// the distinct callers of the last two windows, FloodLimit+1 times each.
type FloodGuard struct {
	mu    sync.Mutex
	cur   map[floodKey]*floodCalls
	prev  map[floodKey]*floodCalls
	start int64 // when cur began (Unix microseconds), once began is set
	began bool
}

// NewFloodGuard returns an empty flood guard.
func NewFloodGuard() *FloodGuard {
	return &FloodGuard{cur: make(map[floodKey]*floodCalls), prev: make(map[floodKey]*floodCalls)}
}

// FloodCaller is the key the flood guard counts a caller's calls under (see
// floodCaller), for a count kept elsewhere; ok is false for a caller not
// counted.
func FloodCaller(caller string) (key string, ok bool) { return floodCaller(caller) }

// floodCaller is the key form of a caller: its E.164 digits, so that
// "+34600111222", "0034600111222" and "34600111222" are one caller. A
// withheld or non-numeric caller has none (ok false): anonymous callers are
// not "the same caller", and counting them as one would make every withheld
// call high once a few arrived in a minute.
func floodCaller(caller string) (string, bool) {
	if isWithheld(caller) {
		return "", false
	}
	return e164Digits(caller)
}

// Observe records a call from caller to account at now and returns how many
// calls (this one included) the caller placed to the account within
// FloodWindow. The count saturates at FloodLimit+1, which is all FloodLevel
// needs. A withheld or non-numeric caller is not recorded and gets 0.
func (g *FloodGuard) Observe(account, caller string, now time.Time) int {
	d, ok := floodCaller(caller)
	if !ok {
		return 0
	}
	t := now.UnixMicro()
	k := floodKey{account, d}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rotate(t)
	c := g.cur[k]
	if c == nil {
		if c = g.prev[k]; c != nil {
			delete(g.prev, k)
		} else {
			// Clone: the strings may point into a whole SIP message, which
			// the map would otherwise keep alive.
			k = floodKey{strings.Clone(account), strings.Clone(d)}
			c = new(floodCalls)
		}
		g.cur[k] = c
	}
	c.add(t)
	return c.since(t - FloodWindow.Microseconds())
}

// rotate starts a new generation when the current one has lasted
// FloodWindow. Every key in prev then had its last call before the current
// generation began, which is at least FloodWindow ago, so prev is dropped;
// after a quiet spell of two windows cur is stale too.
func (g *FloodGuard) rotate(t int64) {
	w := FloodWindow.Microseconds()
	switch {
	case !g.began:
		g.start, g.began = t, true
		return
	case t-g.start < w:
		return
	case t-g.start >= 2*w:
		g.prev = make(map[floodKey]*floodCalls)
	default:
		g.prev = g.cur
	}
	// A new map rather than clear: a cleared map keeps the buckets a burst
	// of callers made it grow to.
	g.cur = make(map[floodKey]*floodCalls)
	g.start = t
}

// Count returns how many calls the caller placed to the account within
// FloodWindow before now, without recording one (saturating at FloodLimit+1,
// 0 for a withheld or non-numeric caller).
func (g *FloodGuard) Count(account, caller string, now time.Time) int {
	d, ok := floodCaller(caller)
	if !ok {
		return 0
	}
	cutoff := now.UnixMicro() - FloodWindow.Microseconds()
	k := floodKey{account, d}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.cur[k]; c != nil {
		return c.since(cutoff)
	}
	if c := g.prev[k]; c != nil {
		return c.since(cutoff)
	}
	return 0
}

// FloodLevel is the reputation a caller gets with calls calls in the
// window: high when more than FloodLimit, otherwise none.
func FloodLevel(calls int) config.Level {
	if calls > FloodLimit {
		return config.LevelHigh
	}
	return config.LevelNone
}
