package accounts

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// planBase is the document every Diff case edits.
const planBase = `
account: acme
domain: acme.example.com
defaults:
  caller_id: original
  trunk: carrier
trunks:
  carrier: { address: "sip:127.0.0.1:5070", username: acme, password: trunkpw, inbound_from: ["127.0.0.1/32"] }
users:
  alice: { extension: "101", password: s3cret, sms: true }
  bob: { extension: "102" }
  carol: { extension: "103", password: pw3 }
locations:
  madrid: { forward: false, forward_destination: "+34600000009" }
extensions:
  support: { code: "21", type: group, members: ["user:alice"], timeout: 20s, confirm: false }
  sales: { type: individual, destination: "user:bob" }
ivrs:
  front:
    prompt: "prompt:welcome"
    options: { "1": sales, "2": support }
    collect: { variable: dest, max_digits: 12, timeout: 5s }
    next: sales
numbers:
  "+34910000000":
    extension: front
    tags: [spain]
    rules:
      - { prefix: "888*", weight: 10, action: reject-busy }
      - { prefix: "*", weight: 20, action: voice-captcha }
  "+34910000001":
    extension: support
`

// parsePlanDoc parses a document without validating it: Diff needs none.
func parsePlanDoc(t *testing.T, src string) *config.Document {
	t.Helper()
	doc, err := config.Parse([]byte(src), "plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// planLines is FormatPlan's output as lines.
func planLines(changes []Change) []string {
	var buf bytes.Buffer
	FormatPlan(&buf, changes)
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func TestDiff(t *testing.T) {
	const n0 = "+34910000000"
	tests := []struct {
		name string
		edit func(d *config.Document)
		want []string // FormatPlan's lines, summary included
	}{
		{"identical", func(d *config.Document) {}, []string{"No changes."}},
		{"zero value written out", func(d *config.Document) {
			// confirm: false is already there; sms: false and an empty list are left out alike.
			u := d.Users["bob"]
			u.SMS, u.Blocklist = false, []string{}
			d.Users["bob"] = u
		}, []string{"No changes."}},
		{"number added", func(d *config.Document) {
			d.Numbers["+34910000009"] = config.Number{Extension: "sales", Rules: []config.Rule{{Prefix: "*", Weight: 1, Action: "route", Extension: "sales"}}}
		}, []string{`+ numbers["+34910000009"]`, "1 to add, 0 to change, 0 to remove."}},
		{"number removed", func(d *config.Document) { delete(d.Numbers, "+34910000001") },
			[]string{`- numbers["+34910000001"]`, "0 to add, 0 to change, 1 to remove."}},
		{"number field changed", func(d *config.Document) {
			n := d.Numbers["+34910000001"]
			n.Extension = "sales"
			d.Numbers["+34910000001"] = n
		}, []string{`~ numbers["+34910000001"].extension: "support" -> "sales"`, "0 to add, 1 to change, 0 to remove."}},
		{"number tags", func(d *config.Document) {
			n := d.Numbers[n0]
			n.Tags = append(n.Tags, "main-line")
			d.Numbers[n0] = n
		}, []string{`~ numbers["+34910000000"].tags: ["spain"] -> ["spain","main-line"]`, "0 to add, 1 to change, 0 to remove."}},
		{"number forward added", func(d *config.Document) {
			n := d.Numbers["+34910000001"]
			n.Forward = &config.Forward{Enabled: true, Destination: "+34600000009"}
			d.Numbers["+34910000001"] = n
		}, []string{`+ numbers["+34910000001"].forward`, "1 to add, 0 to change, 0 to remove."}},
		{"rule added at the end", func(d *config.Document) {
			n := d.Numbers[n0]
			n.Rules = append(n.Rules, config.Rule{Prefix: "+4420*", Weight: 40, Action: "route", Extension: "support"})
			d.Numbers[n0] = n
		}, []string{`+ numbers["+34910000000"].rules[2]`, "1 to add, 0 to change, 0 to remove."}},
		{"first rule on a number", func(d *config.Document) {
			n := d.Numbers["+34910000001"]
			n.Rules = []config.Rule{{Prefix: "*", Weight: 1, Action: "reject-503"}}
			d.Numbers["+34910000001"] = n
		}, []string{`+ numbers["+34910000001"].rules[0]`, "1 to add, 0 to change, 0 to remove."}},
		{"last rule removed", func(d *config.Document) {
			n := d.Numbers[n0]
			n.Rules = n.Rules[:1]
			d.Numbers[n0] = n
		}, []string{`- numbers["+34910000000"].rules[1]`, "0 to add, 0 to change, 1 to remove."}},
		{"first rule removed: by index, the rest shift", func(d *config.Document) {
			n := d.Numbers[n0]
			n.Rules = n.Rules[1:]
			d.Numbers[n0] = n
		}, []string{
			`~ numbers["+34910000000"].rules[0].action: "reject-busy" -> "voice-captcha"`,
			`~ numbers["+34910000000"].rules[0].prefix: "888*" -> "*"`,
			`~ numbers["+34910000000"].rules[0].weight: 10 -> 20`,
			`- numbers["+34910000000"].rules[1]`,
			"0 to add, 3 to change, 1 to remove.",
		}},
		{"rule field changed", func(d *config.Document) { d.Numbers[n0].Rules[0].Prefix = "889*" },
			[]string{`~ numbers["+34910000000"].rules[0].prefix: "888*" -> "889*"`, "0 to add, 1 to change, 0 to remove."}},
		{"rule field added", func(d *config.Document) { d.Numbers[n0].Rules[1].Reputation = "medium" },
			[]string{`+ numbers["+34910000000"].rules[1].reputation: "medium"`, "1 to add, 0 to change, 0 to remove."}},
		{"rules reordered", func(d *config.Document) {
			r := d.Numbers[n0].Rules
			r[0], r[1] = r[1], r[0]
		}, []string{
			`~ numbers["+34910000000"].rules[0].action: "reject-busy" -> "voice-captcha"`,
			`~ numbers["+34910000000"].rules[0].prefix: "888*" -> "*"`,
			`~ numbers["+34910000000"].rules[0].weight: 10 -> 20`,
			`~ numbers["+34910000000"].rules[1].action: "voice-captcha" -> "reject-busy"`,
			`~ numbers["+34910000000"].rules[1].prefix: "*" -> "888*"`,
			`~ numbers["+34910000000"].rules[1].weight: 20 -> 10`,
			"0 to add, 6 to change, 0 to remove.",
		}},
		{"extension members", func(d *config.Document) {
			e := d.Extensions["support"]
			e.Members = append(e.Members, "user:bob")
			d.Extensions["support"] = e
		}, []string{`~ extensions.support.members: ["user:alice"] -> ["user:alice","user:bob"]`, "0 to add, 1 to change, 0 to remove."}},
		{"extension timeout and queue", func(d *config.Document) {
			e := d.Extensions["support"]
			e.Timeout = config.Duration(30 * time.Second)
			e.Queue = &config.Queue{MaxWait: config.Duration(2 * time.Minute)}
			d.Extensions["support"] = e
		}, []string{
			"+ extensions.support.queue",
			`~ extensions.support.timeout: "20s" -> "30s"`,
			"1 to add, 1 to change, 0 to remove.",
		}},
		{"extension added", func(d *config.Document) {
			d.Extensions["night"] = config.Extension{Type: "individual", Destination: "sip:night@127.0.0.1:5090"}
		}, []string{"+ extensions.night", "1 to add, 0 to change, 0 to remove."}},
		{"user password changed", func(d *config.Document) {
			u := d.Users["alice"]
			u.Password = "n3w-s3cret"
			d.Users["alice"] = u
		}, []string{"~ users.alice.password: (secret changed)", "0 to add, 1 to change, 0 to remove."}},
		{"user password set", func(d *config.Document) {
			u := d.Users["bob"]
			u.Password = "pw2"
			d.Users["bob"] = u
		}, []string{"+ users.bob.password: (secret)", "1 to add, 0 to change, 0 to remove."}},
		{"user password removed", func(d *config.Document) {
			u := d.Users["carol"]
			u.Password = ""
			d.Users["carol"] = u
		}, []string{"- users.carol.password: (secret)", "0 to add, 0 to change, 1 to remove."}},
		{"redacted passwords keep the stored ones", func(d *config.Document) {
			*d = *d.Redact()
		}, []string{"No changes."}},
		{"redacted password with none stored", func(d *config.Document) {
			u := d.Users["bob"]
			u.Password = config.Redacted
			d.Users["bob"] = u
		}, []string{"+ users.bob.password: (secret)", "1 to add, 0 to change, 0 to remove."}},
		{"trunk password changed", func(d *config.Document) {
			tr := d.Trunks["carrier"]
			tr.Password = "other"
			tr.InboundFrom = []string{"127.0.0.1/32", "10.0.0.0/8"}
			d.Trunks["carrier"] = tr
		}, []string{
			`~ trunks.carrier.inbound_from: ["127.0.0.1/32"] -> ["127.0.0.1/32","10.0.0.0/8"]`,
			"~ trunks.carrier.password: (secret changed)",
			"0 to add, 2 to change, 0 to remove.",
		}},
		{"user added and removed", func(d *config.Document) {
			delete(d.Users, "carol")
			d.Users["dave"] = config.User{Extension: "104", Password: "pw4"}
		}, []string{"- users.carol", "+ users.dave", "1 to add, 0 to change, 1 to remove."}},
		{"defaults fields", func(d *config.Document) {
			d.Defaults.Trunk = "backup"
			d.Defaults.CallerID = ""
			d.Defaults.Webhook = "http://127.0.0.1:9000/events?a=1&b=2"
			d.Defaults.AllowedDestinations = []string{"+34*"}
		}, []string{
			`+ defaults.allowed_destinations: ["+34*"]`,
			`- defaults.caller_id: "original"`,
			`~ defaults.trunk: "carrier" -> "backup"`,
			`+ defaults.webhook: "http://127.0.0.1:9000/events?a=1&b=2"`,
			"2 to add, 1 to change, 1 to remove.",
		}},
		{"domain", func(d *config.Document) { d.Domain = "" },
			[]string{`- domain: "acme.example.com"`, "0 to add, 0 to change, 1 to remove."}},
		{"location forward flag", func(d *config.Document) {
			l := d.Locations["madrid"]
			l.Forward = true
			d.Locations["madrid"] = l
		}, []string{"~ locations.madrid.forward: false -> true", "0 to add, 1 to change, 0 to remove."}},
		{"ivr options", func(d *config.Document) {
			o := d.IVRs["front"].Options
			o["1"] = "support"
			o["3"] = "sales"
			delete(o, "2")
		}, []string{
			`~ ivrs.front.options["1"]: "sales" -> "support"`,
			`- ivrs.front.options["2"]: "support"`,
			`+ ivrs.front.options["3"]: "sales"`,
			"1 to add, 1 to change, 1 to remove.",
		}},
		{"ivr collect", func(d *config.Document) {
			i := d.IVRs["front"]
			i.Collect.Timeout = config.Duration(10 * time.Second)
			i.Collect.MinDigits = 3
			d.IVRs["front"] = i
		}, []string{
			"+ ivrs.front.collect.min_digits: 3",
			`~ ivrs.front.collect.timeout: "5s" -> "10s"`,
			"1 to add, 1 to change, 0 to remove.",
		}},
		{"ivr collect and options removed", func(d *config.Document) {
			i := d.IVRs["front"]
			i.Collect, i.Options = nil, nil
			d.IVRs["front"] = i
		}, []string{"- ivrs.front.collect", "- ivrs.front.options", "0 to add, 0 to change, 2 to remove."}},
		{"names that are not plain words are quoted", func(d *config.Document) {
			d.Users["j.doe"] = config.User{Extension: "105"}
			d.Parks = map[string]config.Park{"1st": {Orbits: "701-709"}}
		}, []string{`+ parks["1st"]`, `+ users["j.doe"]`, "2 to add, 0 to change, 0 to remove."}},
		{"a section appears", func(d *config.Document) {
			d.Faxes = map[string]config.Fax{"fax1": {Destination: "sip:fax@127.0.0.1:5090"}, "fax2": {Destination: "sip:fax2@127.0.0.1:5090"}}
		}, []string{"+ faxes.fax1", "+ faxes.fax2", "2 to add, 0 to change, 0 to remove."}},
		{"a section goes", func(d *config.Document) { d.Locations = nil },
			[]string{"- locations.madrid", "0 to add, 0 to change, 1 to remove."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := parsePlanDoc(t, planBase), parsePlanDoc(t, planBase)
			tt.edit(new)
			changes := Diff(old, new)
			if got := planLines(changes); !slices.Equal(got, tt.want) {
				t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			assertNoSecrets(t, changes)
			// Diff reads its documents, never changes them.
			if again := Diff(old, new); !reflect.DeepEqual(again, changes) {
				t.Errorf("a second Diff differs: %v", again)
			}
		})
	}
}

// assertNoSecrets fails if any password of the documents shows in changes.
func assertNoSecrets(t *testing.T, changes []Change) {
	t.Helper()
	all := fmt.Sprintf("%#v", changes)
	var buf bytes.Buffer
	FormatPlan(&buf, changes)
	for _, pw := range []string{"s3cret", "trunkpw", "pw3", "pw2", "pw4", "n3w-s3cret", "other", config.Redacted} {
		if strings.Contains(all, `"`+pw+`"`) || strings.Contains(buf.String(), pw) {
			t.Errorf("password %q shows in the plan:\n%s\n%s", pw, all, buf.String())
		}
	}
}

func TestDiffChangeValues(t *testing.T) {
	old, new := parsePlanDoc(t, planBase), parsePlanDoc(t, planBase)
	new.Locations["madrid"] = config.Location{Forward: true, ForwardDestination: "+34600000009"}
	u := new.Users["alice"]
	u.Password = "changed"
	new.Users["alice"] = u
	new.Users["dave"] = config.User{Extension: "104", Password: "pw4"}
	delete(new.Extensions, "sales")
	got := Diff(old, new)
	want := []Change{
		{Op: Removed, Path: "extensions.sales", Old: map[string]any{"type": "individual", "destination": "user:bob"}},
		{Op: Changed, Path: "locations.madrid.forward", Old: false, New: true},
		{Op: Changed, Path: "users.alice.password", Old: Secret, New: Secret},
		{Op: Added, Path: "users.dave", New: map[string]any{"extension": "104", "password": Secret}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff:\n%#v\nwant:\n%#v", got, want)
	}
}

func TestDiffNewAccount(t *testing.T) {
	doc := parsePlanDoc(t, planBase)
	changes := Diff(nil, doc)
	want := []string{
		`+ account: "acme"`,
		`+ defaults.caller_id: "original"`,
		`+ defaults.trunk: "carrier"`,
		`+ domain: "acme.example.com"`,
		"+ extensions.sales",
		"+ extensions.support",
		"+ ivrs.front",
		"+ locations.madrid",
		`+ numbers["+34910000000"]`,
		`+ numbers["+34910000001"]`,
		"+ trunks.carrier",
		"+ users.alice",
		"+ users.bob",
		"+ users.carol",
		"14 to add, 0 to change, 0 to remove.",
	}
	if got := planLines(changes); !slices.Equal(got, want) {
		t.Fatalf("plan of a new account:\n%s", strings.Join(got, "\n"))
	}
	for _, c := range changes {
		if c.Op != Added || c.Old != nil || c.New == nil {
			t.Errorf("new account: %+v", c)
		}
	}
	assertNoSecrets(t, changes)
	if got := Diff(nil, &config.Document{Account: "empty"}); len(got) != 1 || got[0].Path != "account" {
		t.Errorf("an empty new account: %v", got)
	}
	if got := Diff(doc, doc); len(got) != 0 {
		t.Errorf("a document against itself: %v", got)
	}
}

func TestDiffDeterministic(t *testing.T) {
	old, new := parsePlanDoc(t, planBase), parsePlanDoc(t, planBase)
	for i := range 40 {
		new.Numbers[fmt.Sprintf("+3491%07d", 100+i)] = config.Number{Extension: "sales"}
		new.Users[fmt.Sprintf("u%02d", i)] = config.User{Extension: fmt.Sprint(200 + i)}
	}
	delete(new.Users, "carol")
	new.IVRs["front"].Options["9"] = "sales"
	new.Numbers["+34910000000"].Rules[0].Weight = 99
	first := Diff(old, new)
	var firstOut bytes.Buffer
	FormatPlan(&firstOut, first)
	for range 50 {
		got := Diff(old, new)
		var out bytes.Buffer
		FormatPlan(&out, got)
		if !reflect.DeepEqual(got, first) || out.String() != firstOut.String() {
			t.Fatalf("Diff is not deterministic:\n%s\n---\n%s", firstOut.String(), out.String())
		}
	}
	// Path order: top-level keys, then names, sorted.
	paths := make([]string, len(first))
	for i, c := range first {
		paths[i] = c.Path
	}
	if !slices.IsSorted(paths) {
		t.Errorf("changes are not in path order: %v", paths)
	}
}

func TestFormatPlan(t *testing.T) {
	var buf bytes.Buffer
	FormatPlan(&buf, []Change{
		{Op: Added, Path: `numbers["+34910000000"].rules[2]`, New: map[string]any{"prefix": "*"}},
		{Op: Changed, Path: "extensions.support.members", Old: []any{"user:alice"}, New: []any{"user:alice", "user:bob"}},
		{Op: Changed, Path: "trunks.carrier.password", Old: "a", New: "b"}, // even if a caller passes values
		{Op: Removed, Path: "users.carol", Old: map[string]any{"extension": "103"}},
	})
	want := `+ numbers["+34910000000"].rules[2]
~ extensions.support.members: ["user:alice"] -> ["user:alice","user:bob"]
~ trunks.carrier.password: (secret changed)
- users.carol
1 to add, 2 to change, 1 to remove.
`
	if buf.String() != want {
		t.Errorf("FormatPlan:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	FormatPlan(&buf, nil)
	if buf.String() != "No changes.\n" {
		t.Errorf("no changes: %q", buf.String())
	}
}

func TestIsSecret(t *testing.T) {
	for path, want := range map[string]bool{
		"users.alice.password":        true,
		"trunks.carrier.password":     true,
		`users["j.doe"].password`:     true,
		`users["1st"].password`:       true,
		"users.password":              false, // a user named password
		"users.password.extension":    false,
		"users.a.b.password":          false, // not how a name with a dot is written
		`users["alice"].password`:     false, // not how a plain name is written
		"extensions.support.password": false,
		"users.alice.passwords":       false,
		"users..password":             false,
	} {
		if got := isSecret(path); got != want {
			t.Errorf("isSecret(%q) = %v", path, got)
		}
	}
}

func TestPlan(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	doc := parsePlanDoc(t, planBase)
	changes, err := Plan(ctx, st, doc)
	if err != nil || len(changes) != 14 {
		t.Fatalf("plan of a new account: %d changes, %v", len(changes), err)
	}
	if _, err := Apply(ctx, st, parsePlanDoc(t, planBase)); err != nil {
		t.Fatal(err)
	}
	changes, err = Plan(ctx, st, doc.Redact())
	if err != nil || len(changes) != 0 {
		t.Fatalf("plan after apply: %v, %v", changes, err)
	}
	if _, version, _ := st.LoadConfig(ctx, "acme"); version != 1 {
		t.Errorf("plan wrote: version %d", version)
	}
}
