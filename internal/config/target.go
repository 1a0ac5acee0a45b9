package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// TargetKind says what a target string refers to.
type TargetKind int

// Target kinds, SPEC §1.
const (
	TargetName      TargetKind = iota // NAME: an extension, user, ivr, park lot or fax
	TargetUser                        // user:NAME
	TargetE164                        // +E164, dialled out through the default trunk
	TargetSIP                         // sip:user@host[:port]
	TargetVoicemail                   // voicemail:USER
	TargetPrompt                      // prompt:NAME
	TargetVariable                    // ${var}
)

// Target is a parsed target string.
type Target struct {
	Kind  TargetKind
	Value string // the name, number, URI or variable name
}

// ParseTarget parses the syntax of a target string; it does not check that
// names exist.
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, fmt.Errorf("empty target")
	}
	t := TargetOf(s)
	switch t.Kind {
	case TargetSIP:
		if err := checkSIPURI(s); err != nil {
			return Target{}, err
		}
	case TargetVariable:
		if !strings.HasSuffix(s, "}") || !validName(t.Value) {
			return Target{}, fmt.Errorf("%q is not a variable reference such as ${dest}", s)
		}
	case TargetE164:
		if err := CheckE164(s); err != nil {
			return Target{}, err
		}
	default:
		return nameTarget(t.Kind, t.Value, s)
	}
	return t, nil
}

// TargetOf classifies a target that has been checked already (a target of
// a validated document): what ParseTarget returns, without the checks. The
// call path reads the same configured targets on every call, and checking
// an E.164 number with libphonenumber runs regular expressions.
func TargetOf(s string) Target {
	switch {
	case strings.HasPrefix(s, "user:"):
		return Target{TargetUser, s[len("user:"):]}
	case strings.HasPrefix(s, "voicemail:"):
		return Target{TargetVoicemail, s[len("voicemail:"):]}
	case strings.HasPrefix(s, "prompt:"):
		return Target{TargetPrompt, s[len("prompt:"):]}
	case strings.HasPrefix(s, "sip:"):
		return Target{TargetSIP, s}
	case strings.HasPrefix(s, "${"):
		return Target{TargetVariable, strings.TrimSuffix(s[2:], "}")}
	case strings.HasPrefix(s, "+"):
		return Target{TargetE164, s}
	}
	return Target{TargetName, s}
}

func nameTarget(k TargetKind, name, whole string) (Target, error) {
	if !validName(name) {
		return Target{}, fmt.Errorf("%q is not a valid target (names use letters, digits, '-', '_' and '.')", whole)
	}
	return Target{k, name}, nil
}

// validName reports whether s is usable as an object or variable name.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// checkSIPURI checks sip:user@host[:port] (the user part is optional).
func checkSIPURI(s string) error {
	rest := strings.TrimPrefix(s, "sip:")
	if i := strings.IndexByte(rest, ';'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if i == 0 {
			return fmt.Errorf("%q has an empty user part", s)
		}
		rest = rest[i+1:]
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return fmt.Errorf("%q has an unterminated IPv6 address", s)
		}
		host, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q has an invalid IPv6 address", s)
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return fmt.Errorf("%q has an invalid host", s)
		}
	}
	if port != "" {
		n := 0
		for _, c := range port {
			if c < '0' || c > '9' {
				return fmt.Errorf("%q has an invalid port", s)
			}
			n = n*10 + int(c-'0')
			if n > 65535 {
				return fmt.Errorf("%q has an invalid port", s)
			}
		}
		if n == 0 {
			return fmt.Errorf("%q has an invalid port", s)
		}
	}
	return nil
}

// CheckE164 reports whether s is a valid number in E.164 form (+ and digits,
// a known country code, a possible length for that country).
func CheckE164(s string) error {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return fmt.Errorf("%q is not an E.164 number (+ country code and number, up to 15 digits)", s)
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%q is not an E.164 number (+ country code and number, up to 15 digits)", s)
		}
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil {
		return fmt.Errorf("%q is not an E.164 number: %v", s, err)
	}
	if phonenumbers.GetRegionCodeForCountryCode(int(n.GetCountryCode())) == "ZZ" {
		return fmt.Errorf("%q is not an E.164 number: unknown country code", s)
	}
	if !phonenumbers.IsPossibleNumber(n) {
		return fmt.Errorf("%q is not an E.164 number: impossible length for country code +%d", s, n.GetCountryCode())
	}
	return nil
}

// CheckPrefix checks a caller-prefix pattern: "anonymous", or [+]digits with an
// optional single trailing '*'; a lone '*' matches every caller.
func CheckPrefix(p string) error {
	if p == "anonymous" || p == "*" {
		return nil
	}
	body := strings.TrimPrefix(p, "+")
	body = strings.TrimSuffix(body, "*")
	if body == "" {
		return fmt.Errorf("%q is not a prefix (use digits with an optional '+' in front and '*' at the end, or \"anonymous\")", p)
	}
	for _, c := range body {
		if c < '0' || c > '9' {
			return fmt.Errorf("%q is not a prefix (use digits with an optional '+' in front and '*' at the end, or \"anonymous\")", p)
		}
	}
	return nil
}

// CheckVariableName reports whether name can be a call variable (${name}):
// 1-64 letters, digits, '-', '_' or '.'.
func CheckVariableName(name string) error {
	if !validName(name) {
		return fmt.Errorf("%q is not a variable name (1-64 letters, digits, '-', '_' or '.')", name)
	}
	return nil
}
