package config_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/config"
)

const sample = "../../examples/acme.yaml"

func TestSampleIsValid(t *testing.T) {
	doc, err := config.LoadFile(sample)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", sample, err)
	}
	if doc.Account != "acme" || len(doc.Numbers) == 0 {
		t.Fatalf("unexpected document: account %q, %d numbers", doc.Account, len(doc.Numbers))
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	doc, err := config.LoadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	out, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Parse(out, "export")
	if err != nil {
		t.Fatalf("re-parse of export: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(doc, again) {
		t.Fatalf("export does not round-trip:\n%s", out)
	}
	out2, _ := again.Marshal()
	if !bytes.Equal(out, out2) {
		t.Fatalf("export is not stable")
	}
}

// minimal is a valid document that each validation case breaks in one place.
const minimal = `
account: acme
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.1:5070", inbound_from: ["127.0.0.1/32"] }
users:
  alice: { extension: "101", password: pw, sms: true }
  bob: { extension: "102", password: pw }
prompts:
  hold: { say: "please hold" }
extensions:
  support: { type: group, members: ["user:alice", "user:bob"], code: "21" }
numbers:
  "+34910000000":
    extension: support
    rules:
      - { prefix: "888*", weight: 10, action: reject-busy }
`

func TestMinimalIsValid(t *testing.T) {
	doc, err := config.Parse([]byte(minimal), "minimal")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(""); err != nil {
		t.Fatal(err)
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string // old, new applied to minimal
		path    string
		msg     string
	}{
		{"unknown reference", [2]string{"extension: support\n", "extension: nobody\n"}, `numbers["+34910000000"].extension`, "unknown reference"},
		{"unknown user member", [2]string{`"user:bob"]`, `"user:zed"]`}, "extensions.support.members[1]", "unknown user"},
		{"duplicate name across kinds", [2]string{"extensions:\n", "ivrs:\n  alice: { options: { \"1\": support } }\nextensions:\n"}, "ivrs.alice", "duplicate name"},
		{"duplicate code", [2]string{`code: "21"`, `code: "10"`}, "", ""},
		{"code collides with user extension", [2]string{`extension: "102"`, `extension: "21"`}, "extensions.support.code", "duplicate code"},
		{"code not two digits", [2]string{`code: "21"`, `code: "2a"`}, "extensions.support.code", "two-digit"},
		{"code three digits", [2]string{`code: "21"`, `code: "210"`}, "extensions.support.code", "two-digit"},
		{"bad prefix", [2]string{`prefix: "888*"`, `prefix: "88*8"`}, `numbers["+34910000000"].rules[0].prefix`, "not a prefix"},
		{"double star", [2]string{`prefix: "888*"`, `prefix: "888**"`}, `numbers["+34910000000"].rules[0].prefix`, "not a prefix"},
		{"route without extension", [2]string{"action: reject-busy", "action: route"}, `numbers["+34910000000"].rules[0].extension`, "required"},
		{"cnam without prefix", [2]string{"action: reject-busy", "action: cnam-prefix"}, `numbers["+34910000000"].rules[0].cnam_prefix`, "required"},
		{"unknown action", [2]string{"action: reject-busy", "action: drop"}, `numbers["+34910000000"].rules[0].action`, "not one of"},
		{"bad reputation", [2]string{"action: reject-busy", "action: reject-busy, reputation: extreme"}, `numbers["+34910000000"].rules[0].reputation`, "not one of"},
		{"max_parallel too high", [2]string{"type: group,", "type: group, distribution: multi-ring, max_parallel: 33,"}, "extensions.support.max_parallel", "outside 1..32"},
		{"max_parallel zero explicit", [2]string{"type: group,", "type: group, distribution: multi-ring, max_parallel: -1,"}, "extensions.support.max_parallel", "outside 1..32"},
		{"bad distribution", [2]string{"type: group,", "type: group, distribution: random,"}, "extensions.support.distribution", "not one of"},
		{"unreadable prompt file", [2]string{`say: "please hold"`, `file: no/such.wav`}, "prompts.hold.file", "unreadable prompt file"},
		{"invalid E.164 number", [2]string{`"+34910000000":`, `"+3491":`}, `numbers["+3491"]`, "E.164"},
		{"number without plus", [2]string{`"+34910000000":`, `"34910000000":`}, `numbers["34910000000"]`, "E.164"},
		{"sms user without sms", [2]string{"extension: support\n", "extension: support\n    sms_extension: bob\n"}, `numbers["+34910000000"].sms_extension`, "sms: true"},
		{"sms group with non-sms member", [2]string{"extension: support\n", "extension: support\n    sms_extension: support\n"}, `numbers["+34910000000"].sms_extension`, "not a user with sms"},
		{"bad target syntax", [2]string{`"user:bob"]`, `"sip:"]`}, "extensions.support.members[1]", "no host"},
		{"bad inbound_from", [2]string{`"127.0.0.1/32"`, `"localhost"`}, "trunks.carrier.inbound_from[0]", "not an IP"},
		{"unknown default trunk", [2]string{"trunk: carrier }", "trunk: other }"}, "defaults.trunk", "unknown trunk"},
		{"unknown location", [2]string{"extension: support\n", "extension: support\n    location: mars\n"}, `numbers["+34910000000"].location`, "unknown location"},
		{"missing account", [2]string{"account: acme", "domain: x"}, "account", "required"},
		{"negative outbound cap", [2]string{"trunk: carrier }", "trunk: carrier, max_outbound_calls: -1 }"}, "defaults.max_outbound_calls", "must be 0 (no cap) or more"},
		{"negative hourly cap", [2]string{"trunk: carrier }", "trunk: carrier, max_outbound_per_hour: -5 }"}, "defaults.max_outbound_per_hour", "must be 0 (no cap) or more, not -5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(minimal, tt.replace[0], tt.replace[1], 1)
			if src == minimal {
				t.Fatalf("replacement %q not found", tt.replace[0])
			}
			doc, err := config.Parse([]byte(src), "t.yaml")
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = doc.Validate(t.TempDir())
			if tt.path == "" { // codes "10" and "10" cannot collide with one extension; only check it stays valid
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			fields := config.Fields(err)
			for _, f := range fields {
				if f.Path == tt.path && strings.Contains(f.Msg, tt.msg) {
					return
				}
			}
			t.Fatalf("want error at %s containing %q, got:\n%v", tt.path, tt.msg, err)
		})
	}
}

func TestTooManyRules(t *testing.T) {
	var b strings.Builder
	b.WriteString("account: a\nextensions:\n  x: { destination: \"sip:x@127.0.0.1\" }\nnumbers:\n  \"+34910000000\":\n    extension: x\n    rules:\n")
	for i := 0; i < 301; i++ {
		b.WriteString("      - { prefix: \"1*\", weight: 1, action: reject-busy }\n")
	}
	doc, err := config.Parse([]byte(b.String()), "t")
	if err != nil {
		t.Fatal(err)
	}
	err = doc.Validate("")
	if err == nil || !strings.Contains(err.Error(), `numbers["+34910000000"].rules: 301 rules`) {
		t.Fatalf("want too-many-rules error, got %v", err)
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	src := strings.Replace(minimal, `code: "21"`, `code: "x"`, 1)
	src = strings.Replace(src, `prefix: "888*"`, `prefix: "8a"`, 1)
	src = strings.Replace(src, `"user:bob"]`, `"user:nobody"]`, 1)
	doc, err := config.Parse([]byte(src), "t")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(config.Fields(doc.Validate(""))); n != 3 {
		t.Fatalf("want 3 errors, got %d: %v", n, doc.Validate(""))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown field typo", strings.Replace(minimal, "type: group,", "type: group, distrbution: rotating,", 1), `unknown field "distrbution" in Extension`},
		{"duplicate key", minimal + "  \"+34910000000\":\n    extension: support\n", "already defined"},
		{"wrong type", strings.Replace(minimal, "weight: 10", "weight: ten", 1), "cannot unmarshal"},
		{"bad duration", strings.Replace(minimal, "type: group,", "type: group, timeout: soon,", 1), `invalid duration "soon"`},
		{"empty", "  \n", "empty"},
		{"two documents", minimal + "---\naccount: b\n", "only one document"},
		{"json", `{"account": "acme", "numbers": {"+34910000000": {"extension": 5}}}`, ""},
		{"json unknown field", `{"account": "acme", "bogus": 1}`, `unknown field "bogus"`},
		{"invalid utf8", "account: \xff\xfe\n", "not valid UTF-8 (at byte 9)"},
		{"not a mapping", "- 1\n- 2\n", "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.src), "t.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "t.yaml: ") {
				t.Fatalf("want error containing %q prefixed by the file name, got %v", tt.want, err)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte("#"), config.MaxDocumentSize+1)
	if _, err := config.Parse(big, "big"); err == nil || !strings.Contains(err.Error(), "larger than 10 MiB") {
		t.Fatalf("want size error, got %v", err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.LoadFile(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("LoadFile: want size error, got %v", err)
	}
}

func TestRedactAndKeepSecrets(t *testing.T) {
	doc, err := config.LoadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	red := doc.Redact()
	if red.Users["alice"].Password != config.Redacted || red.Trunks["carrier"].Password != config.Redacted {
		t.Fatal("passwords not redacted")
	}
	if doc.Users["alice"].Password != "s3cret" {
		t.Fatal("Redact modified the original")
	}
	red.KeepSecrets(doc)
	if !reflect.DeepEqual(red, doc) {
		t.Fatal("KeepSecrets did not restore the secrets")
	}
}

func TestParseTarget(t *testing.T) {
	good := map[string]config.TargetKind{
		"support": config.TargetName, "user:alice": config.TargetUser, "+34910000000": config.TargetE164,
		"sip:fax@127.0.0.1:5090": config.TargetSIP, "sip:[::1]:5060": config.TargetSIP, "voicemail:alice": config.TargetVoicemail,
		"prompt:closed": config.TargetPrompt, "${dest}": config.TargetVariable,
	}
	for s, k := range good {
		got, err := config.ParseTarget(s)
		if err != nil || got.Kind != k {
			t.Errorf("ParseTarget(%q) = %v, %v; want kind %v", s, got, err, k)
		}
		if of := config.TargetOf(s); of != got {
			t.Errorf("TargetOf(%q) = %v, ParseTarget %v", s, of, got)
		}
	}
	for _, s := range []string{"", "user:", "${}", "${a", "+0123", "+34abc", "sip:a@", "sip:a@h:99999", "a b", "sip:[::1"} {
		if _, err := config.ParseTarget(s); err == nil {
			t.Errorf("ParseTarget(%q): want error", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{minimal, "account: a\n", "{}", `{"account":"x","numbers":{"+1":{}}}`, "a: &a [*a]", "numbers: {x: {rules: [{prefix: 1}]}}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := config.Parse(data, "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error does not name the document: %v", err)
			}
			return
		}
		verr := doc.Validate(t.TempDir())
		for _, fe := range config.Fields(verr) {
			if fe.Path == "" || fe.Msg == "" {
				t.Fatalf("validation error without path or message: %#v", fe)
			}
		}
		if _, err := doc.Marshal(); err != nil {
			t.Fatalf("marshal of parsed document: %v", err)
		}
	})
}

func TestAliases(t *testing.T) {
	shared := minimal + "  \"+34910000001\":\n    extension: support\n    rules: &r\n      - { prefix: \"1*\", weight: 1, action: reject-busy }\n  \"+34910000002\": { extension: support, rules: *r }\n"
	doc, err := config.Parse([]byte(shared), "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Numbers["+34910000002"].Rules; len(got) != 1 || got[0].Prefix != "1*" {
		t.Fatalf("alias not expanded: %+v", got)
	}
	laughs := "a: &a [1,2,3,4,5,6,7,8,9]\n"
	for i, prev := 'b', 'a'; i <= 'j'; i, prev = i+1, i {
		laughs += fmt.Sprintf("%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", i, i, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"recursive", "account: &a [*a]\n", "recursive alias"},
		{"billion laughs", laughs, "aliases expand the document beyond"},
		{"unknown field behind an alias", "x: &e { destination: \"sip:a@h\", bogus: 1 }\naccount: a\nextensions: { e: *e }\n", `unknown field "x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.src), "t")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want %q, got %v", tt.want, err)
			}
		})
	}
}

func TestDuplicateNumberInLargeMap(t *testing.T) {
	var b strings.Builder
	b.WriteString("account: a\nnumbers:\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "  \"+349100%05d\": { extension: x }\n", i)
	}
	b.WriteString("  \"+34910000007\": { extension: y }\n")
	_, err := config.Parse([]byte(b.String()), "t")
	if err == nil || !strings.Contains(err.Error(), `line 20003: mapping key "+34910000007" already defined`) {
		t.Fatalf("want duplicate key error, got %v", err)
	}
}

// An IVR, park lot, voicemail box or prompt takes a call itself: as an
// extension's destination it is fine, as one member of a group it is an
// error with the member's path.
func TestUnringableMembers(t *testing.T) {
	const doc = `
account: acme
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.1:5070", inbound_from: ["127.0.0.1/32"] }
users:
  bob: { extension: "102", password: pw }
prompts:
  hold: { say: "please hold" }
ivrs:
  front: { options: { "1": "user:bob" } }
parks:
  lot: { orbits: "701-702", return_to: "user:bob" }
extensions:
  desk:  { destination: front }
  bay:   { destination: lot }
  box:   { destination: "voicemail:bob" }
  group: { members: ["user:bob", %s] }
numbers:
  "+34910000000": { extension: desk }
`
	tests := []struct{ member, msg string }{
		{"front", `"front" is an IVR`},
		{"lot", `"lot" is a park lot`},
		{`"voicemail:bob"`, `"voicemail:bob" is a voicemail box`},
		{`"prompt:hold"`, `"prompt:hold" is a prompt`},
		{"desk", `"desk" is an extension whose destination "front" is an IVR`},
		{"box", `"box" is an extension whose destination "voicemail:bob" is a voicemail box`},
	}
	for _, tt := range tests {
		t.Run(tt.member, func(t *testing.T) {
			d, err := config.Parse(fmt.Appendf(nil, doc, tt.member), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			fields := config.Fields(d.Validate(t.TempDir()))
			if len(fields) != 1 || fields[0].Path != "extensions.group.members[1]" || !strings.Contains(fields[0].Msg, tt.msg) {
				t.Fatalf("want one error at extensions.group.members[1] containing %q, got %v", tt.msg, fields)
			}
		})
	}
	// The same targets as destinations of individual extensions are valid.
	d, err := config.Parse(fmt.Appendf(nil, doc, `"user:bob"`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(t.TempDir()); err != nil {
		t.Fatalf("IVR, park lot and voicemail as destinations: %v", err)
	}
}
