package routing

import (
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/config"
)

// SPEC §3 "Extensions": the attempt plan of each distribution, and members
// skipped because their user's blocklist matches the caller.
func TestAttempts(t *testing.T) {
	s := loadSnapshot(t)
	const plain = "+34911222333"
	w := func(waves ...[]string) [][]string { return waves }
	m := func(members ...string) []string { return members }
	cases := []struct {
		name    string
		target  string
		caller  string
		counter uint64
		want    [][]string
		note    string // a part of one of the plan's notes
	}{
		{"sequential", "support", plain, 7, w(m("user:alice"), m("user:bob"), m("+34600000003")), "support is a sequential group"},
		{"sequential by default", "plain", plain, 0, w(m("user:dave"), m("user:bob")), "sequential"},
		{"blocklist + pattern", "support", "+19005551234", 0, w(m("user:bob"), m("+34600000003")),
			"member user:alice skipped: alice's blocklist +1900* matches +19005551234"},
		{"blocklist anonymous", "support", "", 0, w(m("user:bob"), m("+34600000003")), "alice's blocklist anonymous matches anonymous"},
		// bob blocks 600111222: a national pattern, in the account's country (+34).
		{"blocklist national", "support", "+34600111222", 0, w(m("user:alice"), m("+34600000003")), "bob's blocklist 600111222 matches +34600111222"},
		{"blocklist national, other country", "support", "+44600111222", 0, w(m("user:alice"), m("user:bob"), m("+34600000003")), "user:alice -> user:bob -> +34600000003"},

		{"rotating 0", "rota", plain, 0, w(m("user:alice"), m("user:bob"), m("carol")), "counter 0 starts at member 0 (user:alice)"},
		{"rotating 1", "rota", plain, 1, w(m("user:bob"), m("carol"), m("user:alice")), "counter 1 starts at member 1 (user:bob)"},
		{"rotating 2", "rota", plain, 2, w(m("carol"), m("user:alice"), m("user:bob")), "starts at member 2"},
		{"rotating wraps", "rota", plain, 3, w(m("user:alice"), m("user:bob"), m("carol")), "counter 3 starts at member 0"},
		{"rotating 5", "rota", plain, 5, w(m("carol"), m("user:alice"), m("user:bob")), "starts at member 2"},
		{"rotating max counter", "rota", plain, ^uint64(0), w(m("user:alice"), m("user:bob"), m("carol")), "starts at member 0"},
		// The rotation is applied first, so it does not depend on the caller.
		{"rotating skips blocked", "rota", "+19005551234", 1, w(m("user:bob"), m("carol")), "member user:alice skipped"},
		{"bare user member blocked", "rota", "+442071234567", 0, w(m("user:alice"), m("user:bob")), "member carol skipped: carol's blocklist +44* matches +442071234567"},

		{"multi-ring waves", "everyone", plain, 0, w(m("user:alice", "user:bob"), m("user:carol", "user:dave"), m("+34600000003")),
			"everyone is a multi-ring group, 2 at a time"},
		{"multi-ring after skips", "everyone", "+19005551234", 0, w(m("user:bob", "user:carol"), m("user:dave", "+34600000003")), "member user:alice skipped"},
		{"multi-ring default 3", "trio", plain, 0, w(m("user:alice", "user:bob", "user:carol"), m("user:dave")), "3 at a time"},
		{"multi-ring ignores the counter", "trio", plain, 9, w(m("user:alice", "user:bob", "user:carol"), m("user:dave")), ""},

		{"individual", "front", plain, 0, w(m("user:alice")), "front is an individual extension -> user:alice"},
		// An individual destination is not filtered: the executor rings it.
		{"individual blocked user", "front", "+19005551234", 0, w(m("user:alice")), ""},
		{"user target", "user:bob", plain, 0, w(m("user:bob")), ""},
		{"e164 target", "+34600000009", plain, 0, w(m("+34600000009")), ""},
		{"sip target", "sip:x@127.0.0.1", plain, 0, w(m("sip:x@127.0.0.1")), ""},
		{"park target", "lot1", plain, 0, w(m("lot1")), ""},
		{"voicemail target", "voicemail:alice", plain, 0, w(m("voicemail:alice")), ""},
		{"variable target", "${dest}", plain, 0, w(m("${dest}")), ""},
		{"empty target", "", plain, 0, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := s.Attempts(c.target, c.caller, c.counter); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Attempts(%q, %q, %d) = %q, want %q", c.target, c.caller, c.counter, got, c.want)
			}
			p := s.Plan(c.target, c.caller, c.counter)
			if c.note != "" && !strings.Contains(strings.Join(p.Notes, "\n"), c.note) {
				t.Errorf("notes lack %q:\n%s", c.note, strings.Join(p.Notes, "\n"))
			}
		})
	}
}

func TestAttemptsEdges(t *testing.T) {
	s := loadSnapshot(t)
	// Every member blocked: no waves, and the plan says so.
	doc := *s.Doc()
	doc.Users = map[string]config.User{"a": {Blocklist: []string{"*"}}, "b": {Blocklist: []string{"+44*"}}}
	doc.Extensions = map[string]config.Extension{"g": {Type: config.TypeGroup, Members: []string{"user:a", "b"}}}
	s2, err := Compile(&doc)
	if err != nil {
		t.Fatal(err)
	}
	p := s2.Plan("g", "+442071234567", 0)
	if p.Waves != nil || !strings.Contains(strings.Join(p.Notes, "\n"), "no member left to try") {
		t.Errorf("plan %q", p)
	}
	if got := s2.Attempts("g", "+34600000000", 0); !reflect.DeepEqual(got, [][]string{{"b"}}) {
		t.Errorf("waves %q", got)
	}
	// Waves are capped slices: appending to one must not change the next.
	waves := s.Attempts("everyone", "+34911222333", 0)
	_ = append(waves[0], "intruder")
	if waves[1][0] != "user:carol" {
		t.Errorf("appending to wave 0 changed wave 1: %q", waves)
	}
}

func TestIsRotating(t *testing.T) {
	s := loadSnapshot(t)
	for ext, want := range map[string]bool{"rota": true, "support": false, "everyone": false, "front": false, "nope": false, "user:alice": false} {
		if got := s.IsRotating(ext); got != want {
			t.Errorf("IsRotating(%q) = %v", ext, got)
		}
	}
}

func TestBlocked(t *testing.T) {
	s := loadSnapshot(t)
	cases := []struct {
		user, caller, pattern string
	}{
		{"alice", "+19005551234", "+1900*"},
		{"alice", "0019005551234", "+1900*"},
		{"alice", "Anonymous", "anonymous"},
		{"alice", "+18005551234", ""},
		{"bob", "+34600111222", "600111222"},
		{"bob", "34600111222", "600111222"},
		{"bob", "+346001112220", ""},
		{"dave", "+19005551234", ""},
		{"nobody", "+19005551234", ""},
	}
	for _, c := range cases {
		p, blocked := s.Blocked(c.user, c.caller)
		if p != c.pattern || blocked != (c.pattern != "") {
			t.Errorf("Blocked(%q, %q) = %q, %v; want %q", c.user, c.caller, p, blocked, c.pattern)
		}
	}
}
