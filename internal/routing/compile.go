package routing

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
)

// Snapshot is the compiled, immutable routing table of one account. It is
// safe for concurrent use; a configuration change compiles a new Snapshot
// and swaps it in (see Table), so a call in progress keeps a consistent view.
type Snapshot struct {
	doc        *config.Document
	numbers    []number
	byDigits   map[string]*number   // E.164 digits without '+' -> number
	codes      map[string]string    // dialled code -> target (user extensions, extension codes)
	orbits     map[string]string    // park orbit number -> park lot
	blocklists map[string][]pattern // user -> compiled blocklist
	homeCC     int                  // country of the account, for national blocklist patterns
	targets    map[string]Target    // every target string of the document, resolved
	// defaultTrunk is the trunk external numbers go out through.
	defaultTrunk string
}

// forwardReason says why a number's forwarding is active.
type forwardReason uint8

const (
	forwardOff forwardReason = iota
	forwardNumber
	forwardLocation
	forwardBoth
)

// number is a compiled DID.
type number struct {
	e164        string
	cc          int
	cfg         config.Number
	rules       *ruleSet // nil when the number has no rules
	tagSeen     uint64   // tag bits (ruleSet.tagIDs) of rule tags that are also the number's
	forward     forwardReason
	forwardDest string
	destFromLoc bool // forwardDest is the location's, the number has none
}

// action is a rule action, compiled.
type action uint8

const (
	actRejectBusy action = iota
	actReject503
	actCNAMPrefix
	actVoiceCaptcha
	actRoute
	// actCNAMRun marks the first rule of a run of cnam-prefix rules that
	// always fire together (see ruleSet.mergeRuns); the others keep
	// actCNAMPrefix.
	actCNAMRun
)

func parseAction(s string) (action, error) {
	switch s {
	case config.ActionRejectBusy:
		return actRejectBusy, nil
	case config.ActionReject503:
		return actReject503, nil
	case config.ActionCNAMPrefix:
		return actCNAMPrefix, nil
	case config.ActionVoiceCaptcha:
		return actVoiceCaptcha, nil
	case config.ActionRoute:
		return actRoute, nil
	}
	return 0, fmt.Errorf("%q is not one of reject-busy, reject-503, cnam-prefix, voice-captcha, route", s)
}

// ruleInfo is what Route needs of a rule at one position of the weight
// order, laid out contiguously so that running many rules stays in cache.
type ruleInfo struct {
	idx   uint16 // index in the number's rule list (file order)
	act   action
	level config.Level
	tags  uint16 // the rule's tags are ruleSet.tags[tags : tags+ntags]
	ntags uint16
	mask  uint64 // one bit per distinct tag of the rule (see ruleSet.tagIDs)
	arg   string // cnam_prefix of a cnam-prefix rule, extension of a route rule
	// For actCNAMRun, tags, ntags and mask cover the whole run and arg is
	// its prefixes joined, latest leftmost (as callerName stacks them).
}

// ruleSet is a number's rules, compiled. Numbers with identical rules share
// one ruleSet, which keeps large accounts built from a template small.
type ruleSet struct {
	rules     []config.Rule // file order, as configured
	byPos     []ruleInfo    // in execution order: ascending weight, ties by file order
	tags      []string      // every rule's tags, see ruleInfo
	tagIDs    []uint8       // per entry of tags: the same number (< 64) for the same tag; nil if there are more distinct tags
	all       []uint16      // positions of "*" rules (in lists)
	anonymous []uint16      // positions of "anonymous" rules (in lists)
	nodes     []trieNode
	terms     []trieTerm
	lists     []uint16
	runs      *runTable // nil when no rules fire together and few are "*" or "anonymous"
}

// runTable is what Route needs when many rules match at once: to fire a
// run of rules as one (see mergeRuns), and the positions of many "*" or
// "anonymous" rules as a bitset. It is kept apart, behind a pointer,
// because few rule sets need it and 100,000 numbers may each have their
// own rule set.
type runTable struct {
	runLen  []uint16 // at an actCNAMRun position: the length of its run; nil if none
	fileIdx []int    // at every position: the rule's index in file order, as RulesFired holds it
	// all and anonymous have the bits of rs.all and rs.anonymous when
	// allDense and anonDense are set: ORing 5 words beats setting one bit
	// per rule from denseList rules on.
	all, anonymous      bitset
	allDense, anonDense bool
}

// denseList is the length of a "*" or "anonymous" list from which Route
// ORs a bitset instead of setting its bits one by one.
const denseList = 8

// Compile turns a validated document into an immutable snapshot. It checks
// again what routing depends on (number syntax, rule prefixes, actions,
// levels, forwarding destinations) and returns every problem found with its
// path; it does not repeat the rest of config validation, which needs I/O.
// The document must not be modified afterwards: the snapshot refers to it.
func Compile(doc *config.Document) (*Snapshot, error) { return compile(doc, true) }

// compile is Compile; runs false leaves runs of rules unmerged, so that
// tests can check that merging them changes no decision.
func compile(doc *config.Document, runs bool) (*Snapshot, error) {
	if doc == nil {
		return nil, errors.New("routing: no document")
	}
	s := &Snapshot{
		doc:      doc,
		numbers:  make([]number, 0, len(doc.Numbers)),
		byDigits: make(map[string]*number, len(doc.Numbers)),
	}
	b := newBuilder()
	b.runs = runs
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, config.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	for key, cfg := range doc.Numbers {
		d, ok := e164Digits(key)
		if !ok || len(key) != len(d)+1 || key[0] != '+' {
			fail(numberPath(key), "%q is not an E.164 number", key)
			continue
		}
		n := number{e164: key, cfg: cfg}
		if n.cc, _ = countryCode(d); n.cc == 0 {
			fail(numberPath(key), "%q has an unknown country code", key)
		}
		if cfg.Extension == "" {
			fail(numberPath(key)+".extension", "required")
		}
		var loc config.Location
		if cfg.Location != "" {
			var found bool
			if loc, found = doc.Locations[cfg.Location]; !found {
				fail(numberPath(key)+".location", "unknown location %q", cfg.Location)
			}
		}
		if cfg.Forward != nil && cfg.Forward.Enabled {
			n.forward = forwardNumber
		}
		if loc.Forward {
			n.forward |= forwardLocation
		}
		if cfg.Forward != nil {
			n.forwardDest = cfg.Forward.Destination
		}
		if n.forwardDest == "" {
			n.forwardDest, n.destFromLoc = loc.ForwardDestination, true
		}
		if n.forward != forwardOff && n.forwardDest == "" {
			fail(numberPath(key)+".forward.destination", "forwarding is on but neither the number nor its location has a destination")
		}
		if len(cfg.Rules) > 0 {
			rs, err := b.ruleSet(cfg.Rules, key)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n.rules = rs
			n.tagSeen = rs.seenTags(cfg.Tags)
		}
		s.numbers = append(s.numbers, n)
	}
	if len(errs) > 0 {
		return nil, sortedJoin(errs)
	}
	// Pointers are taken only now that s.numbers will not grow again.
	for i := range s.numbers {
		n := &s.numbers[i]
		s.byDigits[n.e164[1:]] = n
	}
	if err := s.compileDirectory(); err != nil {
		return nil, err
	}
	return s, nil
}

// numberPath is the path of a number in validation errors.
func numberPath(key string) string { return "numbers[" + strconv.Quote(key) + "]" }

// sortedJoin joins errors in path order: map iteration order is random and
// the same document must always give the same message.
func sortedJoin(errs []error) error {
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// compileDirectory indexes what the SIP executor looks up by name or code:
// dialled codes, park orbits, user blocklists.
func (s *Snapshot) compileDirectory() error {
	doc := s.doc
	s.codes = make(map[string]string, len(doc.Users)+len(doc.Extensions))
	s.orbits = make(map[string]string)
	s.blocklists = make(map[string][]pattern)
	var errs []error
	for name, u := range doc.Users {
		if u.Extension != "" {
			s.codes[u.Extension] = "user:" + name
		}
		for i, p := range u.Blocklist {
			pt, err := parsePattern(p)
			if err != nil {
				errs = append(errs, config.FieldError{Path: fmt.Sprintf("users.%s.blocklist[%d]", name, i), Msg: err.Error()})
				continue
			}
			s.blocklists[name] = append(s.blocklists[name], pt)
		}
	}
	for name, e := range doc.Extensions {
		if e.Code != "" {
			s.codes[e.Code] = name
		}
	}
	for name, p := range doc.Parks {
		lo, hi, err := config.ParseOrbits(p.Orbits)
		if err != nil {
			errs = append(errs, config.FieldError{Path: "parks." + name + ".orbits", Msg: err.Error()})
			continue
		}
		for o := lo; o <= hi; o++ {
			s.orbits[strconv.Itoa(o)] = name
		}
	}
	if len(errs) > 0 {
		return sortedJoin(errs)
	}
	s.homeCC = s.accountCountry()
	s.compileTargets()
	return nil
}

// accountCountry is the country national blocklist patterns refer to: the
// country of defaults.service_number, or else the country all the account's
// numbers share (0, no national matching, when they are in several).
func (s *Snapshot) accountCountry() int {
	if d, ok := e164Digits(s.doc.Defaults.ServiceNumber); ok {
		if cc, _ := countryCode(d); cc != 0 {
			return cc
		}
	}
	cc := 0
	for i := range s.numbers {
		switch c := s.numbers[i].cc; {
		case cc == 0:
			cc = c
		case c != cc:
			return 0
		}
	}
	return cc
}

// builder compiles rule sets, sharing identical ones and reusing scratch
// space between numbers so that a large account compiles with few
// allocations.
type builder struct {
	seed   maphash.Seed
	shared map[uint64]*ruleSet
	next   map[*ruleSet]*ruleSet // another rule set with the same hash (rare: kept out of ruleSet)
	order  []uint16
	nodes  []trieNode
	ends   []trieEnd
	all    []uint16
	anon   []uint16
	runs   bool // merge runs of rules that fire together (off only in tests)
}

// trieEnd is a pattern ending at a trie node, before terms are laid out.
type trieEnd struct {
	node uint16
	cat  uint8
	pos  uint16
}

func newBuilder() *builder {
	return &builder{seed: maphash.MakeSeed(), shared: make(map[uint64]*ruleSet), runs: true}
}

func (b *builder) hash(rules []config.Rule) uint64 {
	var h maphash.Hash
	h.SetSeed(b.seed)
	for i := range rules {
		r := &rules[i]
		h.WriteString(r.Prefix)
		h.WriteByte(0)
		maphash.WriteComparable(&h, r.Weight)
		h.WriteString(r.Action)
		h.WriteByte(0)
		h.WriteString(r.Reputation)
		h.WriteByte(0)
		h.WriteString(r.Extension)
		h.WriteByte(0)
		h.WriteString(r.CNAMPrefix)
		h.WriteByte(0)
		for _, t := range r.Tags {
			h.WriteString(t)
			h.WriteByte(0)
		}
		h.WriteByte(1)
	}
	return h.Sum64()
}

func ruleEqual(a, b config.Rule) bool {
	return a.Prefix == b.Prefix && a.Weight == b.Weight && a.Action == b.Action &&
		a.Reputation == b.Reputation && a.Extension == b.Extension &&
		a.CNAMPrefix == b.CNAMPrefix && slices.Equal(a.Tags, b.Tags)
}

// ruleSet returns the compiled form of the rules of number key, shared with
// any number compiled before with the same rules.
func (b *builder) ruleSet(rules []config.Rule, key string) (*ruleSet, error) {
	h := b.hash(rules)
	for rs := b.shared[h]; rs != nil; rs = b.next[rs] {
		if slices.EqualFunc(rs.rules, rules, ruleEqual) {
			return rs, nil
		}
	}
	rs, err := b.build(rules, key)
	if err != nil {
		return nil, err
	}
	if old := b.shared[h]; old != nil {
		if b.next == nil {
			b.next = make(map[*ruleSet]*ruleSet)
		}
		b.next[rs] = old
	}
	b.shared[h] = rs
	return rs, nil
}

func (b *builder) build(rules []config.Rule, key string) (*ruleSet, error) {
	// Paths are only formatted for errors: 100,000 numbers compile in a
	// fraction of the time without a Sprintf per rule.
	path := func(idx int, field string) string {
		return fmt.Sprintf("%s.rules[%d].%s", numberPath(key), idx, field)
	}
	if len(rules) > config.MaxRulesPerNumber {
		return nil, config.FieldError{Path: numberPath(key) + ".rules",
			Msg: fmt.Sprintf("%d rules; a number may have at most %d", len(rules), config.MaxRulesPerNumber)}
	}
	// Execution order: ascending weight, ties by file order (stable sort).
	b.order = b.order[:0]
	ntags := 0
	for i := range rules {
		b.order = append(b.order, uint16(i))
		ntags += len(rules[i].Tags)
	}
	if ntags > math.MaxUint16 {
		return nil, config.FieldError{Path: numberPath(key) + ".rules", Msg: fmt.Sprintf("%d tags in all; a number's rules may have at most %d", ntags, math.MaxUint16)}
	}
	slices.SortStableFunc(b.order, func(x, y uint16) int { return cmp.Compare(rules[x].Weight, rules[y].Weight) })

	rs := &ruleSet{rules: rules, byPos: make([]ruleInfo, len(rules))}
	if ntags > 0 {
		rs.tags = make([]string, 0, ntags)
	}
	b.nodes = append(b.nodes[:0], trieNode{})
	b.ends, b.all, b.anon = b.ends[:0], b.all[:0], b.anon[:0]
	var errs []error
	for pos, idx := range b.order {
		r := &rules[idx]
		pt, err := parsePattern(r.Prefix)
		if err != nil {
			errs = append(errs, config.FieldError{Path: path(int(idx), "prefix"), Msg: err.Error()})
		}
		act, err := parseAction(r.Action)
		if err != nil {
			errs = append(errs, config.FieldError{Path: path(int(idx), "action"), Msg: err.Error()})
		}
		level, err := config.ParseLevel(r.Reputation)
		if err != nil {
			errs = append(errs, config.FieldError{Path: path(int(idx), "reputation"), Msg: err.Error()})
		}
		ri := ruleInfo{idx: idx, act: act, level: level, tags: uint16(len(rs.tags)), ntags: uint16(len(r.Tags))}
		switch {
		case act == actRoute && r.Extension == "":
			errs = append(errs, config.FieldError{Path: path(int(idx), "extension"), Msg: "required for action route"})
		case act == actCNAMPrefix && r.CNAMPrefix == "":
			errs = append(errs, config.FieldError{Path: path(int(idx), "cnam_prefix"), Msg: "required for action cnam-prefix"})
		case act == actRoute:
			ri.arg = r.Extension
		case act == actCNAMPrefix:
			ri.arg = r.CNAMPrefix
		}
		rs.byPos[pos] = ri
		rs.tags = append(rs.tags, r.Tags...)
		p := uint16(pos)
		switch pt.kind {
		case patAll:
			b.all = append(b.all, p)
		case patAnonymous:
			b.anon = append(b.anon, p)
		case patDigits:
			b.insert(pt, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	b.layout(rs)
	rs.tagIDs = rs.assignTagIDs()
	if b.runs {
		rs.mergeRuns()
		rs.denseLists()
	}
	return rs, nil
}

// denseLists sets the bitsets of long "*" and "anonymous" lists.
func (rs *ruleSet) denseLists() {
	if len(rs.all) < denseList && len(rs.anonymous) < denseList {
		return
	}
	if rs.runs == nil {
		rs.runs = &runTable{}
	}
	t := rs.runs
	if len(rs.all) >= denseList {
		t.all.setAll(rs.all)
		t.allDense = true
	}
	if len(rs.anonymous) >= denseList {
		t.anonymous.setAll(rs.anonymous)
		t.anonDense = true
	}
}

// mergeRuns finds runs of rules, adjacent in execution order, that always
// fire together: cnam-prefix rules with the same prefix (so they match the
// same callers) and the same reputation (so all pass or all are skipped).
// Route then fires a run as one rule: one copy of its file indexes, its tags
// in one pass and its prefixes joined at compile time, instead of work per
// rule. That is the case where many rules fire at once: a caller's digits
// have at most 15 prefixes, so hundreds of matching rules share a few
// patterns ("*" among them).
func (rs *ruleSet) mergeRuns() {
	byPos := rs.byPos
	same := func(a, b *ruleInfo) bool {
		return b.act == actCNAMPrefix && a.level == b.level && rs.rules[a.idx].Prefix == rs.rules[b.idx].Prefix
	}
	for p := 0; p < len(byPos); {
		start := &byPos[p]
		e := p + 1
		if start.act == actCNAMPrefix {
			for e < len(byPos) && same(start, &byPos[e]) {
				e++
			}
		}
		if e-p < 2 {
			p = e
			continue
		}
		if rs.runs == nil {
			rs.runs = &runTable{}
		}
		if rs.runs.runLen == nil {
			rs.runs.runLen, rs.runs.fileIdx = make([]uint16, len(byPos)), make([]int, len(byPos))
			for q := range byPos {
				rs.runs.fileIdx[q] = int(byPos[q].idx)
			}
		}
		rs.runs.runLen[p] = uint16(e - p)
		n := 0
		for q := p; q < e; q++ {
			n += len(byPos[q].arg)
		}
		joined := make([]byte, 0, n)
		for q := e - 1; q >= p; q-- {
			joined = append(joined, byPos[q].arg...)
		}
		for q := p + 1; q < e; q++ {
			start.ntags += byPos[q].ntags // the run's tags are contiguous in rs.tags
			start.mask |= byPos[q].mask
		}
		start.act, start.arg = actCNAMRun, string(joined)
		p = e
	}
}

// assignTagIDs numbers the distinct tags of a rule set (and sets each rule's
// mask), so that Route drops repeated tags with one AND-NOT per rule
// instead of comparing strings. With more than 64 distinct tags it returns
// nil and Route compares strings.
func (rs *ruleSet) assignTagIDs() []uint8 {
	if len(rs.tags) == 0 {
		return nil
	}
	ids := make([]uint8, len(rs.tags))
	next := 0
	for i, t := range rs.tags {
		id := next
		for j := range i {
			if rs.tags[j] == t {
				id = int(ids[j])
				break
			}
		}
		if id == next {
			if next++; next > 64 {
				return nil
			}
		}
		ids[i] = uint8(id)
	}
	for p := range rs.byPos {
		ri := &rs.byPos[p]
		for k := int(ri.tags); k < int(ri.tags)+int(ri.ntags); k++ {
			ri.mask |= 1 << ids[k]
		}
	}
	return ids
}

// seenTags returns the tag bits of rs that are also tags of the number, so
// that Route treats them as present before rules add theirs.
func (rs *ruleSet) seenTags(numberTags []string) uint64 {
	var seen uint64
	if rs.tagIDs == nil {
		return 0
	}
	for _, t := range numberTags {
		if i := slices.Index(rs.tags, t); i >= 0 {
			seen |= 1 << rs.tagIDs[i]
		}
	}
	return seen
}

// insert adds a digit pattern to the scratch trie.
func (b *builder) insert(pt pattern, pos uint16) {
	n := uint16(0)
	for i := 0; i < len(pt.body); i++ {
		c := pt.body[i] - '0'
		next := b.nodes[n].child[c]
		if next == 0 {
			next = uint16(len(b.nodes))
			b.nodes = append(b.nodes, trieNode{})
			b.nodes[n].child[c] = next
		}
		n = next
	}
	cat := uint8(catPrefix)
	if !pt.prefix {
		cat = catExact
	}
	if pt.plus {
		cat++
	}
	b.ends = append(b.ends, trieEnd{node: n, cat: cat, pos: pos})
}

// layout copies the scratch trie into rs at its exact size: one array of
// positions holds the runs of every trieTerm, then the "*" and "anonymous"
// rules.
func (b *builder) layout(rs *ruleSet) {
	rs.lists = make([]uint16, len(b.ends), len(b.ends)+len(b.all)+len(b.anon))
	rs.lists = append(rs.lists, b.all...)
	rs.lists = append(rs.lists, b.anon...)
	n := len(b.ends)
	rs.all = rs.lists[n : n+len(b.all) : n+len(b.all)]
	rs.anonymous = rs.lists[n+len(b.all):]
	if len(b.ends) == 0 {
		return
	}
	slices.SortFunc(b.ends, func(x, y trieEnd) int {
		if c := cmp.Compare(x.node, y.node); c != 0 {
			return c
		}
		return cmp.Compare(x.cat, y.cat)
	})
	rs.nodes = slices.Clone(b.nodes)
	nterms := 0
	for i, e := range b.ends {
		if i == 0 || e.node != b.ends[i-1].node {
			nterms++
		}
	}
	rs.terms = make([]trieTerm, 0, nterms)
	for i, e := range b.ends {
		if i == 0 || e.node != b.ends[i-1].node {
			rs.terms = append(rs.terms, trieTerm{off: uint32(i)})
			rs.nodes[e.node].term = uint16(len(rs.terms))
		}
		t := &rs.terms[len(rs.terms)-1]
		switch e.cat {
		case catPrefix:
			t.prefix++
		case catPrefixPlus:
			t.prefixPlus++
		case catExact:
			t.exact++
		case catExactPlus:
			t.exactPlus++
		}
		rs.lists[i] = e.pos
	}
}

// Doc returns the document the snapshot was compiled from. It must be treated
// as read-only.
func (s *Snapshot) Doc() *config.Document { return s.doc }

// Account returns the account name.
func (s *Snapshot) Account() string { return s.doc.Account }

// Len returns how many numbers the snapshot routes.
func (s *Snapshot) Len() int { return len(s.numbers) }

// Number returns the configuration of a number given in any accepted form
// (+E164, 00E164, bare digits), and its E.164 form. The returned value
// belongs to the snapshot and must not be modified.
func (s *Snapshot) Number(n string) (cfg *config.Number, e164 string, ok bool) {
	num := s.lookup(n)
	if num == nil {
		return nil, "", false
	}
	return &num.cfg, num.e164, true
}

func (s *Snapshot) lookup(n string) *number {
	d, ok := e164Digits(n)
	if !ok {
		return nil
	}
	return s.byDigits[d]
}

// LookupCode resolves what a registered user dialled: a user's extension
// number gives "user:NAME", an extension's two-digit code gives the
// extension's name. Park orbits are separate (LookupOrbit): dialling one
// picks up a parked call rather than sending the call to the lot.
func (s *Snapshot) LookupCode(code string) (target string, ok bool) {
	target, ok = s.codes[code]
	return target, ok
}

// LookupOrbit returns the park lot that owns a dialled orbit number.
func (s *Snapshot) LookupOrbit(code string) (park string, ok bool) {
	park, ok = s.orbits[code]
	return park, ok
}
