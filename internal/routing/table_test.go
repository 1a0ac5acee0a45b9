package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/examples"
	"github.com/switchboard/switchboard/internal/config"
)

func TestTable(t *testing.T) {
	var tb Table
	if tb.Load("acme") != nil {
		t.Fatal("empty table returned a snapshot")
	}
	s1, s2 := loadSnapshot(t), loadSnapshot(t)
	tb.Store("acme", s1)
	if tb.Load("acme") != s1 || tb.Load("other") != nil {
		t.Fatal("Load after Store")
	}
	tb.Store("acme", s2)
	if tb.Load("acme") != s2 {
		t.Fatal("Load after swap")
	}
	if got := tb.Accounts(); !slices.Equal(got, []string{"acme"}) {
		t.Fatalf("Accounts() = %q", got)
	}
	tb.Delete("acme")
	if tb.Load("acme") != nil {
		t.Fatal("Load after Delete")
	}
	tb.Store("acme", s1)
	tb.Store("acme", nil)
	if tb.Load("acme") != nil {
		t.Fatal("Store(nil) did not delete")
	}
}

// Readers route while a writer swaps snapshots: run with -race.
func TestTableConcurrent(t *testing.T) {
	var tb Table
	snaps := []*Snapshot{loadSnapshot(t), loadSnapshot(t)}
	tb.Store("acme", snaps[0])
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			var d Decision
			for i := range 500 {
				s := tb.Load("acme")
				s.Route(&Request{Number: main, Caller: fmt.Sprintf("+3460011%04d", i+r)}, &d)
				if d.Outcome != OutcomeRouted {
					t.Errorf("outcome %q", d.Outcome)
					return
				}
			}
		})
	}
	for i := range 200 {
		tb.Store("acme", snaps[i%2])
	}
	wg.Wait()
}

func TestExplain(t *testing.T) {
	s := loadSnapshot(t)
	var asked []string
	counter := func(ext string) (uint64, error) { asked = append(asked, ext); return 4, nil }

	ex, err := Explain(s, &Request{Number: "+34910000006", Caller: "+34911222333", CallerName: "N"}, counter)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"user:alice"}, {"user:bob"}, {"+34600000003"}}; !slices.EqualFunc(ex.Attempts, want, slices.Equal) {
		t.Errorf("attempts %q, want %q", ex.Attempts, want)
	}
	if len(asked) != 0 {
		t.Errorf("counter read for a sequential group: %q", asked)
	}
	if last := ex.Trace[len(ex.Trace)-1]; last != "attempts: user:alice -> user:bob -> +34600000003" {
		t.Errorf("last trace line %q", last)
	}

	// The rotating group reads the counter: 4 mod 3 = member 1.
	ex, err = Explain(s, &Request{Number: "+34910000008", Caller: "+34600111444"}, counter)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"user:bob"}, {"carol"}, {"user:alice"}}; !slices.EqualFunc(ex.Attempts, want, slices.Equal) || !slices.Equal(asked, []string{"rota"}) {
		t.Errorf("attempts %q (counter asked for %q)", ex.Attempts, asked)
	}

	// JSON field names are the contract of `route --json` (SPEC §6).
	ex, err = Explain(s, &Request{Number: main, Caller: "anonymous"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ex)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"outcome", "sip_status", "caller_name", "tags", "rules_fired", "captcha", "trace"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if m["outcome"] != "rejected" || m["sip_status"] != float64(503) || ex.Attempts != nil {
		t.Errorf("JSON %s", b)
	}

	// Empty lists are [] in JSON, not null.
	ex, _ = Explain(s, &Request{Number: "+34910000003", Caller: "+34911222333"}, nil)
	b, _ = json.Marshal(ex)
	if !strings.Contains(string(b), `"tags":[]`) || !strings.Contains(string(b), `"rules_fired":[]`) {
		t.Errorf("JSON %s", b)
	}

	boom := errors.New("db down")
	if _, err := Explain(s, &Request{Number: "+34910000008", Caller: "+34600111444"},
		func(string) (uint64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("counter error: %v", err)
	}
}

// The sample account and the demo's calls (cmd/switchboard/demo.go).
func TestSampleAccount(t *testing.T) {
	data, err := examples.FS.ReadFile("acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := config.Parse(data, "acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		req     Request
		outcome Outcome
		dest    string
		name    string
	}{
		{Request{Number: "+34910000000", Caller: "+442071234567", CallerName: "Sam Jones"}, OutcomeRouted, "support", "MAIN Sam Jones"},
		{Request{Number: "+34910000000", Caller: "+34600111222", CallerName: "Jane Doe"}, OutcomeRouted, "front", "MAIN MOBILE Jane Doe"},
		{Request{Number: "+34910000000", Caller: "anonymous"}, OutcomeRejected, "", ""},
		{Request{Number: "+34910000000", Caller: "+34955123456", Reputation: config.LevelMedium, Captcha: CaptchaPassed}, OutcomeRouted, "front", "MAIN "},
		{Request{Number: "+34910000000", Caller: "+34955123456", Reputation: config.LevelHigh, Captcha: CaptchaFailed}, OutcomeCaptchaFailed, "", ""},
		{Request{Number: "+34910000001", Caller: "+34600111222", CallerName: "Jane Doe"}, OutcomeRouted, "rota", "VIP Jane Doe"},
		{Request{Number: "0034910000003", Caller: "+34911222333"}, OutcomeForwarded, "+34600000009", ""},
		{Request{Number: "442071230000", Caller: "+442079460000"}, OutcomeForwarded, "+447700900123", ""},
		{Request{Number: "+12125550100", Caller: "+18885551234"}, OutcomeRejected, "", ""},
		{Request{Number: "+12125550100", Caller: "+19005551234"}, OutcomeRejected, "", ""},
		{Request{Number: "+34999999999", Caller: "+34911222333"}, OutcomeNotFound, "", ""},
	}
	var d Decision
	for _, c := range cases {
		s.Route(&c.req, &d)
		if d.Outcome != c.outcome || d.Destination != c.dest || d.CallerName != c.name {
			t.Errorf("%s from %s: %s to %q as %q; want %s to %q as %q\n  %s", c.req.Number, c.req.Caller,
				d.Outcome, d.Destination, d.CallerName, c.outcome, c.dest, c.name, strings.Join(d.Trace(), "\n  "))
		}
	}
}
