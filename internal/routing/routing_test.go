package routing

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/config"
)

// loadSnapshot compiles testdata/account.yaml, which must also pass config
// validation so the tests only ever route valid accounts.
func loadSnapshot(t testing.TB) *Snapshot {
	t.Helper()
	data, err := os.ReadFile("testdata/account.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := config.Parse(data, "account.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate("testdata"); err != nil {
		t.Fatalf("testdata/account.yaml is not valid:\n%v", err)
	}
	s, err := Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// want is the expected decision. Every field is compared; trace lists lines
// (or parts of lines) that must appear in the trace, in this order.
type want struct {
	outcome Outcome
	status  int
	number  string
	caller  string
	dest    string
	name    string
	tags    []string
	fired   []int
	captcha bool
	pending bool
	trace   []string
}

type routeCase struct {
	name string
	req  Request
	want want
}

func checkDecision(t *testing.T, d *Decision, w want) {
	t.Helper()
	if d.Outcome != w.outcome || d.SIPStatus != w.status {
		t.Errorf("outcome %q/%d, want %q/%d", d.Outcome, d.SIPStatus, w.outcome, w.status)
	}
	if d.Number != w.number {
		t.Errorf("number %q, want %q", d.Number, w.number)
	}
	if d.Caller != w.caller {
		t.Errorf("caller %q, want %q", d.Caller, w.caller)
	}
	if d.Destination != w.dest {
		t.Errorf("destination %q, want %q", d.Destination, w.dest)
	}
	if d.CallerName != w.name {
		t.Errorf("caller name %q, want %q", d.CallerName, w.name)
	}
	if !slices.Equal(d.Tags, w.tags) {
		t.Errorf("tags %q, want %q", d.Tags, w.tags)
	}
	if !slices.Equal(d.RulesFired, w.fired) {
		t.Errorf("rules fired %v, want %v", d.RulesFired, w.fired)
	}
	if d.Captcha != w.captcha || d.CaptchaPending != w.pending {
		t.Errorf("captcha %v pending %v, want %v %v", d.Captcha, d.CaptchaPending, w.captcha, w.pending)
	}
	trace := d.Trace()
	i := 0
	for _, line := range trace {
		// Several expected parts may be found in one line, left to right.
		for i < len(w.trace) && strings.Contains(line, w.trace[i]) {
			line = line[strings.Index(line, w.trace[i])+len(w.trace[i]):]
			i++
		}
	}
	if i < len(w.trace) {
		t.Errorf("trace lacks %q (in order); trace:\n  %s", w.trace[i], strings.Join(trace, "\n  "))
	}
}

func runCases(t *testing.T, cases []routeCase) {
	t.Helper()
	s := loadSnapshot(t)
	var d Decision // reused on purpose: Route must reset it completely
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.Route(&c.req, &d)
			checkDecision(t, &d, c.want)
		})
	}
}

const main = "+34910000000"

var mainTags = []string{"spain", "main-line"}

// SPEC §3 step 1: N is normalised; an unknown N is 404 not_found.
func TestRouteNumber(t *testing.T) {
	found := want{outcome: OutcomeRouted, number: main, caller: "+34911222333", dest: "front", name: "MAIN ",
		tags: mainTags, trace: []string{"number +34910000000: found", "forwarding: off", "extension: front"}}
	notFound := func(line string) want {
		return want{outcome: OutcomeNotFound, status: 404, caller: "+34911222333", name: "Sam", trace: []string{line}}
	}
	runCases(t, []routeCase{
		{"e164", Request{Number: "+34910000000", Caller: "+34911222333"}, found},
		{"00 prefix", Request{Number: "0034910000000", Caller: "+34911222333"}, found},
		{"no plus", Request{Number: "34910000000", Caller: "+34911222333"}, found},
		{"separators", Request{Number: "+34 910 00-00-00", Caller: "+34911222333"}, found},
		{"unknown e164", Request{Number: "+34999999999", Caller: "+34911222333", CallerName: "Sam"},
			notFound("number +34999999999: not found -> 404")},
		{"unknown 00", Request{Number: "0034999999999", Caller: "+34911222333", CallerName: "Sam"},
			notFound("number +34999999999: not found -> 404")},
		{"unknown no plus", Request{Number: "34999999999", Caller: "+34911222333", CallerName: "Sam"},
			notFound("number +34999999999: not found -> 404")},
		{"not a number", Request{Number: "front", Caller: "+34911222333", CallerName: "Sam"},
			notFound(`number "front": not a phone number -> 404`)},
		{"empty", Request{Number: "", Caller: "+34911222333", CallerName: "Sam"},
			notFound(`number "": not a phone number -> 404`)},
		{"national form is not E.164", Request{Number: "0910000000", Caller: "+34911222333", CallerName: "Sam"},
			notFound(`not a phone number -> 404`)},
	})
}

// SPEC §3 step 2, matching: E.164 digits, national number only in the same
// country, '+' patterns on E.164 only, exact against '*', anonymous.
func TestRouteMatching(t *testing.T) {
	const us, uk, exact = "+12125550100", "+442071230000", "+34910000008"
	routedTo := func(n, caller, dest string, fired ...int) want {
		return want{outcome: OutcomeRouted, number: n, caller: caller, dest: dest, fired: fired}
	}
	mobile := want{outcome: OutcomeRouted, number: main, caller: "+34600111222", dest: "front",
		name: "MAIN VIP MOBILE Jane Doe", tags: []string{"spain", "main-line", "mobile", "vip"}, fired: []int{2, 5},
		trace: []string{
			"caller +34600111222 (national 600111222, same country as the number), reputation none",
			"rules: 3 of 6 match",
			"rule[1] prefix * (reputation medium) matched +34600111222 (national 600111222): skipped, reputation none is below medium",
			`rule[2] prefix 3460* matched +34600111222 (national 600111222): cnam-prefix "MOBILE " (tags: mobile)`,
			`rule[5] prefix 600111* matched +34600111222 (national 600111222): cnam-prefix "VIP " (tags: vip, mobile)`,
			"forwarding: off",
			"extension: front",
			`caller name: "MAIN VIP MOBILE Jane Doe"`,
			"tags: spain, main-line, mobile, vip",
		}}
	withName := func(w want, name string) want { w.name = name; return w }
	withTags := func(w want, tags ...string) want { w.tags = tags; return w }
	runCases(t, []routeCase{
		// +34: "3460*" by E.164 digits, "600111*" by the national number.
		{"es mobile", Request{Number: main, Caller: "+34600111222", CallerName: "Jane Doe"}, mobile},
		{"es mobile 00", Request{Number: main, Caller: "0034600111222", CallerName: "Jane Doe"}, mobile},
		{"es mobile no plus", Request{Number: main, Caller: "34600111222", CallerName: "Jane Doe"}, mobile},
		{"es national 888 rejected", Request{Number: main, Caller: "+34888123456", CallerName: "Bob"},
			want{outcome: OutcomeRejected, status: 486, number: main, caller: "+34888123456", name: "Bob", tags: mainTags, fired: []int{0},
				trace: []string{"rule[0] prefix 888* matched +34888123456 (national 888123456): reject-busy -> 486 Busy Here", "tags: spain, main-line"}}},
		// "888*" on a +34 number does not match +1 888...: not the same country.
		{"us 888 on es number", Request{Number: main, Caller: "+18885551234"},
			withTags(withName(routedTo(main, "+18885551234", "front"), "MAIN "), mainTags...)},
		{"plus pattern", Request{Number: main, Caller: "+442071234567", CallerName: "Sam Jones"},
			want{outcome: OutcomeRouted, number: main, caller: "+442071234567", dest: "support", name: "MAIN Sam Jones",
				tags: []string{"spain", "main-line", "london"}, fired: []int{3},
				trace: []string{"rule[3] prefix +4420* matched +442071234567: route -> support (tags: london)", `caller name: "MAIN Sam Jones"`}}},

		// +1: "888*" matches the national number of a US caller.
		{"us toll-free", Request{Number: us, Caller: "+18885551234"},
			want{outcome: OutcomeRejected, status: 486, number: us, caller: "+18885551234", tags: []string{"us", "toll-free"}, fired: []int{0},
				trace: []string{"rule[0] prefix 888* matched +18885551234 (national 8885551234): reject-busy"}}},
		{"us premium plus pattern", Request{Number: us, Caller: "+19005551234"},
			want{outcome: OutcomeRejected, status: 503, number: us, caller: "+19005551234", tags: []string{"us"}, fired: []int{1},
				trace: []string{"rule[1] prefix +1900* matched +19005551234 (national 9005551234): reject-503 -> 503 Service Unavailable"}}},
		// "+2125*" is never matched against the national number 2125550199;
		// the exact national pattern "2125550199" is.
		{"us exact national", Request{Number: us, Caller: "+12125550199"},
			withTags(routedTo(us, "+12125550199", "vip", 2), "us")},
		{"us exact is not a prefix", Request{Number: us, Caller: "+121255501990"},
			withTags(routedTo(us, "+121255501990", "night"), "us")},
		{"plus pattern on e164", Request{Number: us, Caller: "+212555123456"},
			want{outcome: OutcomeRejected, status: 486, number: us, caller: "+212555123456", tags: []string{"us"}, fired: []int{3}}},
		// "3460*" matches +34 600... on any number, through the E.164 digits.
		{"es mobile on us number", Request{Number: us, Caller: "+34600111222", CallerName: "Jane"},
			withTags(withName(routedTo(us, "+34600111222", "night", 4), "ES MOBILE Jane"), "us")},

		// +44: national "7700*" for a UK caller, not for a Spanish one whose
		// national number happens to start with 7700.
		{"uk national", Request{Number: uk, Caller: "+447700900456", CallerName: "Kim"},
			want{outcome: OutcomeForwarded, number: uk, caller: "+447700900456", dest: "+447700900123", name: "UK MOBILE Kim", fired: []int{0},
				trace: []string{"rule[0] prefix 7700* matched +447700900456 (national 7700900456)", "forwarding: location london is on -> +447700900123"}}},
		{"uk pattern, es caller", Request{Number: uk, Caller: "+34770012345", CallerName: "Kim"},
			want{outcome: OutcomeForwarded, number: uk, caller: "+34770012345", dest: "+447700900123", name: "Kim",
				trace: []string{"rules: none of 2 match"}}},

		// Exact patterns against '*' patterns.
		{"exact national", Request{Number: exact, Caller: "+34600111222"}, routedTo(exact, "+34600111222", "vip", 1)},
		{"exact needs whole number", Request{Number: exact, Caller: "+346001112223"}, routedTo(exact, "+346001112223", "support", 0)},
		{"exact e164 digits", Request{Number: exact, Caller: "+34600111333"}, routedTo(exact, "+34600111333", "night", 2)},
		{"exact plus", Request{Number: exact, Caller: "+34600111444"}, routedTo(exact, "+34600111444", "rota", 3)},
		{"plus prefix", Request{Number: exact, Caller: "+34600111445"}, routedTo(exact, "+34600111445", "everyone", 4)},
		{"prefix", Request{Number: exact, Caller: "+34600999999"}, routedTo(exact, "+34600999999", "support", 0)},
		{"no match", Request{Number: exact, Caller: "+34700000000"}, routedTo(exact, "+34700000000", "front")},
		{"national of another country", Request{Number: exact, Caller: "+44600111222"}, routedTo(exact, "+44600111222", "front")},

		// Withheld callers: "anonymous" matches them (weight 5 comes first).
		{"anonymous", Request{Number: main, Caller: "anonymous", CallerName: "X"},
			want{outcome: OutcomeRejected, status: 503, number: main, caller: "anonymous", name: "X",
				tags: []string{"spain", "main-line", "withheld"}, fired: []int{4},
				trace: []string{"caller anonymous (withheld), reputation none", "rule[4] prefix anonymous matched anonymous: reject-503 -> 503"}}},
		{"empty caller", Request{Number: main, Caller: ""},
			want{outcome: OutcomeRejected, status: 503, number: main, caller: "anonymous", tags: []string{"spain", "main-line", "withheld"}, fired: []int{4}}},
		{"Anonymous any case", Request{Number: main, Caller: "AnonYmous"},
			want{outcome: OutcomeRejected, status: 503, number: main, caller: "anonymous", tags: []string{"spain", "main-line", "withheld"}, fired: []int{4}}},
		{"restricted", Request{Number: main, Caller: "restricted"},
			want{outcome: OutcomeRejected, status: 503, number: main, caller: "anonymous", tags: []string{"spain", "main-line", "withheld"}, fired: []int{4}}},
		// A number never matches "anonymous"; a caller that is not a number
		// matches only "*" (here skipped: reputation).
		{"not a number", Request{Number: main, Caller: "alice"},
			want{outcome: OutcomeRouted, number: main, caller: "alice", dest: "front", name: "MAIN ", tags: mainTags,
				trace: []string{`caller "alice" (not a phone number`, `rule[1] prefix * (reputation medium) matched "alice": skipped`}}},
		{"not e164", Request{Number: main, Caller: "0600111222"},
			want{outcome: OutcomeRouted, number: main, caller: "0600111222", dest: "front", name: "MAIN ", tags: mainTags}},
	})
}

// SPEC §3 step 2: ascending weight, ties by file order, reputation
// thresholds; a lone "*" matches every caller, withheld included.
func TestRouteWeightsAndReputation(t *testing.T) {
	const n = "+34910000006"
	c := "+34911222333"
	runCases(t, []routeCase{
		{"none", Request{Number: n, Caller: c, CallerName: "N"},
			want{outcome: OutcomeRouted, number: n, caller: c, dest: "support", name: "A C B N", fired: []int{1, 2, 0},
				trace: []string{"rules: 6 of 6 match", "rule[3] prefix * (reputation low) matched", "skipped, reputation none is below low",
					"rule[1]", "rule[2]", "rule[0]", "rule[4]", "below high", "rule[5]", "below medium"}}},
		{"low", Request{Number: n, Caller: c, CallerName: "N", Reputation: config.LevelLow},
			want{outcome: OutcomeRouted, number: n, caller: c, dest: "support", name: "A C B D N", fired: []int{3, 1, 2, 0}}},
		{"medium", Request{Number: n, Caller: c, CallerName: "N", Reputation: config.LevelMedium},
			want{outcome: OutcomeRejected, status: 503, number: n, caller: c, name: "N", fired: []int{3, 1, 2, 0, 5},
				trace: []string{"rule[4] prefix * (reputation high) matched +34911222333 (national 911222333): skipped, reputation medium is below high", "rule[5]", "503"}}},
		{"high", Request{Number: n, Caller: c, CallerName: "N", Reputation: config.LevelHigh},
			want{outcome: OutcomeRejected, status: 486, number: n, caller: c, name: "N", fired: []int{3, 1, 2, 0, 4}}},
		{"star matches anonymous", Request{Number: n, Caller: "anonymous", CallerName: "N"},
			want{outcome: OutcomeRouted, number: n, caller: "anonymous", dest: "support", name: "A C B N", fired: []int{1, 2, 0}}},
		{"star matches non-numbers", Request{Number: n, Caller: "sip-user", CallerName: "N"},
			want{outcome: OutcomeRouted, number: n, caller: "sip-user", dest: "support", name: "A C B N", fired: []int{1, 2, 0}}},
	})
}

// SPEC §3 voice-captcha: pending, pass (once), fail.
func TestRouteCaptcha(t *testing.T) {
	const n = "+34910000007"
	c := "+34911222333"
	runCases(t, []routeCase{
		{"pending", Request{Number: n, Caller: c, CallerName: "N"},
			want{outcome: OutcomeCaptchaPending, number: n, caller: c, name: "N", tags: []string{"screened"}, fired: []int{0}, captcha: true, pending: true,
				trace: []string{"rule[0] prefix * matched +34911222333 (national 911222333): voice-captcha -> pending", "tags: screened"}}},
		{"passed once, not asked again", Request{Number: n, Caller: c, CallerName: "N", Captcha: CaptchaPassed},
			want{outcome: OutcomeRouted, number: n, caller: c, dest: "support", name: "OK N", tags: []string{"screened"}, fired: []int{0, 1, 2, 3}, captcha: true,
				trace: []string{"captcha result if asked: passed", "rule[0] prefix * matched +34911222333 (national 911222333): voice-captcha -> passed, continue",
					"rule[2] prefix * matched +34911222333 (national 911222333): voice-captcha -> already passed in this call, continue",
					"rule[3] prefix 34* matched +34911222333 (national 911222333): route -> support"}}},
		{"failed", Request{Number: n, Caller: c, CallerName: "N", Captcha: CaptchaFailed},
			want{outcome: OutcomeCaptchaFailed, number: n, caller: c, name: "N", tags: []string{"screened"}, fired: []int{0}, captcha: true,
				trace: []string{"voice-captcha -> failed: goodbye and hang up (captcha_failed)"}}},
		{"passed, falls through to the extension", Request{Number: n, Caller: "+442071234567", Captcha: CaptchaPassed},
			want{outcome: OutcomeRouted, number: n, caller: "+442071234567", dest: "front", name: "OK ", tags: []string{"screened"}, fired: []int{0, 1, 2}, captcha: true}},
		// On the main line the captcha rule needs reputation medium.
		{"below threshold: no captcha", Request{Number: main, Caller: "+34955123456", Reputation: config.LevelLow},
			want{outcome: OutcomeRouted, number: main, caller: "+34955123456", dest: "front", name: "MAIN ", tags: mainTags}},
		{"medium: pending", Request{Number: main, Caller: "+34955123456", Reputation: config.LevelMedium},
			want{outcome: OutcomeCaptchaPending, number: main, caller: "+34955123456", tags: mainTags, fired: []int{1}, captcha: true, pending: true}},
		{"medium: passed", Request{Number: main, Caller: "+34955123456", Reputation: config.LevelMedium, Captcha: CaptchaPassed},
			want{outcome: OutcomeRouted, number: main, caller: "+34955123456", dest: "front", name: "MAIN ", tags: mainTags, fired: []int{1}, captcha: true}},
		{"high: failed", Request{Number: main, Caller: "+34955123456", Reputation: config.LevelHigh, Captcha: CaptchaFailed},
			want{outcome: OutcomeCaptchaFailed, number: main, caller: "+34955123456", tags: mainTags, fired: []int{1}, captcha: true}},
		// A rule that stops before the captcha rule: no captcha at all.
		{"rejected before the captcha", Request{Number: main, Caller: "+34888000000", Reputation: config.LevelHigh},
			want{outcome: OutcomeRejected, status: 486, number: main, caller: "+34888000000", tags: mainTags, fired: []int{0}}},
	})
}

// SPEC §3 steps 3 and 4: forwarding by the number or by its location, and
// which destination wins; a route rule wins over forwarding.
func TestRouteForwarding(t *testing.T) {
	c := "+34911222333"
	fwd := func(n, dest, line string) want {
		return want{outcome: OutcomeForwarded, number: n, caller: c, dest: dest, trace: []string{line}}
	}
	runCases(t, []routeCase{
		{"number switch, own destination", Request{Number: "+34910000003", Caller: c},
			fwd("+34910000003", "+34600000005", "forwarding: number forward is on -> +34600000005")},
		{"number switch, location's destination", Request{Number: "+34910000004", Caller: c},
			fwd("+34910000004", "+34600000009", "forwarding: number forward is on -> +34600000009 (location madrid's destination: the number has none)")},
		{"location switch, number's destination", Request{Number: "+34910000005", Caller: c},
			fwd("+34910000005", "+34600000007", "forwarding: location london is on -> +34600000007 (the number's forward destination)")},
		{"both switches", Request{Number: "+447700900000", Caller: c},
			fwd("+447700900000", "+447700900123", "forwarding: number forward and location london are on -> +447700900123")},
		{"location switch, location's destination", Request{Number: "+442071230000", Caller: c},
			fwd("+442071230000", "+447700900123", "forwarding: location london is on -> +447700900123")},
		{"route rule wins over forwarding", Request{Number: "+442071230000", Caller: "+442079460000"},
			want{outcome: OutcomeRouted, number: "+442071230000", caller: "+442079460000", dest: "support", fired: []int{1}}},
		{"location off: extension", Request{Number: main, Caller: c},
			want{outcome: OutcomeRouted, number: main, caller: c, dest: "front", name: "MAIN ", tags: mainTags,
				trace: []string{"forwarding: off", "extension: front"}}},
	})
}

// The whole trace of the SPEC's example call, as `route` prints it.
func TestTraceExample(t *testing.T) {
	s := loadSnapshot(t)
	var d Decision
	s.Route(&Request{Number: "0034910000000", Caller: "+34600111222", CallerName: "Jane Doe"}, &d)
	got := d.Trace()
	wantLines := []string{
		"number +34910000000: found",
		"caller +34600111222 (national 600111222, same country as the number), reputation none",
		"rules: 3 of 6 match, in weight order",
		"rule[1] prefix * (reputation medium) matched +34600111222 (national 600111222): skipped, reputation none is below medium",
		`rule[2] prefix 3460* matched +34600111222 (national 600111222): cnam-prefix "MOBILE " (tags: mobile)`,
		`rule[5] prefix 600111* matched +34600111222 (national 600111222): cnam-prefix "VIP " (tags: vip, mobile)`,
		"forwarding: off",
		"extension: front",
		`caller name: "MAIN VIP MOBILE Jane Doe"`,
		"tags: spain, main-line, mobile, vip",
	}
	if !slices.Equal(got, wantLines) {
		t.Errorf("trace:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantLines, "\n  "))
	}
}

// A reused Decision carries nothing over from the previous call.
func TestDecisionReuse(t *testing.T) {
	s := loadSnapshot(t)
	var d Decision
	s.Route(&Request{Number: main, Caller: "+34600111222", CallerName: "Jane Doe"}, &d)
	s.Route(&Request{Number: "+34910000007", Caller: "+34911222333"}, &d)
	checkDecision(t, &d, want{outcome: OutcomeCaptchaPending, number: "+34910000007", caller: "+34911222333",
		tags: []string{"screened"}, fired: []int{0}, captcha: true, pending: true})
	if tr := d.Trace(); len(tr) != 5 {
		t.Errorf("trace of the second call has %d lines:\n%s", len(tr), strings.Join(tr, "\n"))
	}
	s.Route(&Request{Number: "+1", Caller: "x"}, &d)
	checkDecision(t, &d, want{outcome: OutcomeNotFound, status: 404, caller: "x", trace: []string{"number +1: not found -> 404"}})
}

// The hot path's allocation budget (the benchmarks measure it too).
func TestRouteAllocations(t *testing.T) {
	s := loadSnapshot(t)
	cases := []struct {
		name string
		req  Request
		max  float64
	}{
		{"rejected", Request{Number: main, Caller: "anonymous", CallerName: "X"}, 0},
		{"rejected national", Request{Number: "+12125550100", Caller: "+18885551234", CallerName: "X"}, 0},
		{"not found", Request{Number: "+34999999999", Caller: "+34911222333"}, 0},
		{"captcha pending", Request{Number: main, Caller: "+34955123456", Reputation: config.LevelHigh}, 0},
		{"routed, no prefix", Request{Number: "+34910000008", Caller: "+34600111222", CallerName: "Jane"}, 0},
		{"routed, name built", Request{Number: main, Caller: "+34600111222", CallerName: "Jane Doe"}, 1},
		{"forwarded", Request{Number: "+442071230000", Caller: "+447700900456", CallerName: "Kim"}, 1},
	}
	for _, c := range cases {
		var d Decision
		s.Route(&c.req, &d) // warm the slices
		if got := testing.AllocsPerRun(100, func() { s.Route(&c.req, &d) }); got > c.max {
			t.Errorf("%s: %.1f allocs per Route, want <= %.0f", c.name, got, c.max)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	base := func() *config.Document {
		return &config.Document{
			Account:   "x",
			Locations: map[string]config.Location{"here": {}},
			Numbers: map[string]config.Number{
				"+34910000000": {Extension: "front", Rules: []config.Rule{{Prefix: "34*", Action: config.ActionRejectBusy}}},
			},
		}
	}
	many := make([]config.Rule, config.MaxRulesPerNumber+1)
	for i := range many {
		many[i] = config.Rule{Prefix: "*", Action: config.ActionRejectBusy}
	}
	cases := []struct {
		name   string
		edit   func(d *config.Document)
		errSub string
	}{
		{"number without plus", func(d *config.Document) { d.Numbers["34910000001"] = config.Number{Extension: "front"} }, `numbers["34910000001"]: "34910000001" is not an E.164 number`},
		{"unknown country", func(d *config.Document) { d.Numbers["+999123"] = config.Number{Extension: "front"} }, "unknown country code"},
		{"no extension", func(d *config.Document) { d.Numbers["+34910000001"] = config.Number{} }, `numbers["+34910000001"].extension: required`},
		{"bad prefix", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Rules: []config.Rule{{Prefix: "34*5", Action: config.ActionRejectBusy}}}
		}, `numbers["+34910000001"].rules[0].prefix`},
		{"bad action", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Rules: []config.Rule{{Prefix: "34*", Action: "drop"}}}
		}, `rules[0].action`},
		{"bad level", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Rules: []config.Rule{{Prefix: "34*", Action: config.ActionRejectBusy, Reputation: "max"}}}
		}, `rules[0].reputation`},
		{"route without extension", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Rules: []config.Rule{{Prefix: "34*", Action: config.ActionRoute}}}
		}, `rules[0].extension: required`},
		{"cnam without prefix", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Rules: []config.Rule{{Prefix: "34*", Action: config.ActionCNAMPrefix}}}
		}, `rules[0].cnam_prefix: required`},
		{"too many rules", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Rules: many}
		}, "301 rules"},
		{"forward without destination", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Forward: &config.Forward{Enabled: true}, Location: "here"}
		}, "forward.destination"},
		{"unknown location", func(d *config.Document) {
			d.Numbers["+34910000001"] = config.Number{Extension: "f", Location: "there"}
		}, `unknown location "there"`},
		{"bad blocklist", func(d *config.Document) {
			d.Users = map[string]config.User{"al": {Blocklist: []string{"x"}}}
		}, "users.al.blocklist[0]"},
	}
	if _, err := Compile(base()); err != nil {
		t.Fatalf("base document: %v", err)
	}
	if _, err := Compile(nil); err == nil {
		t.Error("Compile(nil) succeeded")
	}
	for _, c := range cases {
		d := base()
		c.edit(d)
		_, err := Compile(d)
		if err == nil || !strings.Contains(err.Error(), c.errSub) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.errSub)
		}
	}
}

// Numbers with identical rules share one compiled rule set.
func TestRuleSetsShared(t *testing.T) {
	rules := func() []config.Rule {
		return []config.Rule{{Prefix: "34*", Weight: 1, Action: config.ActionCNAMPrefix, CNAMPrefix: "ES ", Tags: []string{"a"}}}
	}
	other := rules()
	other[0].Tags = []string{"b"}
	doc := &config.Document{Account: "x", Numbers: map[string]config.Number{
		"+34910000001": {Extension: "f", Rules: rules()},
		"+34910000002": {Extension: "f", Rules: rules()},
		"+34910000003": {Extension: "f", Rules: other},
	}}
	s, err := Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := s.lookup("+34910000001").rules, s.lookup("+34910000002").rules, s.lookup("+34910000003").rules
	if a != b || a == c {
		t.Errorf("sharing: 1==2 %v (want true), 1==3 %v (want false)", a == b, a == c)
	}
	var d Decision
	s.Route(&Request{Number: "+34910000003", Caller: "+34600000000"}, &d)
	if !slices.Equal(d.Tags, []string{"b"}) {
		t.Errorf("tags %q, want [b]", d.Tags)
	}
}

func TestSnapshotLookups(t *testing.T) {
	s := loadSnapshot(t)
	if s.Account() != "test" || s.Doc().Domain != "test.example.com" || s.Len() != 10 {
		t.Errorf("account %q, domain %q, %d numbers", s.Account(), s.Doc().Domain, s.Len())
	}
	for _, in := range []string{"+34910000000", "0034910000000", "34910000000"} {
		cfg, e164, ok := s.Number(in)
		if !ok || e164 != main || cfg.Extension != "front" {
			t.Errorf("Number(%q) = %v, %q, %v", in, cfg, e164, ok)
		}
	}
	if _, _, ok := s.Number("+34999999999"); ok {
		t.Error("Number found an unknown number")
	}
	codes := map[string]string{"21": "support", "22": "rota", "20": "vip", "101": "user:alice", "104": "user:dave"}
	for code, target := range codes {
		if got, ok := s.LookupCode(code); !ok || got != target {
			t.Errorf("LookupCode(%q) = %q, %v; want %q", code, got, ok, target)
		}
	}
	if got, ok := s.LookupCode("99"); ok {
		t.Errorf("LookupCode(99) = %q", got)
	}
	if got, ok := s.LookupOrbit("702"); !ok || got != "lot1" {
		t.Errorf("LookupOrbit(702) = %q, %v", got, ok)
	}
	if _, ok := s.LookupOrbit("704"); ok {
		t.Error("LookupOrbit(704) found a lot")
	}
	for in, want := range map[string]string{"+34 600-111.222": "+34600111222", "0044 20 7946 0000": "+442079460000", "(1) 212 555 0100": "+12125550100"} {
		if got, ok := NormalizeNumber(in); !ok || got != want {
			t.Errorf("NormalizeNumber(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "+", "00", "+0034", "0600111222", "+3460011122233344", "12a", "anonymous"} {
		if got, ok := NormalizeNumber(in); ok {
			t.Errorf("NormalizeNumber(%q) = %q, want not a number", in, got)
		}
	}
}

func TestCountryCode(t *testing.T) {
	for digits, want := range map[string]int{
		"12125550100": 1, "34910000000": 34, "442071230000": 44, "78123456789": 7, "3531234567": 353,
		"8005551234": 800, "80": 0 /* 80 is not assigned */, "800": 0, /* nothing after the code */
		"999": 0, "1": 0, "35": 0,
	} {
		if got, _ := countryCode(digits); got != want {
			t.Errorf("countryCode(%s) = %d, want %d", digits, got, want)
		}
	}
}

// Tags: the number's first, then each fired rule's, every tag once, also
// when a rule set has more distinct tags than the fast path handles.
func TestTagsDedupe(t *testing.T) {
	many := make([]string, 400)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	cases := []struct {
		name       string
		numberTags []string
		ruleTags   [][]string
		want       []string
	}{
		{"overlap with the number", []string{"a", "b", "a"}, [][]string{{"b", "c"}, {"c", "a", "d"}}, []string{"a", "b", "c", "d"}},
		{"rules only", nil, [][]string{{"x"}, {"y", "x"}, nil, {"y"}}, []string{"x", "y"}},
		{"many distinct", []string{"t5"}, [][]string{many, {"t399", "new"}}, append(append([]string{"t5"}, slices.Delete(slices.Clone(many), 5, 6)...), "new")},
	}
	for _, c := range cases {
		var rules []config.Rule
		for i, tags := range c.ruleTags {
			rules = append(rules, config.Rule{Prefix: "*", Weight: i, Action: config.ActionCNAMPrefix, CNAMPrefix: "x", Tags: tags})
		}
		s, err := Compile(&config.Document{Account: "x", Numbers: map[string]config.Number{
			"+34910000000": {Extension: "f", Tags: c.numberTags, Rules: rules}}})
		if err != nil {
			t.Fatal(err)
		}
		var d Decision
		s.Route(&Request{Number: "+34910000000", Caller: "+34600000000"}, &d)
		if !slices.Equal(d.Tags, c.want) {
			t.Errorf("%s: tags %q, want %q", c.name, d.Tags, c.want)
		}
	}
}

// SPEC §3 step 5 in every combination of present and absent parts.
func TestCallerName(t *testing.T) {
	long := strings.Repeat("L", 40) + " "
	cases := []struct {
		numberPrefix string
		rulePrefixes []string // cnam-prefix rules, in weight order
		name, want   string
	}{
		{"", nil, "", ""},
		{"", nil, "Jane", "Jane"},
		{"MAIN ", nil, "", "MAIN "},
		{"MAIN ", nil, "Jane", "MAIN Jane"},
		{"", []string{"VIP "}, "", "VIP "},
		{"", []string{"VIP "}, "Jane", "VIP Jane"},
		{"MAIN ", []string{"MOBILE ", "VIP "}, "Jane Doe", "MAIN VIP MOBILE Jane Doe"},
		{"MAIN ", []string{"MOBILE ", "VIP "}, "", "MAIN VIP MOBILE "},
		{"", []string{long, "S "}, "N", "S " + long + "N"},
	}
	for _, c := range cases {
		var rules []config.Rule
		for i, p := range c.rulePrefixes {
			rules = append(rules, config.Rule{Prefix: "*", Weight: i, Action: config.ActionCNAMPrefix, CNAMPrefix: p})
		}
		s, err := Compile(&config.Document{Account: "x", Numbers: map[string]config.Number{
			"+34910000000": {Extension: "f", CNAMPrefix: c.numberPrefix, Rules: rules}}})
		if err != nil {
			t.Fatal(err)
		}
		var d Decision
		s.Route(&Request{Number: "+34910000000", Caller: "+34600000000", CallerName: c.name}, &d)
		if d.CallerName != c.want {
			t.Errorf("number %q, rules %q, name %q: %q, want %q", c.numberPrefix, c.rulePrefixes, c.name, d.CallerName, c.want)
		}
	}
}

// Runs of cnam-prefix rules fire as one (ruleSet.mergeRuns): every decision
// and its trace must be the same as with the rules run one by one. Random
// rule sets lean on the cases that form runs (few patterns, equal weights)
// and break them (reputations, other actions, more than 64 distinct tags).
func TestRunsMerged(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	patterns := []string{"*", "*", "*", "anonymous", "34*", "+34*", "3460*", "600*", "+34600111222", "600111222"}
	actions := []string{config.ActionRejectBusy, config.ActionReject503, config.ActionVoiceCaptcha, config.ActionRoute}
	levels := []string{"", "", "", "low", "medium", "high"}
	callers := []string{"anonymous", "", "+34600111222", "34600111222", "+447700900000", "sip-user"}
	pick := func(s []string) string { return s[rnd.IntN(len(s))] }
	runs := 0
	for iter := range 400 {
		nrules := 1 + rnd.IntN(config.MaxRulesPerNumber)
		if iter%2 == 0 {
			nrules = 1 + rnd.IntN(20)
		}
		npat, ntag := 1+rnd.IntN(len(patterns)), 1+rnd.IntN(8)
		if iter%7 == 0 {
			ntag = 100 // more distinct tags than tag bits
		}
		rules := make([]config.Rule, nrules)
		for i := range rules {
			r := config.Rule{Prefix: patterns[rnd.IntN(npat)], Weight: rnd.IntN(4), Action: config.ActionCNAMPrefix,
				CNAMPrefix: "p" + strconv.Itoa(i) + " "}
			if rnd.IntN(4) == 0 {
				r.Reputation = pick(levels)
			}
			if rnd.IntN(10) == 0 {
				r.Action, r.CNAMPrefix, r.Extension = pick(actions), "", "ext"
			}
			for range rnd.IntN(3) {
				r.Tags = append(r.Tags, "t"+strconv.Itoa(rnd.IntN(ntag)))
			}
			rules[i] = r
		}
		num := config.Number{Extension: "front", Tags: []string{"t1", "n"}, Rules: rules}
		if rnd.IntN(2) == 0 {
			num.CNAMPrefix = "MAIN "
		}
		doc := &config.Document{Account: "r", Numbers: map[string]config.Number{"+34910000000": num}}
		merged, err := Compile(doc)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := compile(doc, false)
		if err != nil {
			t.Fatal(err)
		}
		if r := merged.numbers[0].rules.runs; r != nil && r.runLen != nil {
			runs++
		}
		var dm, dp Decision
		for range 8 {
			req := &Request{Number: "+34910000000", Caller: pick(callers), Reputation: config.Level(rnd.IntN(4)),
				Captcha: CaptchaState(rnd.IntN(3))}
			if rnd.IntN(3) > 0 {
				req.CallerName = "Jane"
			}
			merged.Route(req, &dm)
			plain.Route(req, &dp)
			em, ep := explainDecision(&dm), explainDecision(&dp)
			if !reflect.DeepEqual(em, ep) {
				t.Fatalf("rules %+v\nrequest %+v\nmerged %+v\nplain  %+v", rules, req, em, ep)
			}
		}
	}
	if runs < 100 {
		t.Fatalf("only %d of 400 rule sets had a run", runs)
	}
}

// explainDecision is every exported field of d and its trace.
func explainDecision(d *Decision) Explanation {
	return Explanation{Outcome: d.Outcome, SIPStatus: d.SIPStatus, Number: d.Number, Caller: d.Caller,
		Destination: d.Destination, CallerName: d.CallerName, Tags: slices.Clone(d.Tags),
		RulesFired: slices.Clone(d.RulesFired), Captcha: d.Captcha, CaptchaPending: d.CaptchaPending, Trace: d.Trace()}
}
