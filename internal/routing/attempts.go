package routing

import (
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
)

// Plan is the attempt plan of a target for one call, with the reasons.
type Plan struct {
	// Waves are tried in order; the targets of one wave ring together.
	// Members are written exactly as in the configuration.
	Waves [][]string
	// Notes explain the plan in trace form ("attempts: ..."): the
	// distribution, where a rotating group starts, which members were
	// skipped because their user's blocklist matches the caller.
	Notes []string
}

// Attempts returns the attempt plan of target for the next call from
// caller; see Plan.
func (s *Snapshot) Attempts(target, caller string, counter uint64) [][]string {
	return s.Plan(target, caller, counter).Waves
}

// Plan returns the attempt plan of target for the next call from caller
// (SPEC §3 "Extensions"). For a group extension:
//   - sequential: [[m0], [m1], ...] in list order;
//   - rotating: one member per wave starting at counter mod len(members),
//     continuing in order and wrapping (counter is the group's rotation
//     counter; see IsRotating);
//   - multi-ring: waves of max_parallel members in list order.
//
// Members whose user's blocklist matches the caller are left out (after the
// rotation is applied, so that the rotation does not depend on the caller)
// and the waves are formed from the remaining members. An individual
// extension gives [[destination]]; any other target (user:, +E164, sip:, an
// ivr, ...) gives [[target]]: the executor resolves those itself.
func (s *Snapshot) Plan(target, caller string, counter uint64) Plan {
	if target == "" {
		return Plan{}
	}
	e, ok := s.doc.Extensions[target]
	if !ok {
		return Plan{Waves: [][]string{{target}}}
	}
	if e.EffectiveType() != config.TypeGroup {
		return Plan{
			Waves: [][]string{{e.Destination}},
			Notes: []string{"attempts: " + target + " is an individual extension -> " + e.Destination},
		}
	}
	var p Plan
	members := e.Members
	n := len(members)
	if n == 0 {
		return p
	}
	dist := e.EffectiveDistribution()
	start := 0
	switch dist {
	case config.Rotating:
		start = int(counter % uint64(n))
		p.Notes = append(p.Notes, "attempts: "+target+" is a rotating group; counter "+
			strconv.FormatUint(counter, 10)+" starts at member "+strconv.Itoa(start)+" ("+members[start]+")")
	case config.MultiRing:
		p.Notes = append(p.Notes, "attempts: "+target+" is a multi-ring group, "+
			strconv.Itoa(e.EffectiveMaxParallel())+" at a time")
	default:
		p.Notes = append(p.Notes, "attempts: "+target+" is a sequential group")
	}
	c := parseCaller(caller)
	kept := make([]string, 0, n)
	for k := range n {
		m := members[(start+k)%n]
		if user, pat, blocked := s.memberBlocked(m, &c); blocked {
			p.Notes = append(p.Notes, "attempts: member "+m+" skipped: "+user+"'s blocklist "+pat+" matches "+c.e164)
			continue
		}
		kept = append(kept, m)
	}
	size := 1
	if dist == config.MultiRing {
		size = max(e.EffectiveMaxParallel(), 1)
	}
	for i := 0; i < len(kept); i += size {
		j := min(i+size, len(kept))
		p.Waves = append(p.Waves, kept[i:j:j]) // capped: appending to one wave must not overwrite the next
	}
	if len(p.Waves) == 0 {
		p.Notes = append(p.Notes, "attempts: no member left to try")
		return p
	}
	waves := make([]string, len(p.Waves))
	for i, w := range p.Waves {
		waves[i] = strings.Join(w, " + ")
	}
	p.Notes = append(p.Notes, "attempts: "+strings.Join(waves, " -> "))
	return p
}

// IsRotating reports whether extension is a rotating group, whose plan
// depends on the rotation counter: only then does the caller need to read
// (and advance) it.
func (s *Snapshot) IsRotating(extension string) bool {
	e, ok := s.doc.Extensions[extension]
	return ok && e.EffectiveType() == config.TypeGroup && e.EffectiveDistribution() == config.Rotating
}

// Blocked reports whether user's blocklist matches caller, and the pattern
// that does. Patterns follow rule prefixes: a '+' pattern is matched against
// the E.164 number; one without '+' against its digits, or, for a caller in
// the account's own country (that of defaults.service_number, or of all its
// numbers), its national number; "anonymous" matches a withheld caller.
func (s *Snapshot) Blocked(user, caller string) (pattern string, blocked bool) {
	c := parseCaller(caller)
	return s.blocked(user, &c)
}

func (s *Snapshot) blocked(user string, c *caller) (string, bool) {
	same := s.homeCC != 0 && c.kind == callerNumber && c.cc == s.homeCC
	for i := range s.blocklists[user] {
		if p := &s.blocklists[user][i]; p.match(c, same) {
			return p.raw, true
		}
	}
	return "", false
}

// memberBlocked checks the blocklist of the user a group member refers to
// (user:NAME, or a bare NAME that is a user).
func (s *Snapshot) memberBlocked(member string, c *caller) (user, pattern string, blocked bool) {
	user, isUser := strings.CutPrefix(member, "user:")
	if !isUser {
		if _, ok := s.doc.Users[member]; !ok {
			return "", "", false
		}
	}
	pattern, blocked = s.blocked(user, c)
	return user, pattern, blocked
}
