package routing

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// bench300 is a number with the maximum 300 rules: 294 that the benchmark
// callers never match (UK prefixes, Spanish national prefixes, exact
// numbers) and six that they do, in a shuffled weight order.
func bench300(tb testing.TB) *Snapshot {
	const n = config.MaxRulesPerNumber
	rules := make([]config.Rule, 0, n)
	for i := 0; len(rules) < n-6; i++ {
		var p string
		switch i % 3 {
		case 0:
			p = fmt.Sprintf("+44%04d*", i)
		case 1:
			p = fmt.Sprintf("7%03d*", i)
		default:
			p = fmt.Sprintf("3491%07d", i)
		}
		rules = append(rules, config.Rule{Prefix: p, Weight: (i * 37) % 300, Action: config.ActionRoute, Extension: "support", Tags: []string{"filler"}})
	}
	rules = append(rules,
		config.Rule{Prefix: "*", Weight: 50, Action: config.ActionVoiceCaptcha, Reputation: "high"},
		config.Rule{Prefix: "34*", Weight: 60, Action: config.ActionCNAMPrefix, CNAMPrefix: "ES ", Tags: []string{"spain"}},
		config.Rule{Prefix: "3460*", Weight: 100, Action: config.ActionCNAMPrefix, CNAMPrefix: "MOBILE ", Tags: []string{"mobile"}},
		config.Rule{Prefix: "600111*", Weight: 150, Action: config.ActionCNAMPrefix, CNAMPrefix: "VIP ", Tags: []string{"vip"}},
		config.Rule{Prefix: "600111222", Weight: 299, Action: config.ActionRoute, Extension: "sales"},
		config.Rule{Prefix: "888*", Weight: 250, Action: config.ActionRejectBusy, Tags: []string{"toll-free"}},
	)
	slices.Reverse(rules) // the matching rules first in the file, last by weight
	doc := &config.Document{Account: "bench", Numbers: map[string]config.Number{
		"+34910000000": {Extension: "front", CNAMPrefix: "MAIN ", Tags: []string{"main"}, Rules: rules},
	}}
	s, err := Compile(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// benchRoute runs Route b.N times and also reports the median time per call
// over batches of 64 calls, which is steadier than the mean.
func benchRoute(b *testing.B, s *Snapshot, req *Request, want Outcome) {
	var d Decision
	s.Route(req, &d)
	if d.Outcome != want {
		b.Fatalf("outcome %q, want %q:\n%q", d.Outcome, want, d.Trace())
	}
	const batch = 64
	samples := make([]float64, 0, b.N/batch+1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		t0 := time.Now()
		for range n {
			s.Route(req, &d)
		}
		samples = append(samples, float64(time.Since(t0).Nanoseconds())/float64(n))
		i += n
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(samples[len(samples)/2], "median-ns/op")
}

// A routed call: three cnam-prefix rules fire and an exact national rule
// routes; the caller name is built (one allocation).
func BenchmarkRoute300Routed(b *testing.B) {
	benchRoute(b, bench300(b), &Request{Number: "+34910000000", Caller: "+34600111222", CallerName: "Jane Doe"}, OutcomeRouted)
}

// A rejected call: a national "888*" rule rejects after others fired.
func BenchmarkRoute300Rejected(b *testing.B) {
	benchRoute(b, bench300(b), &Request{Number: "+34910000000", Caller: "+34888123456", CallerName: "Spam"}, OutcomeRejected)
}

// No rule matches: the call goes to the number's extension.
func BenchmarkRoute300NoMatch(b *testing.B) {
	benchRoute(b, bench300(b), &Request{Number: "+34910000000", Caller: "+33612345678", CallerName: "Jean"}, OutcomeRouted)
}

// The worst case: all 300 rules match a withheld caller and fire.
func BenchmarkRoute300AllMatch(b *testing.B) {
	rules := make([]config.Rule, config.MaxRulesPerNumber)
	for i := range rules {
		rules[i] = config.Rule{Prefix: "*", Weight: 300 - i, Action: config.ActionCNAMPrefix, CNAMPrefix: "P ", Tags: []string{"t"}}
	}
	s, err := Compile(&config.Document{Account: "bench", Numbers: map[string]config.Number{"+34910000000": {Extension: "front", Rules: rules}}})
	if err != nil {
		b.Fatal(err)
	}
	benchRoute(b, s, &Request{Number: "+34910000000", Caller: "anonymous", CallerName: "X"}, OutcomeRouted)
}

// Route and Trace together, as `route` and the call record do.
func BenchmarkRoute300Trace(b *testing.B) {
	s := bench300(b)
	req := &Request{Number: "+34910000000", Caller: "+34600111222", CallerName: "Jane Doe"}
	var d Decision
	b.ReportAllocs()
	for b.Loop() {
		s.Route(req, &d)
		_ = d.Trace()
	}
}

// doc100k is an account of 100,000 numbers with 10 rules each. One rule of
// every number names that number's own caller, so no two rule sets are the
// same and nothing can be shared: the worst case for Compile.
func doc100k(shared bool) *config.Document {
	const numbers = 100_000
	tags := [][]string{{"mobile"}, {"vip", "mobile"}, nil}
	doc := &config.Document{Account: "big", Numbers: make(map[string]config.Number, numbers)}
	for i := range numbers {
		rules := make([]config.Rule, 10)
		for j := range rules {
			r := config.Rule{Weight: (j * 7) % 10, Action: config.ActionCNAMPrefix, CNAMPrefix: "P ", Tags: tags[j%3]}
			switch j {
			case 0:
				r.Prefix, r.Action, r.CNAMPrefix = "anonymous", config.ActionReject503, ""
			case 1:
				r.Prefix, r.Action, r.CNAMPrefix, r.Reputation = "*", config.ActionVoiceCaptcha, "", "medium"
			case 2:
				r.Prefix = fmt.Sprintf("+44%d*", 20+j)
			case 3:
				r.Prefix, r.Action, r.CNAMPrefix, r.Extension = fmt.Sprintf("+346%08d", i), config.ActionRoute, "", "support"
				if shared {
					r.Prefix = "+34600000000"
				}
			default:
				r.Prefix = fmt.Sprintf("%d%d*", 6+j%3, (i+j)%1000)
				if shared {
					r.Prefix = fmt.Sprintf("%d%d*", 6+j%3, j)
				}
			}
			rules[j] = r
		}
		doc.Numbers[fmt.Sprintf("+3491%07d", i)] = config.Number{Extension: "front", Tags: []string{"big"}, Rules: rules}
	}
	return doc
}

func benchCompile(b *testing.B, doc *config.Document) {
	b.ReportAllocs()
	var s *Snapshot
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		var err error
		if s, err = Compile(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-retained")
	if s.Len() != len(doc.Numbers) {
		b.Fatalf("%d numbers compiled", s.Len())
	}
	runtime.KeepAlive(s)
}

// BenchmarkCompile100k compiles 100,000 numbers with 10 distinct rules each.
func BenchmarkCompile100k(b *testing.B) { benchCompile(b, doc100k(false)) }

// BenchmarkCompile100kShared compiles 100,000 numbers built from one template.
func BenchmarkCompile100kShared(b *testing.B) { benchCompile(b, doc100k(true)) }
