package accounts

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/routing"
)

func TestListKey(t *testing.T) {
	tests := []struct{ caller, want string }{
		{"+34600111222", "+34600111222"},
		{"0034600111222", "+34600111222"},
		{"34600111222", "+34600111222"},
		{"+34 600-111.222", "+34600111222"},
		{"", "anonymous"},
		{"anonymous", "anonymous"},
		{"Anonymous", "anonymous"},
		{"sales", "sales"},
		{"0600111222", "0600111222"}, // national form: not a number, kept as given
	}
	for _, tt := range tests {
		if got := ListKey(tt.caller); got != tt.want {
			t.Errorf("ListKey(%q) = %q, want %q", tt.caller, got, tt.want)
		}
	}
}

func TestScreenReputationList(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	for caller, level := range map[string]config.Level{
		"+34600111222": config.LevelHigh,
		"+34600333444": config.LevelMedium,
		"anonymous":    config.LevelLow,
	} {
		if err := st.SetReputation(ctx, "acme", caller, level); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := newDirectory(t, st, nil)

	tests := []struct {
		name    string
		account string
		caller  string
		given   config.Level // req.Reputation before screening
		want    config.Level
		note    string // "" when no note is expected
	}{
		{"listed, E.164", "acme", "+34600111222", config.LevelNone, config.LevelHigh, "is on the account's list as high"},
		{"listed, 00 form", "acme", "0034600111222", config.LevelNone, config.LevelHigh, "is on the account's list as high"},
		{"listed, bare digits", "acme", "34600111222", config.LevelNone, config.LevelHigh, "is on the account's list as high"},
		{"listed, with separators", "acme", "+34 600 111 222", config.LevelNone, config.LevelHigh, "is on the account's list as high"},
		{"listed medium raises low", "acme", "+34600333444", config.LevelLow, config.LevelMedium, "is on the account's list as medium"},
		{"listed medium never lowers high", "acme", "+34600333444", config.LevelHigh, config.LevelHigh, "is on the account's list as medium"},
		{"withheld caller is the anonymous entry", "acme", "", config.LevelNone, config.LevelLow, "is on the account's list as low"},
		{"not listed", "acme", "+34600999888", config.LevelMedium, config.LevelMedium, ""},
		{"another account's list does not apply", "other", "+34600111222", config.LevelNone, config.LevelNone, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := routing.Request{Number: "+34910000000", Caller: tt.caller, Reputation: tt.given}
			notes := d.Screen(ctx, tt.account, &req, true)
			if req.Reputation != tt.want {
				t.Errorf("reputation = %s, want %s", req.Reputation, tt.want)
			}
			if tt.note == "" {
				if len(notes) != 0 {
					t.Errorf("notes = %q, want none", notes)
				}
				return
			}
			if len(notes) != 1 || !strings.HasPrefix(notes[0], "reputation: ") || !strings.Contains(notes[0], tt.note) {
				t.Errorf("notes = %q, want one reputation note containing %q", notes, tt.note)
			}
		})
	}
}

func TestScreenFloodGuard(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clock := newTestClock()
	d, _ := newDirectory(t, st, clock)

	screen := func(account, caller string, observe bool) (config.Level, []string) {
		req := routing.Request{Number: "+34910000000", Caller: caller}
		notes := d.Screen(ctx, account, &req, observe)
		return req.Reputation, notes
	}
	floodNote := func(notes []string, calls string) bool {
		return len(notes) == 1 && strings.Contains(notes[0], "placed "+calls+" calls") &&
			strings.Contains(notes[0], "(flood guard): high")
	}

	t.Run("the 11th call within the window is high", func(t *testing.T) {
		const caller = "+34600000001"
		for i := 1; i <= routing.FloodLimit; i++ {
			clock.Advance(time.Second)
			if level, notes := screen("acme", caller, true); level != config.LevelNone || len(notes) != 0 {
				t.Fatalf("call %d: reputation %s, notes %q; want none", i, level, notes)
			}
		}
		clock.Advance(time.Second)
		// In another form: the guard counts the caller, not the string.
		level, notes := screen("acme", "0034600000001", true)
		if level != config.LevelHigh || !floodNote(notes, "11") {
			t.Fatalf("11th call: reputation %s, notes %q; want high with a flood note", level, notes)
		}
	})

	t.Run("an explanation counts the call it explains and records none", func(t *testing.T) {
		const caller = "+34600000002"
		for range routing.FloodLimit {
			clock.Advance(time.Second)
			screen("acme", caller, true)
		}
		for i := range 3 {
			level, notes := screen("acme", caller, false)
			if level != config.LevelHigh || !floodNote(notes, "11") {
				t.Fatalf("explanation %d: reputation %s, notes %q; want high, 11 calls", i, level, notes)
			}
		}
		if n := d.Flood.Count(ctx, "acme", caller, clock.Now()); n != routing.FloodLimit {
			t.Fatalf("after explaining, the guard holds %d calls, want %d", n, routing.FloodLimit)
		}
		// Once the window has passed, neither an explanation nor a call is high.
		clock.Advance(routing.FloodWindow + time.Second)
		if level, notes := screen("acme", caller, false); level != config.LevelNone || len(notes) != 0 {
			t.Fatalf("after the window: reputation %s, notes %q; want none", level, notes)
		}
	})

	t.Run("fewer calls are not a flood, explained or placed", func(t *testing.T) {
		const caller = "+34600000003"
		if level, _ := screen("acme", caller, false); level != config.LevelNone {
			t.Fatalf("explanation of a first call: %s", level)
		}
		for range routing.FloodLimit - 1 {
			clock.Advance(time.Second)
			screen("acme", caller, true)
		}
		if level, notes := screen("acme", caller, false); level != config.LevelNone || len(notes) != 0 {
			t.Fatalf("explaining the 10th call: reputation %s, notes %q; want none", level, notes)
		}
	})

	t.Run("calls to other accounts do not count", func(t *testing.T) {
		const caller = "+34600000004"
		for i := range 2 * routing.FloodLimit {
			clock.Advance(time.Second)
			account := []string{"acme", "beta"}[i%2]
			if level, _ := screen(account, caller, true); level != config.LevelNone {
				t.Fatalf("call %d to %s: %s", i+1, account, level)
			}
		}
	})

	t.Run("withheld callers never flood", func(t *testing.T) {
		for _, caller := range []string{"", "anonymous", "Anonymous", "unknown", "restricted"} {
			for i := range 3 * routing.FloodLimit {
				clock.Advance(100 * time.Millisecond)
				if level, notes := screen("acme", caller, true); level != config.LevelNone || len(notes) != 0 {
					t.Fatalf("withheld %q, call %d: reputation %s, notes %q", caller, i+1, level, notes)
				}
			}
			if level, _ := screen("acme", caller, false); level != config.LevelNone {
				t.Fatalf("withheld %q, explanation: %s", caller, level)
			}
		}
	})

	t.Run("list and flood together", func(t *testing.T) {
		const caller = "+34600000005"
		if err := st.SetReputation(ctx, "acme", caller, config.LevelMedium); err != nil {
			t.Fatal(err)
		}
		for range routing.FloodLimit {
			clock.Advance(time.Second)
			screen("acme", caller, true)
		}
		level, notes := screen("acme", caller, true)
		if level != config.LevelHigh || len(notes) != 2 ||
			!strings.Contains(notes[0], "list as medium") || !strings.Contains(notes[1], "flood guard") {
			t.Fatalf("reputation %s, notes %q; want high with the list note then the flood note", level, notes)
		}
	})
}

const explainYAML = `
account: acme
trunks:
  carrier: { address: "sip:127.0.0.1:5070", inbound_from: ["127.0.0.1/32"] }
extensions:
  front: { destination: "sip:front@127.0.0.1:5090" }
  rota:
    type: group
    members: ["sip:a@127.0.0.1", "sip:b@127.0.0.1", "sip:c@127.0.0.1"]
    distribution: rotating
numbers:
  "+34910000000":
    extension: front
    rules:
      - { prefix: "*", weight: 10, action: reject-busy, reputation: high }
      - { prefix: "+4420*", weight: 20, action: route, extension: rota, tags: [london] }
`

func TestExplain(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	applyYAML(t, st, explainYAML)
	if err := st.SetReputation(ctx, "acme", "+34600111222", config.LevelHigh); err != nil {
		t.Fatal(err)
	}
	// Two calls to rota were placed: explanations start at member 2.
	for range 2 {
		if _, err := st.NextRotation(ctx, "acme", "rota"); err != nil {
			t.Fatal(err)
		}
	}
	d := loadedDirectory(t, st)

	front := [][]string{{"sip:front@127.0.0.1:5090"}}
	tests := []struct {
		name        string
		req         routing.Request
		outcome     routing.Outcome
		status      int
		destination string
		fired       []int
		attempts    [][]string
		listNote    bool
	}{
		{"listed-high caller is rejected busy", routing.Request{Number: "+34910000000", Caller: "0034600111222"},
			routing.OutcomeRejected, 486, "", []int{0}, nil, true},
		{"high reputation from the request", routing.Request{Number: "+34910000000", Caller: "+34600999888", Reputation: config.LevelHigh},
			routing.OutcomeRejected, 486, "", []int{0}, nil, false},
		{"medium reputation does not fire a high rule", routing.Request{Number: "+34910000000", Caller: "+34600999888", Reputation: config.LevelMedium},
			routing.OutcomeRouted, 0, "front", []int{}, front, false},
		{"route rule to a rotating group", routing.Request{Number: "+34910000000", Caller: "+442079460000"},
			routing.OutcomeRouted, 0, "rota", []int{1}, [][]string{{"sip:c@127.0.0.1"}, {"sip:a@127.0.0.1"}, {"sip:b@127.0.0.1"}}, false},
		{"plain caller", routing.Request{Number: "34910000000", Caller: "+34600999888"},
			routing.OutcomeRouted, 0, "front", []int{}, front, false},
		{"unknown number", routing.Request{Number: "+34910000099", Caller: "+34600999888"},
			routing.OutcomeNotFound, 404, "", []int{}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fromStore, err := Explain(ctx, st, "acme", tt.req)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			fromNode, err := d.Explain(ctx, "acme", tt.req)
			if err != nil {
				t.Fatalf("Directory.Explain: %v", err)
			}
			for _, c := range []struct {
				who string
				ex  *routing.Explanation
			}{{"Explain", fromStore}, {"Directory.Explain", fromNode}} {
				ex := c.ex
				if ex.Outcome != tt.outcome || ex.SIPStatus != tt.status || ex.Destination != tt.destination {
					t.Errorf("%s: %s %d %q, want %s %d %q", c.who, ex.Outcome, ex.SIPStatus, ex.Destination, tt.outcome, tt.status, tt.destination)
				}
				if !slices.Equal(ex.RulesFired, tt.fired) {
					t.Errorf("%s: rules_fired %v, want %v", c.who, ex.RulesFired, tt.fired)
				}
				if !reflect.DeepEqual(ex.Attempts, tt.attempts) {
					t.Errorf("%s: attempts %v, want %v", c.who, ex.Attempts, tt.attempts)
				}
				hasNote := len(ex.Trace) > 0 && strings.Contains(ex.Trace[0], "is on the account's list as high")
				if hasNote != tt.listNote {
					t.Errorf("%s: list note in the trace = %v, want %v; trace:\n%s", c.who, hasNote, tt.listNote, strings.Join(ex.Trace, "\n"))
				}
			}
			// Without flood history the two explain exactly alike.
			if !reflect.DeepEqual(fromStore, fromNode) {
				t.Errorf("Explain and Directory.Explain differ:\n%+v\n%+v", fromStore, fromNode)
			}
		})
	}

	t.Run("explaining does not advance the rotation", func(t *testing.T) {
		if n, err := st.PeekRotation(ctx, "acme", "rota"); err != nil || n != 2 {
			t.Fatalf("rotation counter = %d, %v; want 2", n, err)
		}
	})

	t.Run("Directory.Explain sees the flood guard, Explain does not", func(t *testing.T) {
		req := routing.Request{Number: "+34910000000", Caller: "+34600555666"}
		for range routing.FloodLimit {
			r := req
			d.Screen(ctx, "acme", &r, true)
		}
		fromNode, err := d.Explain(ctx, "acme", req)
		if err != nil {
			t.Fatal(err)
		}
		if fromNode.Outcome != routing.OutcomeRejected || !slices.Equal(fromNode.RulesFired, []int{0}) ||
			!strings.Contains(fromNode.Trace[0], "flood guard") {
			t.Errorf("Directory.Explain: %s rules %v, trace %q; want rejected by rule 0 with a flood note",
				fromNode.Outcome, fromNode.RulesFired, fromNode.Trace)
		}
		fromStore, err := Explain(ctx, st, "acme", req)
		if err != nil {
			t.Fatal(err)
		}
		if fromStore.Outcome != routing.OutcomeRouted || len(fromStore.RulesFired) != 0 {
			t.Errorf("Explain: %s rules %v; want routed, no flood history", fromStore.Outcome, fromStore.RulesFired)
		}
		if n := d.Flood.Count(ctx, "acme", req.Caller, d.cfg.Now()); n != routing.FloodLimit {
			t.Errorf("the guard holds %d calls, want %d: Directory.Explain must not record one", n, routing.FloodLimit)
		}
	})

	t.Run("unknown account", func(t *testing.T) {
		req := routing.Request{Number: "+34910000000", Caller: "+34600999888"}
		_, errStore := Explain(ctx, st, "nobody", req)
		_, errNode := d.Explain(ctx, "nobody", req)
		for who, err := range map[string]error{"Explain": errStore, "Directory.Explain": errNode} {
			if !errors.Is(err, ErrUnknownAccount) {
				t.Errorf("%s: error %v, want ErrUnknownAccount", who, err)
				continue
			}
			if got, want := err.Error(), `account "nobody" not found`; got != want {
				t.Errorf("%s: error %q, want %q", who, got, want)
			}
		}
	})
}

func TestExplainDoc(t *testing.T) {
	doc := parseDoc(t, explainYAML)
	tests := []struct {
		name     string
		req      routing.Request
		outcome  routing.Outcome
		fired    []int
		attempts [][]string
	}{
		// No store: no reputation list, so a listed caller is just a caller.
		{"no reputation list", routing.Request{Number: "+34910000000", Caller: "+34600111222"},
			routing.OutcomeRouted, []int{}, [][]string{{"sip:front@127.0.0.1:5090"}}},
		{"reputation of the request", routing.Request{Number: "+34910000000", Caller: "+34600111222", Reputation: config.LevelHigh},
			routing.OutcomeRejected, []int{0}, nil},
		{"rotating group at counter 0", routing.Request{Number: "+34910000000", Caller: "+442079460000"},
			routing.OutcomeRouted, []int{1}, [][]string{{"sip:a@127.0.0.1"}, {"sip:b@127.0.0.1"}, {"sip:c@127.0.0.1"}}},
		{"unknown number", routing.Request{Number: "+34910000099"}, routing.OutcomeNotFound, []int{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := ExplainDoc(doc, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Outcome != tt.outcome || !slices.Equal(ex.RulesFired, tt.fired) || !reflect.DeepEqual(ex.Attempts, tt.attempts) {
				t.Errorf("got %s rules %v attempts %v; want %s rules %v attempts %v",
					ex.Outcome, ex.RulesFired, ex.Attempts, tt.outcome, tt.fired, tt.attempts)
			}
		})
	}
	t.Run("a document that does not compile", func(t *testing.T) {
		if _, err := ExplainDoc(uncompilable(t), routing.Request{Number: "+34910000000"}); err == nil {
			t.Fatal("ExplainDoc of an uncompilable document succeeded")
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestValidateFile(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	// Validation decodes each prompt file: a real WAV passes.
	wav, err := os.ReadFile(filepath.Join("..", "prompt", "builtin", "please-hold.wav"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "audio", "hello.wav"), string(wav))
	writeFile(t, filepath.Join(other, "abs.wav"), string(wav))
	abs := filepath.Join(other, "abs.wav")
	valid := `
account: acme
prompts:
  hello: { file: "audio/hello.wav" }
  absolute: { file: "` + abs + `" }
  closed: { say: "We are closed." }
extensions:
  front: { destination: "sip:front@127.0.0.1:5090", announcement: "prompt:hello" }
numbers:
  "+34910000000": { extension: front }
`
	file := filepath.Join(dir, "acme.yaml")
	writeFile(t, file, valid)

	checkPrompts := func(t *testing.T, doc *config.Document) {
		t.Helper()
		if doc == nil || doc.Account != "acme" {
			t.Fatalf("doc = %+v", doc)
		}
		want := map[string]config.Prompt{
			"hello":    {File: filepath.Join(dir, "audio", "hello.wav")},
			"absolute": {File: abs},
			"closed":   {Say: "We are closed."},
		}
		if !reflect.DeepEqual(doc.Prompts, want) {
			t.Fatalf("prompts = %v, want %v", doc.Prompts, want)
		}
	}

	t.Run("valid file", func(t *testing.T) {
		doc, err := ValidateFile(file)
		if err != nil {
			t.Fatal(err)
		}
		checkPrompts(t, doc)
	})

	t.Run("valid file named relative to the working directory", func(t *testing.T) {
		t.Chdir(dir)
		doc, err := ValidateFile("acme.yaml")
		if err != nil {
			t.Fatal(err)
		}
		checkPrompts(t, doc)
	})

	t.Run("field errors, one per line with their paths", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.yaml")
		writeFile(t, bad, `
account: acme
trunks:
  carrier: { username: u }
users:
  alice: { extension: "1x1" }
prompts:
  hello: { file: "missing.wav" }
numbers:
  "+34910000000": { extension: nowhere }
`)
		doc, err := ValidateFile(bad)
		if err == nil {
			t.Fatalf("ValidateFile accepted an invalid file: %+v", doc)
		}
		if doc != nil {
			t.Errorf("ValidateFile returned a document with the error")
		}
		lines := strings.Split(err.Error(), "\n")
		if !strings.HasPrefix(lines[0], bad+": ") {
			t.Errorf("first line %q does not start with the file name %q", lines[0], bad)
		}
		if want := bad + ": 4 errors"; lines[0] != want {
			t.Errorf("first line %q, want %q", lines[0], want)
		}
		paths := []string{
			"trunks.carrier.address: required",
			`users.alice.extension: "1x1" is not an extension number`,
			`prompts.hello.file: unreadable prompt file "missing.wav"`,
			`numbers["+34910000000"].extension: unknown reference "nowhere"`,
		}
		if len(lines) != 1+len(paths) {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), 1+len(paths), err)
		}
		for i, p := range paths {
			if l := lines[1+i]; !strings.HasPrefix(l, "  "+p) {
				t.Errorf("line %d = %q, want it to start with %q", 1+i, l, "  "+p)
			}
		}
	})

	t.Run("parse error", func(t *testing.T) {
		bad := filepath.Join(dir, "typo.yaml")
		writeFile(t, bad, "acount: acme\n")
		_, err := ValidateFile(bad)
		if err == nil || !strings.HasPrefix(err.Error(), bad+": ") {
			t.Fatalf("error %v, want one starting with %q", err, bad+": ")
		}
	})

	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(dir, "nope.yaml")
		_, err := ValidateFile(missing)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("error %v, want a not-exist error naming %s", err, missing)
		}
	})
}

func TestApplyExport(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	doc := parseDoc(t, `
account: acme
trunks:
  carrier: { address: "sip:carrier.example.com", username: acme, password: trunk-secret }
users:
  alice: { extension: "101", password: alice-secret }
  bob: { extension: "102" }
extensions:
  front: { destination: "user:alice" }
numbers:
  "+34910000000": { extension: front }
`)
	v1, err := Apply(ctx, st, doc)
	if err != nil || v1 != 1 {
		t.Fatalf("Apply = %d, %v; want version 1", v1, err)
	}

	export := func(t *testing.T, secrets bool) (*config.Document, string) {
		t.Helper()
		out, err := Export(ctx, st, "acme", secrets)
		if err != nil {
			t.Fatal(err)
		}
		got, err := config.Parse(out, "export.yaml")
		if err != nil {
			t.Fatalf("the export does not parse: %v\n%s", err, out)
		}
		return got, string(out)
	}

	var redacted *config.Document
	t.Run("passwords redacted", func(t *testing.T) {
		got, text := export(t, false)
		for _, secret := range []string{"trunk-secret", "alice-secret"} {
			if strings.Contains(text, secret) {
				t.Errorf("the export shows %q:\n%s", secret, text)
			}
		}
		if p := got.Users["alice"].Password; p != config.Redacted {
			t.Errorf("alice's password = %q, want %q", p, config.Redacted)
		}
		if p := got.Trunks["carrier"].Password; p != config.Redacted {
			t.Errorf("the trunk's password = %q, want %q", p, config.Redacted)
		}
		if p := got.Users["bob"].Password; p != "" {
			t.Errorf("bob has no password, the export shows %q", p)
		}
		if got.Trunks["carrier"].Username != "acme" || got.Numbers["+34910000000"].Extension != "front" {
			t.Errorf("the export lost more than secrets:\n%s", text)
		}
		redacted = got
	})

	t.Run("secrets", func(t *testing.T) {
		got, text := export(t, true)
		if got.Users["alice"].Password != "alice-secret" || got.Trunks["carrier"].Password != "trunk-secret" {
			t.Errorf("the export with secrets does not show them:\n%s", text)
		}
		if !reflect.DeepEqual(got, doc) {
			t.Errorf("the export with secrets differs from the applied document:\n%s", text)
		}
	})

	t.Run("applying a redacted export keeps the secrets", func(t *testing.T) {
		if redacted == nil {
			t.Skip("no redacted export")
		}
		if err := redacted.Validate(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		v2, err := Apply(ctx, st, redacted)
		if err != nil || v2 != 2 {
			t.Fatalf("Apply = %d, %v; want version 2", v2, err)
		}
		stored, _, err := st.LoadConfig(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if stored.Users["alice"].Password != "alice-secret" || stored.Trunks["carrier"].Password != "trunk-secret" {
			t.Errorf("stored passwords %q, %q; want the originals", stored.Users["alice"].Password, stored.Trunks["carrier"].Password)
		}
	})

	t.Run("unknown account", func(t *testing.T) {
		for _, secrets := range []bool{false, true} {
			out, err := Export(ctx, st, "nobody", secrets)
			if !errors.Is(err, ErrUnknownAccount) || out != nil {
				t.Fatalf("Export(nobody, %v) = %q, %v; want ErrUnknownAccount", secrets, out, err)
			}
			if got, want := err.Error(), `account "nobody" not found`; got != want {
				t.Fatalf("error %q, want %q", got, want)
			}
		}
	})
}
