package routing

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/switchboard/switchboard/internal/config"
)

// fuzzNumbers are the called numbers the fuzzer picks from: countries with
// 1-, 2- and 3-digit calling codes.
var fuzzNumbers = []string{"+34910000000", "+12125550100", "+442071230000", "+74951234567", "+35312345678", "+8613800000000", "+80012345678"}

// FuzzPrefixMatch checks the compiled matcher (trie, bitset, weight order)
// against a naive reference written straight from SPEC §3: patterns are a
// comma-separated list, weights give each rule a small weight (ties are
// frequent) and a few tags from a small pool, the caller is any string. The
// fired rules, their order, the tags (deduplicated) and the caller name
// (prefixes stacked) must all agree with the reference.
func FuzzPrefixMatch(f *testing.F) {
	f.Add("888*,*,3460*,+4420*,anonymous", []byte{10, 20, 30, 40, 5}, "+34600111222", uint8(0))
	f.Add("888*,+1900*,2125550199", []byte{1, 1, 1}, "+18885551234", uint8(1))
	f.Fuzz(func(t *testing.T, patterns string, weights []byte, callerRaw string, which uint8) {
		num := fuzzNumbers[int(which)%len(fuzzNumbers)]
		var rules []config.Rule
		for p := range strings.SplitSeq(patterns, ",") {
			if config.CheckPrefix(p) != nil || len(rules) == config.MaxRulesPerNumber {
				continue
			}
			w, tags := 0, []string(nil)
			if len(weights) > 0 {
				b := weights[len(rules)%len(weights)]
				w = int(b%8) - 2
				// A few shared tags, so that repeats must be dropped.
				for k := range b % 3 {
					tags = append(tags, "t"+strconv.Itoa(int(b>>3+k)%6))
				}
			}
			rules = append(rules, config.Rule{Prefix: p, Weight: w, Action: config.ActionCNAMPrefix,
				CNAMPrefix: "p" + strconv.Itoa(len(rules)) + " ", Tags: tags})
		}
		if len(rules) == 0 {
			return
		}
		doc := &config.Document{Account: "f", Numbers: map[string]config.Number{
			num: {Extension: "e", CNAMPrefix: "N ", Tags: []string{"t1", "n"}, Rules: rules}}}
		s, err := Compile(doc)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		var want []int
		for i, r := range rules {
			if refMatch(r.Prefix, callerRaw, num) {
				want = append(want, i)
			}
		}
		slices.SortStableFunc(want, func(a, b int) int { return cmp.Compare(rules[a].Weight, rules[b].Weight) })
		wantTags, wantName := []string{"t1", "n"}, "Caller"
		for _, i := range want {
			for _, tag := range rules[i].Tags {
				if !slices.Contains(wantTags, tag) {
					wantTags = append(wantTags, tag)
				}
			}
			wantName = rules[i].CNAMPrefix + wantName
		}
		wantName = "N " + wantName
		var d Decision
		s.Route(&Request{Number: num, Caller: callerRaw, CallerName: "Caller"}, &d)
		if !slices.Equal(d.RulesFired, want) && !(len(want) == 0 && len(d.RulesFired) == 0) {
			t.Fatalf("number %s caller %q patterns %q weights %v:\nfired %v\nwant  %v", num, callerRaw,
				prefixes(rules), weightsOf(rules), d.RulesFired, want)
		}
		if !slices.Equal(d.Tags, wantTags) || d.CallerName != wantName {
			t.Fatalf("tags %q name %q, want %q %q", d.Tags, d.CallerName, wantTags, wantName)
		}
		_ = d.Trace() // rendering must not panic on anything Route accepted
	})
}

func prefixes(rules []config.Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.Prefix
	}
	return out
}

func weightsOf(rules []config.Rule) []int {
	out := make([]int, len(rules))
	for i, r := range rules {
		out[i] = r.Weight
	}
	return out
}

// refMatch is the reference: one rule, one caller, by the letter of SPEC §3
// and the Request documentation, with no precomputation.
func refMatch(pattern, callerRaw, numberE164 string) bool {
	withheld := slices.Contains([]string{"", "anonymous", "unknown", "private", "restricted", "unavailable"}, strings.ToLower(callerRaw))
	switch {
	case pattern == "*":
		return true
	case pattern == "anonymous":
		return withheld
	case withheld:
		return false
	}
	digits, ok := refDigits(callerRaw)
	if !ok {
		return false
	}
	plus := strings.HasPrefix(pattern, "+")
	body := strings.TrimPrefix(pattern, "+")
	star := strings.HasSuffix(body, "*")
	body = strings.TrimSuffix(body, "*")
	candidates := []string{digits}
	if cc := refCC(digits); !plus && cc != "" && cc == refCC(numberE164[1:]) {
		candidates = append(candidates, digits[len(cc):])
	}
	for _, c := range candidates {
		if star && strings.HasPrefix(c, body) || !star && c == body {
			return true
		}
	}
	return false
}

// refDigits: +E164, 00E164 or bare digits, visual separators dropped, 1 to
// 15 digits not starting with 0.
func refDigits(s string) (string, bool) {
	if strings.HasPrefix(s, "+") {
		s = s[1:]
	} else if strings.HasPrefix(s, "00") {
		s = s[2:]
	}
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune(" -.()", r) {
			return -1
		}
		return r
	}, s)
	if s == "" || len(s) > 15 || s[0] == '0' || strings.Trim(s, "0123456789") != "" {
		return "", false
	}
	return s, true
}

// refCodes are the calling codes phonenumbers knows, as strings.
var refCodes = func() (out []string) {
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		out = append(out, strconv.Itoa(cc))
	}
	return out
}()

// refCC finds the calling code by trying every code in turn.
func refCC(digits string) string {
	for _, s := range refCodes {
		if strings.HasPrefix(digits, s) && len(digits) > len(s) {
			return s
		}
	}
	return ""
}
