package routing

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// SPEC §3: >=30 low, >=60 medium, >=90 high.
func TestScoreLevel(t *testing.T) {
	cases := []struct {
		score int
		want  config.Level
	}{
		{-1000, config.LevelNone}, {-1, config.LevelNone}, {0, config.LevelNone}, {29, config.LevelNone},
		{30, config.LevelLow}, {59, config.LevelLow},
		{60, config.LevelMedium}, {89, config.LevelMedium},
		{90, config.LevelHigh}, {100, config.LevelHigh}, {1000, config.LevelHigh},
	}
	for _, c := range cases {
		if got := ScoreLevel(c.score); got != c.want {
			t.Errorf("ScoreLevel(%d) = %v, want %v", c.score, got, c.want)
		}
	}
}

func TestHeaderLevel(t *testing.T) {
	cases := []struct {
		value string
		want  config.Level
	}{
		{"95", config.LevelHigh},
		{" 95 ", config.LevelHigh},
		{"\t90\r\n", config.LevelHigh},
		{"+95", config.LevelHigh},
		{"0095", config.LevelHigh}, // decimal; fmt.Sscan read it as octal 0
		{"89", config.LevelMedium},
		{"60", config.LevelMedium},
		{"60.5", config.LevelMedium}, // the leading integer, as fmt.Sscan read it
		{"59.99", config.LevelLow},
		{"95;source=carrier", config.LevelHigh},
		{"30", config.LevelLow},
		{"29", config.LevelNone},
		{"0", config.LevelNone},
		{"-95", config.LevelNone},
		{"abc", config.LevelNone},
		{"", config.LevelNone},
		{"   ", config.LevelNone},
		{"+", config.LevelNone},
		{"-", config.LevelNone},
		{".9", config.LevelNone},
		{"score=95", config.LevelNone},
		{"0x5A", config.LevelNone}, // no base prefixes: 0, then junk
		{"99999999999999999999", config.LevelNone},
		{"٩٥", config.LevelNone}, // Arabic-Indic digits are not a score
	}
	for _, c := range cases {
		if got := HeaderLevel(c.value); got != c.want {
			t.Errorf("HeaderLevel(%q) = %v, want %v", c.value, got, c.want)
		}
	}
}

// FuzzHeaderLevel: no input panics, surrounding white space never matters,
// a valid level comes out, and a plain integer gives its ScoreLevel.
func FuzzHeaderLevel(f *testing.F) {
	for _, s := range []string{"95", " 60 ", "60.5", "-1", "abc", "", "+", "0095", "99999999999999999999", "\xff9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := HeaderLevel(v)
		if got > config.LevelHigh {
			t.Fatalf("HeaderLevel(%q) = %v", v, got)
		}
		if padded := HeaderLevel(" \t" + v + " \n"); padded != got {
			t.Fatalf("HeaderLevel(%q) = %v but padded %v", v, got, padded)
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && got != ScoreLevel(n) {
			t.Fatalf("HeaderLevel(%q) = %v, want ScoreLevel(%d) = %v", v, got, n, ScoreLevel(n))
		}
	})
}

func TestVerstatLevel(t *testing.T) {
	cases := []struct {
		value string
		want  config.Level
	}{
		{"<sip:+34600111222@carrier.example;user=phone;verstat=TN-Validation-Failed>", config.LevelHigh},
		{"<tel:+34600111222;VERSTAT=tn-validation-failed>", config.LevelHigh},
		{`"Jane" <sip:+34600111222@c;verstat=Tn-VaLiDaTiOn-FaIlEd-B>;tag=1`, config.LevelHigh},
		{"<sip:+34600111222@c;verstat=No-TN-Validation>", config.LevelLow},
		{"<sip:+34600111222@c;VerStat=NO-TN-VALIDATION>;tag=x", config.LevelLow},
		{"<sip:+34600111222@c;verstat=TN-Validation-Passed>", config.LevelNone},
		{"<sip:+34600111222@c;user=phone>", config.LevelNone},
		{"", config.LevelNone},
		{"verstat=", config.LevelNone},
		{"verstat", config.LevelNone},
		{"verstat=TN-Validation-Fail", config.LevelNone}, // cut short
		// Several: the worst wins, whichever comes first.
		{"<sip:a@c;verstat=No-TN-Validation>, <sip:b@c;verstat=TN-Validation-Failed>", config.LevelHigh},
		{"<sip:a@c;verstat=TN-Validation-Failed>, <sip:b@c;verstat=No-TN-Validation>", config.LevelHigh},
		{"<sip:a@c;verstat=TN-Validation-Passed>, <sip:b@c;verstat=No-TN-Validation>", config.LevelLow},
		// Only ASCII folds: a Kelvin sign or a long s is not a letter of ours.
		{"<sip:a@c;verſtat=TN-Validation-Failed>", config.LevelNone},
	}
	for _, c := range cases {
		if got := VerstatLevel(c.value); got != c.want {
			t.Errorf("VerstatLevel(%q) = %v, want %v", c.value, got, c.want)
		}
	}
}

// FuzzVerstatLevel checks VerstatLevel against the old code's rule (lower
// case, then look for the two strings), lowering ASCII only.
func FuzzVerstatLevel(f *testing.F) {
	for _, s := range []string{"<sip:a@c;verstat=TN-Validation-Failed>", "verstat=no-tn-validation", "VERSTAT=VERSTAT=No-TN-Validation", "\xffverstat="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		lower := []byte(v)
		for i, c := range lower {
			if c >= 'A' && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		want := config.LevelNone
		switch l := string(lower); {
		case strings.Contains(l, "verstat=tn-validation-failed"):
			want = config.LevelHigh
		case strings.Contains(l, "verstat=no-tn-validation"):
			want = config.LevelLow
		}
		if got := VerstatLevel(v); got != want {
			t.Fatalf("VerstatLevel(%q) = %v, want %v", v, got, want)
		}
	})
}

// policyDoc is a small account for the dial plan: two users, a group with a
// code, a park lot, numbers in Spain.
func policyDoc() *config.Document {
	return &config.Document{
		Account:  "acme",
		Defaults: config.Defaults{ServiceNumber: "+34910000000"},
		Users:    map[string]config.User{"alice": {Extension: "101"}, "bob": {Extension: "102"}},
		Extensions: map[string]config.Extension{
			"seq":   {Code: "21", Type: config.TypeGroup, Members: []string{"user:alice", "user:bob"}},
			"front": {Type: config.TypeIndividual, Destination: "user:alice"},
		},
		Parks: map[string]config.Park{"lot1": {Orbits: "701-703"}},
		Numbers: map[string]config.Number{
			"+34910000000": {Extension: "front"},
			"+34910000001": {Extension: "seq"},
		},
	}
}

func compileDoc(t testing.TB, doc *config.Document) *Snapshot {
	t.Helper()
	s, err := Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAllowedDestination(t *testing.T) {
	numbers := func(keys ...string) map[string]config.Number {
		m := make(map[string]config.Number, len(keys))
		for _, k := range keys {
			m[k] = config.Number{Extension: "front"}
		}
		return m
	}
	type probe struct {
		number string
		want   bool
	}
	cases := []struct {
		name     string
		patterns []string
		service  string
		numbers  map[string]config.Number
		probes   []probe
	}{
		{"prefix with plus", []string{"+34*"}, "", numbers("+34910000000"), []probe{
			{"+34600000003", true}, {"+3460", true}, {"+44600000003", false}, {"+1340555000", false},
		}},
		{"prefix without plus", []string{"34*"}, "", numbers("+34910000000"), []probe{
			{"+34600000003", true}, {"+44600000003", false},
		}},
		{"exact with and without plus", []string{"+442071230000", "12125550100"}, "", numbers("+34910000000"), []probe{
			{"+442071230000", true}, {"+4420712300001", false}, {"+44207123000", false},
			{"+12125550100", true}, {"+12125550101", false},
			{"+34600000003", false}, // patterns replace the home-country default
		}},
		{"several patterns", []string{"+34*", "+351*", "+442071230000"}, "", numbers("+34910000000"), []probe{
			{"+34600000003", true}, {"+351912345678", true}, {"+442071230000", true}, {"+447700900123", false},
		}},
		{"wildcard", []string{"*"}, "", nil, []probe{
			{"+34600000003", true}, {"+8613800000000", true},
		}},
		{"other input forms", []string{"+34*"}, "", nil, []probe{
			{"0034600000003", true}, {"34600000003", true}, {"+34 600 00 00 03", true},
			{"0044600000003", false}, {"", false}, {"abc", false}, {"0600000003", false},
		}},
		{"default: service number country", nil, "+34910000000", numbers("+442071230000"), []probe{
			{"+34600000003", true}, {"+34910000099", true},
			{"+442071230001", false}, // the service number wins over the numbers
			{"+3460", true},          // short, but still +34
			{"+351912345678", false}, // Portugal: +351 is not +34 followed by 51
		}},
		{"default: numbers of one country", nil, "", numbers("+12125550100", "+13105550100"), []probe{
			{"+12125550199", true}, {"+18885551234", true}, {"+34600000003", false},
		}},
		// Map order used to pick the home number; now it is the lowest.
		{"default: lowest of several countries", nil, "", numbers("+442071230000", "+34910000000", "+12125550100"), []probe{
			{"+13105550100", true}, {"+34600000003", false}, {"+447700900123", false},
		}},
		{"default: lowest of two", nil, "", numbers("+442071230000", "+34910000000"), []probe{
			{"+34600000003", true}, {"+447700900123", false},
		}},
		{"default: no home number", nil, "", nil, []probe{
			{"+34600000003", false}, {"+12125550100", false},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Compiled repeatedly: map iteration order must not matter.
			for range 20 {
				doc := &config.Document{Account: "x", Numbers: c.numbers,
					Defaults: config.Defaults{AllowedDestinations: c.patterns, ServiceNumber: c.service}}
				s := compileDoc(t, doc)
				for _, p := range c.probes {
					if got := s.AllowedDestination(p.number); got != p.want {
						t.Fatalf("AllowedDestination(%q) = %v, want %v", p.number, got, p.want)
					}
				}
			}
		})
	}
}

func TestDial(t *testing.T) {
	spain := compileDoc(t, policyDoc())
	patterns := policyDoc()
	patterns.Defaults.AllowedDestinations = []string{"+34*", "447700900123"}
	listed := compileDoc(t, patterns)
	byNumbers := policyDoc()
	byNumbers.Defaults.ServiceNumber = ""
	byNumbers.Numbers["+442071230000"] = config.Number{Extension: "front"}
	lowest := compileDoc(t, byNumbers)
	none := policyDoc()
	none.Defaults.ServiceNumber, none.Numbers = "", nil
	homeless := compileDoc(t, none)

	cases := []struct {
		name    string
		s       *Snapshot
		dialled string
		want    Dialled
	}{
		{"orbit", spain, "701", Dialled{Kind: DialOrbit, Target: "701", Park: "lot1", Note: "701 is an orbit of park lot lot1: pick up"}},
		{"last orbit", spain, "703", Dialled{Kind: DialOrbit, Target: "703", Park: "lot1", Note: "703 is an orbit of park lot lot1: pick up"}},
		{"user extension", spain, "102", Dialled{Kind: DialCode, Target: "user:bob", Note: "102 is user:bob"}},
		{"extension code", spain, "21", Dialled{Kind: DialCode, Target: "seq", Note: "21 is seq"}},
		{"external allowed", spain, "+34600000003", Dialled{Kind: DialExternal, Target: "+34600000003", Note: "external number +34600000003 via the default trunk"}},
		{"external, 00 form", spain, "0034600000003", Dialled{Kind: DialExternal, Target: "+34600000003", Note: "external number +34600000003 via the default trunk"}},
		{"refused by default", spain, "+447700900123", Dialled{Kind: DialRefused, Target: "+447700900123",
			Note: "+447700900123 is not in allowed_destinations (none configured: only +34, the country of the service number +34910000000)"}},
		{"allowed by exact pattern", listed, "+447700900123", Dialled{Kind: DialExternal, Target: "+447700900123", Note: "external number +447700900123 via the default trunk"}},
		{"refused by patterns", listed, "+447700900124", Dialled{Kind: DialRefused, Target: "+447700900124", Note: "+447700900124 is not in allowed_destinations"}},
		{"refused, lowest number", lowest, "+447700900123", Dialled{Kind: DialRefused, Target: "+447700900123",
			Note: "+447700900123 is not in allowed_destinations (none configured: only +34, the country of the account's number +34910000000)"}},
		{"refused, one country", compileDoc(t, &config.Document{Account: "x", Numbers: map[string]config.Number{"+12125550100": {Extension: "f"}}}),
			"+447700900123", Dialled{Kind: DialRefused, Target: "+447700900123",
				Note: "+447700900123 is not in allowed_destinations (none configured: only +1, the country of the account's numbers)"}},
		{"refused, no number", homeless, "+34600000003", Dialled{Kind: DialRefused, Target: "+34600000003",
			Note: "+34600000003 is not in allowed_destinations (none configured, and the account has no number to take a country from)"}},
		{"short unknown code is a number", spain, "99", Dialled{Kind: DialRefused, Target: "+99",
			Note: "+99 is not in allowed_destinations (none configured: only +34, the country of the service number +34910000000)"}},
		{"not a number", spain, "alice", Dialled{Kind: DialNotFound, Note: `"alice" is not a park orbit, a code or a number`}},
		{"national form", spain, "0600000003", Dialled{Kind: DialNotFound, Note: `"0600000003" is not a park orbit, a code or a number`}},
		{"empty", spain, "", Dialled{Kind: DialNotFound, Note: `"" is not a park orbit, a code or a number`}},
	}
	for _, c := range cases {
		if got := c.s.Dial(c.dialled); got != c.want {
			t.Errorf("%s: Dial(%q) =\n\t%+v\nwant\n\t%+v", c.name, c.dialled, got, c.want)
		}
	}
}

// An orbit that is also a code: the orbit wins, as it always did.
func TestDialOrbitBeforeCode(t *testing.T) {
	doc := policyDoc()
	doc.Users["carol"] = config.User{Extension: "702"}
	s := compileDoc(t, doc)
	if got := s.Dial("702"); got.Kind != DialOrbit || got.Park != "lot1" {
		t.Errorf("Dial(702) = %+v, want the orbit", got)
	}
}

func TestDialKindString(t *testing.T) {
	for k, want := range map[DialKind]string{DialNotFound: "not found", DialOrbit: "orbit", DialCode: "code",
		DialExternal: "external", DialRefused: "refused", 9: "DialKind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("DialKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestFloodGuard(t *testing.T) {
	const acct, caller = "acme", "+34600111222"
	t.Run("limit", func(t *testing.T) {
		g := NewFloodGuard()
		for i := 1; i <= FloodLimit; i++ {
			n := g.Observe(acct, caller, t0.Add(time.Duration(i)*time.Second))
			if n != i || FloodLevel(n) != config.LevelNone {
				t.Fatalf("call %d: count %d, level %v", i, n, FloodLevel(n))
			}
		}
		n := g.Observe(acct, caller, t0.Add(59*time.Second))
		if n != FloodLimit+1 || FloodLevel(n) != config.LevelHigh {
			t.Fatalf("11th call in a minute: count %d, level %v; want 11, high", n, FloodLevel(n))
		}
		// Counts saturate: the ring keeps FloodLimit+1 calls.
		if n := g.Observe(acct, caller, t0.Add(59*time.Second)); n != FloodLimit+1 {
			t.Errorf("12th call: count %d, want %d (saturated)", n, FloodLimit+1)
		}
	})
	t.Run("window", func(t *testing.T) {
		g := NewFloodGuard()
		for i := range FloodLimit {
			g.Observe(acct, caller, t0.Add(time.Duration(i)*time.Second)) // t0 .. t0+9s
		}
		// At t0+60s the call of t0 is exactly a window old: out.
		if n := g.Observe(acct, caller, t0.Add(FloodWindow)); n != FloodLimit {
			t.Errorf("at the window's edge: count %d, want %d", n, FloodLimit)
		}
		if n := g.Count(acct, caller, t0.Add(FloodWindow+5*time.Second+time.Millisecond)); n != 5 {
			t.Errorf("5s later: count %d, want 5 (t0+6s .. t0+9s and t0+60s)", n)
		}
		if n := g.Count(acct, caller, t0.Add(2*FloodWindow)); n != 0 {
			t.Errorf("a window after the last call: count %d, want 0", n)
		}
		// Spread out, a caller never floods: 11 calls, 6 s apart.
		g2 := NewFloodGuard()
		for i := range 3 * FloodLimit {
			if n := g2.Observe(acct, caller, t0.Add(time.Duration(i)*6*time.Second)); n > FloodLimit {
				t.Fatalf("call %d, 6 s apart: count %d", i, n)
			}
		}
	})
	t.Run("keys", func(t *testing.T) {
		g := NewFloodGuard()
		forms := []string{"+34600111222", "0034600111222", "34600111222", "+34 600-111-222"}
		for i := range FloodLimit + 1 {
			g.Observe(acct, forms[i%len(forms)], t0)
		}
		for _, f := range forms {
			if n := g.Count(acct, f, t0); n != FloodLimit+1 {
				t.Errorf("Count(%q) = %d, want %d: one caller in every form", f, n, FloodLimit+1)
			}
		}
		if n := g.Count("other", caller, t0); n != 0 {
			t.Errorf("another account: count %d, want 0", n)
		}
		if n := g.Observe("other", caller, t0); n != 1 {
			t.Errorf("first call to another account: count %d, want 1", n)
		}
		if n := g.Count(acct, "+34600111223", t0); n != 0 {
			t.Errorf("another caller: count %d, want 0", n)
		}
	})
	t.Run("anonymous", func(t *testing.T) {
		g := NewFloodGuard()
		for _, c := range []string{"", "anonymous", "Anonymous", "unknown", "private", "restricted", "unavailable", "alice", "sip:x", "0600111222"} {
			for range 2 * FloodLimit {
				if n := g.Observe(acct, c, t0); n != 0 {
					t.Fatalf("Observe(%q) = %d, want 0", c, n)
				}
			}
			if n := g.Count(acct, c, t0); n != 0 {
				t.Errorf("Count(%q) = %d, want 0", c, n)
			}
		}
		if len(g.cur)+len(g.prev) != 0 {
			t.Errorf("%d keys recorded for callers without a number", len(g.cur)+len(g.prev))
		}
	})
	t.Run("count does not record", func(t *testing.T) {
		g := NewFloodGuard()
		for range 3 * FloodLimit {
			if n := g.Count(acct, caller, t0); n != 0 {
				t.Fatalf("Count = %d on a new guard", n)
			}
		}
		g.Observe(acct, caller, t0)
		for range 3 * FloodLimit {
			if n := g.Count(acct, caller, t0.Add(time.Second)); n != 1 {
				t.Fatalf("Count = %d after one call, want 1", n)
			}
		}
		if n := g.Observe(acct, caller, t0.Add(time.Second)); n != 2 {
			t.Errorf("second call: count %d, want 2", n)
		}
	})
	t.Run("out of order", func(t *testing.T) {
		g := NewFloodGuard()
		// Calls whose clocks were read in another order than they got the
		// lock still count; the ring keeps the newest.
		for i := range FloodLimit + 1 {
			g.Observe(acct, caller, t0.Add(time.Duration(FloodLimit-i)*time.Millisecond))
		}
		if n := g.Count(acct, caller, t0); n != FloodLimit+1 {
			t.Errorf("count %d, want %d", n, FloodLimit+1)
		}
		// One very late-arriving old call does not push out newer ones.
		g.Observe(acct, caller, t0.Add(-30*time.Second))
		if n := g.Count(acct, caller, t0.Add(FloodWindow-time.Second)); n != FloodLimit+1 {
			t.Errorf("after an old call: count %d, want %d", n, FloodLimit+1)
		}
	})
}

func TestFloodLevel(t *testing.T) {
	for calls, want := range map[int]config.Level{0: config.LevelNone, 1: config.LevelNone, FloodLimit: config.LevelNone,
		FloodLimit + 1: config.LevelHigh, 1000: config.LevelHigh} {
		if got := FloodLevel(calls); got != want {
			t.Errorf("FloodLevel(%d) = %v, want %v", calls, got, want)
		}
	}
}

// Memory: keys without a call in the window are dropped as time moves on,
// and a key never holds more than FloodLimit+1 times.
func TestFloodGuardBounded(t *testing.T) {
	g := NewFloodGuard()
	keys := func() int { return len(g.cur) + len(g.prev) }
	const burst = 50000
	for i := range burst {
		g.Observe("acme", fmt.Sprintf("+3460%07d", i), t0.Add(time.Duration(i)*time.Microsecond))
	}
	if keys() != burst {
		t.Fatalf("%d keys after %d callers, want %d", keys(), burst, burst)
	}
	for range 100 {
		g.Observe("acme", "+34600000000", t0.Add(time.Second))
	}
	if c := g.cur[floodKey{"acme", "34600000000"}]; c == nil || c.n != FloodLimit+1 {
		t.Errorf("ring of a caller with 101 calls: %+v", c)
	}
	// Past the window the burst is kept one more generation at most...
	g.Observe("acme", "+34911111111", t0.Add(FloodWindow+2*time.Second))
	if keys() > burst+1 {
		t.Errorf("%d keys a window later", keys())
	}
	// ...and gone after the next.
	g.Observe("acme", "+34911111111", t0.Add(2*FloodWindow+3*time.Second))
	if keys() != 1 {
		t.Errorf("%d keys two windows after the burst, want 1", keys())
	}
	// A long quiet spell drops everything at the next call.
	g.Observe("acme", "+34922222222", t0.Add(time.Hour))
	if keys() != 1 {
		t.Errorf("%d keys after an hour's quiet, want 1", keys())
	}

	// Steady traffic of distinct callers, one every 10 ms for 10 minutes:
	// never more than two windows' worth (2 × 6000).
	g = NewFloodGuard()
	most := 0
	for i := range 60000 {
		g.Observe("acme", fmt.Sprintf("+3460%07d", i), t0.Add(time.Duration(i)*10*time.Millisecond))
		most = max(most, keys())
	}
	if limit := 2*int(FloodWindow/(10*time.Millisecond)) + 1; most > limit {
		t.Errorf("steady traffic: up to %d keys, want at most %d", most, limit)
	}
	// The counts stay right across generations.
	g = NewFloodGuard()
	for i := range 4 * FloodLimit {
		now := t0.Add(time.Duration(i) * 5 * time.Second) // 12 calls a minute
		want := min(i+1, int(FloodWindow/(5*time.Second)), FloodLimit+1)
		if n := g.Observe("acme", "+34600111222", now); n != want {
			t.Fatalf("call %d at +%v: count %d, want %d", i, now.Sub(t0), n, want)
		}
	}
}

// Run with -race: the guard from many goroutines, and snapshots' policy
// methods (read-only) alongside.
func TestPolicyConcurrent(t *testing.T) {
	g := NewFloodGuard()
	s := compileDoc(t, policyDoc())
	const workers, calls = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				own := fmt.Sprintf("+3460000%04d", w)
				if n := g.Observe("acme", own, now); n != min(i+1, FloodLimit+1) {
					t.Errorf("worker %d call %d: count %d", w, i, n)
					return
				}
				g.Observe("acme", "+34600999999", now) // shared by all
				g.Count("acme", "+34600999999", now)
				g.Observe(fmt.Sprintf("acct%d", i%3), fmt.Sprintf("+44%09d", i), now)
				if d := s.Dial("+34600000003"); d.Kind != DialExternal {
					t.Errorf("Dial: %+v", d)
					return
				}
				if s.AllowedDestination("+447700900123") {
					t.Error("AllowedDestination(+44...) = true")
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := g.Count("acme", "+34600999999", t0.Add(calls*time.Millisecond)); n != FloodLimit+1 {
		t.Errorf("shared caller: count %d, want %d", n, FloodLimit+1)
	}
}
