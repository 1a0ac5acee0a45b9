package config

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// FieldError is one validation problem at a path such as
// numbers["+34910000000"].rules[3].prefix.
type FieldError struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// ValidationError lists every problem found in a document.
type ValidationError []FieldError

func (v ValidationError) Error() string {
	var b strings.Builder
	for i, e := range v {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Fields returns the field errors inside err, if it is a ValidationError.
func Fields(err error) []FieldError {
	var v ValidationError
	if errors.As(err, &v) {
		return v
	}
	return nil
}

type validator struct {
	doc     *Document
	baseDir string
	errs    ValidationError
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// key formats a map key for a path: .name when it is a plain word, ["..."] otherwise.
func key(section, k string) string {
	if validName(k) && !strings.ContainsAny(k, ".") && !(k[0] >= '0' && k[0] <= '9') {
		return section + "." + k
	}
	return section + "[" + strconv.Quote(k) + "]"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Validate checks the whole document and returns a ValidationError listing
// every problem, or nil. baseDir resolves relative prompt files.
func (d *Document) Validate(baseDir string) error {
	v := &validator{doc: d, baseDir: baseDir}
	v.account()
	v.names()
	v.trunks()
	v.users()
	v.prompts()
	v.locations()
	v.extensions()
	v.ivrs()
	v.parks()
	v.faxes()
	v.numbers()
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func (v *validator) account() {
	d := v.doc
	if d.Account == "" {
		v.add("account", "required")
	} else if msg := nameProblem(d.Account); msg != "" {
		v.add("account", "%q is not a safe account name: %s", d.Account, msg)
	}
	if d.Domain != "" {
		if msg := domainProblem(d.Domain); msg != "" {
			v.add("domain", "%q is not a SIP domain: %s", d.Domain, msg)
		}
	}
	switch d.Defaults.CallerID {
	case "", "default", "original", "service", "called", "hidden":
	default:
		v.add("defaults.caller_id", "%q is not one of default, original, service, called, hidden", d.Defaults.CallerID)
	}
	if s := d.Defaults.ServiceNumber; s != "" {
		if err := CheckE164(s); err != nil {
			v.add("defaults.service_number", "%v", err)
		}
	} else if d.Defaults.CallerID == "service" {
		v.add("defaults.service_number", "required when caller_id is service")
	}
	if t := d.Defaults.Trunk; t != "" {
		if _, ok := d.Trunks[t]; !ok {
			v.add("defaults.trunk", "unknown trunk %q", t)
		}
	}
	for i, p := range d.Defaults.AllowedDestinations {
		if err := CheckPrefix(p); err != nil || p == "anonymous" {
			v.add(fmt.Sprintf("defaults.allowed_destinations[%d]", i), "%q is not a number pattern such as \"+34*\"", p)
		}
	}
	if w := d.Defaults.Webhook; w != "" && !strings.HasPrefix(w, "http://") && !strings.HasPrefix(w, "https://") {
		v.add("defaults.webhook", "%q is not an http(s) URL", w)
	}
	if n := d.Defaults.MaxOutboundCalls; n != nil && *n < 0 {
		v.add("defaults.max_outbound_calls", "must be 0 (no cap) or more, not %d", *n)
	}
	if n := d.Defaults.MaxOutboundPerHour; n != nil && *n < 0 {
		v.add("defaults.max_outbound_per_hour", "must be 0 (no cap) or more, not %d", *n)
	}
}

// names checks that object names are valid and unique across kinds, since a
// bare NAME target may refer to any of them.
func (v *validator) names() {
	owner := map[string]string{}
	check := func(section string, names []string) {
		for _, n := range names {
			p := key(section, n)
			if msg := nameProblem(n); msg != "" {
				v.add(p, "%q is not a safe name: %s", n, msg)
				continue
			}
			if prev, ok := owner[n]; ok {
				v.add(p, "duplicate name %q (also %s)", n, prev)
				continue
			}
			owner[n] = key(section, n)
		}
	}
	d := v.doc
	check("users", sortedKeys(d.Users))
	check("extensions", sortedKeys(d.Extensions))
	check("ivrs", sortedKeys(d.IVRs))
	check("parks", sortedKeys(d.Parks))
	check("faxes", sortedKeys(d.Faxes))

	for _, n := range sortedKeys(d.Trunks) {
		if msg := nameProblem(n); msg != "" {
			v.add(key("trunks", n), "%q is not a safe name: %s", n, msg)
		}
	}
	for _, n := range sortedKeys(d.Prompts) {
		if msg := nameProblem(n); msg != "" {
			v.add(key("prompts", n), "%q is not a safe name: %s", n, msg)
		}
	}
	for _, n := range sortedKeys(d.Locations) {
		if msg := nameProblem(n); msg != "" {
			v.add(key("locations", n), "%q is not a safe name: %s", n, msg)
		}
	}

	// Dialable codes share one keypad: user extensions, extension codes and
	// park orbits must not collide.
	codes := map[string]string{}
	claim := func(path, code string) {
		if prev, ok := codes[code]; ok {
			v.add(path, "duplicate code %q (also %s)", code, prev)
			return
		}
		codes[code] = path
	}
	for _, n := range sortedKeys(d.Users) {
		if e := d.Users[n].Extension; e != "" {
			claim(key("users", n)+".extension", e)
		}
	}
	for _, n := range sortedKeys(d.Extensions) {
		if c := d.Extensions[n].Code; c != "" {
			claim(key("extensions", n)+".code", c)
		}
	}
	for _, n := range sortedKeys(d.Parks) {
		lo, hi, err := ParseOrbits(d.Parks[n].Orbits)
		if err != nil {
			continue // reported by parks()
		}
		for o := lo; o <= hi; o++ {
			claim(key("parks", n)+".orbits", strconv.Itoa(o))
		}
	}
}

// ParseOrbits parses an orbit range such as "701-709" (or a single "701").
func ParseOrbits(s string) (lo, hi int, err error) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		b = a
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo <= 0 || hi < lo || hi-lo >= 1000 || !isDigits(a) || !isDigits(b) {
		return 0, 0, fmt.Errorf("%q is not an orbit range such as \"701-709\" (at most 1000 orbits)", s)
	}
	return lo, hi, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (v *validator) trunks() {
	for _, n := range sortedKeys(v.doc.Trunks) {
		t := v.doc.Trunks[n]
		p := key("trunks", n)
		if t.Address == "" {
			v.add(p+".address", "required")
		} else if err := checkSIPURI(t.Address); err != nil {
			v.add(p+".address", "%v", err)
		}
		if t.Password != "" && t.Username == "" {
			v.add(p+".username", "required when a password is set")
		}
		for i, a := range t.InboundFrom {
			if _, err := netip.ParsePrefix(a); err != nil {
				if _, err := netip.ParseAddr(a); err != nil {
					v.add(fmt.Sprintf("%s.inbound_from[%d]", p, i), "%q is not an IP address or CIDR prefix", a)
				}
			}
		}
		if h := t.ReputationHeader; h != "" && strings.ContainsAny(h, " :\t\r\n") {
			v.add(p+".reputation_header", "%q is not a SIP header name", h)
		}
	}
}

func (v *validator) users() {
	for _, n := range sortedKeys(v.doc.Users) {
		u := v.doc.Users[n]
		p := key("users", n)
		if u.Extension != "" && (!isDigits(u.Extension) || len(u.Extension) > 10) {
			v.add(p+".extension", "%q is not an extension number (1-10 digits)", u.Extension)
		}
		for i, b := range u.Blocklist {
			if err := CheckPrefix(b); err != nil {
				v.add(fmt.Sprintf("%s.blocklist[%d]", p, i), "%v", err)
			}
		}
	}
}

func (v *validator) prompts() {
	for _, n := range sortedKeys(v.doc.Prompts) {
		pr := v.doc.Prompts[n]
		p := key("prompts", n)
		switch {
		case pr.File == "" && pr.Say == "":
			v.add(p, "needs a file or a say text")
		case pr.File != "" && pr.Say != "":
			v.add(p, "has both file and say; use one")
		case pr.File != "":
			path := pr.File
			if !filepath.IsAbs(path) && v.baseDir != "" {
				path = filepath.Join(v.baseDir, path)
			}
			data, err := ReadPromptFile(path)
			if err != nil {
				v.add(p+".file", "unreadable prompt file %q: %v", pr.File, unwrapPathError(err))
			} else if err := checkPromptAudio(data); err != nil {
				v.add(p+".file", "prompt file %q is not audio Switchboard can play: %v", pr.File, err)
			}
		}
	}
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (v *validator) locations() {
	for _, n := range sortedKeys(v.doc.Locations) {
		l := v.doc.Locations[n]
		p := key("locations", n)
		if l.ForwardDestination != "" {
			v.target(p+".forward_destination", l.ForwardDestination)
		} else if l.Forward {
			v.add(p+".forward_destination", "required when forward is true")
		}
	}
}

func (v *validator) extensions() {
	for _, n := range sortedKeys(v.doc.Extensions) {
		e := v.doc.Extensions[n]
		p := key("extensions", n)
		if e.Code != "" && (len(e.Code) != 2 || !isDigits(e.Code)) {
			v.add(p+".code", "%q is not a two-digit code", e.Code)
		}
		switch e.EffectiveType() {
		case TypeIndividual:
			if e.Destination == "" {
				v.add(p+".destination", "required for an individual extension")
			} else {
				v.target(p+".destination", e.Destination)
				if e.Destination == n {
					v.add(p+".destination", "an extension cannot route to itself")
				}
			}
			if len(e.Members) > 0 {
				v.add(p+".members", "only a group has members")
			}
		case TypeGroup:
			if len(e.Members) == 0 {
				v.add(p+".members", "a group needs at least one member")
			}
			if e.Destination != "" {
				v.add(p+".destination", "a group has members, not a destination")
			}
			for i, m := range e.Members {
				mp := fmt.Sprintf("%s.members[%d]", p, i)
				v.target(mp, m)
				if m == n {
					v.add(mp, "a group cannot contain itself")
				} else if why := v.doc.unringable(m, 0); why != "" {
					v.add(mp, "%q %s: it takes a call itself and cannot ring as a member of a group", m, why)
				}
			}
		default:
			v.add(p+".type", "%q is not one of individual, group", e.Type)
		}
		switch e.Distribution {
		case "", Sequential, Rotating, MultiRing:
		default:
			v.add(p+".distribution", "%q is not one of sequential, rotating, multi-ring", e.Distribution)
		}
		if e.MaxParallel != 0 || e.Distribution == MultiRing {
			if mp := e.EffectiveMaxParallel(); mp < 1 || mp > 32 {
				v.add(p+".max_parallel", "%d is outside 1..32", e.MaxParallel)
			}
		}
		if e.Timeout < 0 {
			v.add(p+".timeout", "must not be negative")
		}
		switch {
		case e.Ringing == "", e.Ringing == "tones", e.Ringing == "none":
		case strings.HasPrefix(e.Ringing, "prompt:"):
			v.target(p+".ringing", e.Ringing)
		default:
			v.add(p+".ringing", "%q is not one of tones, none, prompt:NAME", e.Ringing)
		}
		v.promptRef(p+".announcement", e.Announcement)
		v.promptRef(p+".recording_notice", e.RecordingNotice)
		if q := e.Queue; q != nil {
			if q.MaxWait <= 0 {
				v.add(p+".queue.max_wait", "must be a positive duration")
			}
			v.promptRef(p+".queue.message", q.Message)
		}
		switch e.Recording {
		case "", "off", "always", "manual":
		default:
			v.add(p+".recording", "%q is not one of off, always, manual", e.Recording)
		}
		switch e.CallerID {
		case "", "default", "original", "service", "called", "hidden":
		default:
			v.add(p+".caller_id", "%q is not one of default, original, service, called, hidden", e.CallerID)
		}
		if e.CallerID == "service" && v.doc.Defaults.ServiceNumber == "" {
			v.add(p+".caller_id", "service needs defaults.service_number")
		}
		if f := e.OnFailure; f != "" && f != "tones" {
			v.target(p+".on_failure", f)
		}
	}
}

// promptRef checks an optional reference that must be prompt:NAME.
func (v *validator) promptRef(path, ref string) {
	if ref == "" {
		return
	}
	if !strings.HasPrefix(ref, "prompt:") {
		v.add(path, "%q must be prompt:NAME", ref)
		return
	}
	v.target(path, ref)
}

func (v *validator) ivrs() {
	for _, n := range sortedKeys(v.doc.IVRs) {
		r := v.doc.IVRs[n]
		p := key("ivrs", n)
		v.promptRef(p+".prompt", r.Prompt)
		for _, k := range sortedKeys(r.Options) {
			op := p + ".options[" + strconv.Quote(k) + "]"
			if len(k) != 1 || !strings.Contains("0123456789*#", k) {
				v.add(op, "%q is not a single key 0-9, * or #", k)
			}
			v.target(op, r.Options[k])
		}
		if c := r.Collect; c != nil {
			cp := p + ".collect"
			if !validName(c.Variable) {
				v.add(cp+".variable", "%q is not a valid variable name", c.Variable)
			}
			if c.MinDigits < 0 || c.MinDigits > 64 {
				v.add(cp+".min_digits", "%d is outside 0..64", c.MinDigits)
			}
			if c.MaxDigits < 0 || c.MaxDigits > 64 {
				v.add(cp+".max_digits", "%d is outside 0..64", c.MaxDigits)
			} else if c.MaxDigits != 0 && c.MaxDigits < c.MinDigits {
				v.add(cp+".max_digits", "%d is less than min_digits %d", c.MaxDigits, c.MinDigits)
			}
			if t := c.Terminator; t != "" && (len(t) != 1 || !strings.Contains("0123456789*#", t)) {
				v.add(cp+".terminator", "%q is not a single key 0-9, * or #", t)
			}
			if c.Timeout < 0 {
				v.add(cp+".timeout", "must not be negative")
			}
		}
		if r.Next != "" {
			v.target(p+".next", r.Next)
		} else if r.Collect != nil {
			v.add(p+".next", "required with collect")
		}
		if len(r.Options) == 0 && r.Collect == nil {
			v.add(p, "needs options or collect")
		}
		if r.Retries < 0 || r.Retries > 10 {
			v.add(p+".retries", "%d is outside 0..10", r.Retries)
		}
		if r.OnFailure != "" {
			v.target(p+".on_failure", r.OnFailure)
		}
	}
}

func (v *validator) parks() {
	for _, n := range sortedKeys(v.doc.Parks) {
		k := v.doc.Parks[n]
		p := key("parks", n)
		if _, _, err := ParseOrbits(k.Orbits); err != nil {
			v.add(p+".orbits", "%v", err)
		}
		if k.Timeout < 0 {
			v.add(p+".timeout", "must not be negative")
		}
		if k.ReturnTo != "" {
			v.target(p+".return_to", k.ReturnTo)
		}
		v.promptRef(p+".music", k.Music)
	}
}

func (v *validator) faxes() {
	for _, n := range sortedKeys(v.doc.Faxes) {
		p := key("faxes", n) + ".destination"
		dst := v.doc.Faxes[n].Destination
		if dst == "" {
			v.add(p, "required")
			continue
		}
		t, err := ParseTarget(dst)
		if err != nil {
			v.add(p, "%v", err)
		} else if t.Kind != TargetSIP && t.Kind != TargetE164 && t.Kind != TargetUser {
			v.add(p, "%q must be a sip: address, a user: or an E.164 number", dst)
		} else {
			v.target(p, dst)
		}
	}
}

func (v *validator) numbers() {
	d := v.doc
	for _, n := range sortedKeys(d.Numbers) {
		num := d.Numbers[n]
		p := key("numbers", n)
		if err := CheckE164(n); err != nil {
			v.add(p, "%v", err)
		}
		if num.Extension == "" {
			v.add(p+".extension", "required")
		} else {
			v.target(p+".extension", num.Extension)
		}
		if s := num.SMSExtension; s != "" {
			v.smsExtension(p+".sms_extension", s)
		}
		if f := num.Forward; f != nil {
			if f.Destination != "" {
				v.target(p+".forward.destination", f.Destination)
			} else if f.Enabled && (num.Location == "" || d.Locations[num.Location].ForwardDestination == "") {
				v.add(p+".forward.destination", "required when forwarding is enabled and the location has none")
			}
		}
		if num.Location != "" {
			if _, ok := d.Locations[num.Location]; !ok {
				v.add(p+".location", "unknown location %q", num.Location)
			}
		}
		if len(num.Rules) > MaxRulesPerNumber {
			v.add(p+".rules", "%d rules; a number may have at most %d", len(num.Rules), MaxRulesPerNumber)
		}
		for i, r := range num.Rules {
			v.rule(fmt.Sprintf("%s.rules[%d]", p, i), r)
		}
	}
}

func (v *validator) rule(p string, r Rule) {
	if r.Prefix == "" {
		v.add(p+".prefix", "required")
	} else if err := CheckPrefix(r.Prefix); err != nil {
		v.add(p+".prefix", "%v", err)
	}
	if _, err := ParseLevel(r.Reputation); err != nil {
		v.add(p+".reputation", "%v", err)
	}
	switch r.Action {
	case ActionRejectBusy, ActionReject503, ActionVoiceCaptcha:
	case ActionRoute:
		if r.Extension == "" {
			v.add(p+".extension", "required for action route")
		} else {
			v.target(p+".extension", r.Extension)
		}
	case ActionCNAMPrefix:
		if r.CNAMPrefix == "" {
			v.add(p+".cnam_prefix", "required for action cnam-prefix")
		}
	case "":
		v.add(p+".action", "required")
	default:
		v.add(p+".action", "%q is not one of reject-busy, reject-503, cnam-prefix, voice-captcha, route", r.Action)
	}
}

// smsExtension checks that s is a user with sms: true, or a group whose
// members are all such users.
func (v *validator) smsExtension(p, s string) {
	d := v.doc
	name := strings.TrimPrefix(s, "user:")
	if u, ok := d.Users[name]; ok {
		if !u.SMS {
			v.add(p, "user %q does not have sms: true", name)
		}
		return
	}
	e, ok := d.Extensions[s]
	if !ok || e.EffectiveType() != TypeGroup {
		v.add(p, "%q is not a user or a group of SMS-enabled users", s)
		return
	}
	for _, m := range e.Members {
		u, ok := d.Users[strings.TrimPrefix(m, "user:")]
		if !ok || !u.SMS {
			v.add(p, "group %q has member %q that is not a user with sms: true", s, m)
			return
		}
	}
}

// target checks a target string's syntax and that what it names exists.
func (v *validator) target(path, s string) {
	t, err := ParseTarget(s)
	if err != nil {
		v.add(path, "%v", err)
		return
	}
	d := v.doc
	switch t.Kind {
	case TargetName:
		if !d.HasName(t.Value) {
			v.add(path, "unknown reference %q (no extension, user, ivr, park or fax has that name)", t.Value)
		}
	case TargetUser, TargetVoicemail:
		if _, ok := d.Users[t.Value]; !ok {
			v.add(path, "unknown user %q", t.Value)
		}
	case TargetPrompt:
		if _, ok := d.Prompts[t.Value]; !ok {
			v.add(path, "unknown prompt %q", t.Value)
		}
	case TargetE164:
		if d.Defaults.Trunk == "" && len(d.Trunks) != 1 {
			v.add(path, "%q is an external number but defaults.trunk is not set", s)
		}
	}
}

// unringable says what a target is when it cannot be rung as one attempt
// of a group ("is an IVR"), or "" when it can. An individual extension is
// what its destination is.
func (d *Document) unringable(s string, depth int) string {
	t := TargetOf(s)
	switch t.Kind {
	case TargetVoicemail:
		return "is a voicemail box"
	case TargetPrompt:
		return "is a prompt"
	case TargetName:
		if _, ok := d.IVRs[t.Value]; ok {
			return "is an IVR"
		}
		if _, ok := d.Parks[t.Value]; ok {
			return "is a park lot"
		}
		if e, ok := d.Extensions[t.Value]; ok && e.EffectiveType() == TypeIndividual && depth < 4 && e.Destination != s {
			if why := d.unringable(e.Destination, depth+1); why != "" {
				return fmt.Sprintf("is an extension whose destination %q %s", e.Destination, why)
			}
		}
	}
	return ""
}

// HasName reports whether NAME refers to an extension, user, ivr, park lot or fax.
func (d *Document) HasName(name string) bool {
	if _, ok := d.Extensions[name]; ok {
		return true
	}
	if _, ok := d.Users[name]; ok {
		return true
	}
	if _, ok := d.IVRs[name]; ok {
		return true
	}
	if _, ok := d.Parks[name]; ok {
		return true
	}
	_, ok := d.Faxes[name]
	return ok
}

// Level is a caller reputation level: none < low < medium < high.
type Level uint8

// Reputation levels.
const (
	LevelNone Level = iota
	LevelLow
	LevelMedium
	LevelHigh
)

var levelNames = [...]string{"none", "low", "medium", "high"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// ParseLevel parses a reputation level; "" is none.
func ParseLevel(s string) (Level, error) {
	if s == "" {
		return LevelNone, nil
	}
	for i, n := range levelNames {
		if s == n {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not one of none, low, medium, high", s)
}

// MaxNameLength is the longest account or object name.
const MaxNameLength = 64

// nameProblem says why s is not a safe name, or returns "". Names end up
// in file paths (recordings/ACCOUNT/voicemail/USER), URLs
// (/api/v1/ACCOUNT/...) and SIP URIs, so they are 1-64 characters of
// letters, digits, '-', '_' and '.', neither starting with '.' nor
// holding "..": no path separator, NUL, control character or space, and
// never "." or "..".
func nameProblem(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxNameLength:
		return fmt.Sprintf("longer than %d characters", MaxNameLength)
	case s[0] == '.':
		return "starts with '.'"
	case strings.Contains(s, ".."):
		return `contains ".."`
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		case c == '/' || c == '\\':
			return "contains a path separator"
		case c < 0x20 || c == 0x7f:
			return "contains a control character"
		default:
			return fmt.Sprintf("contains %q (only letters, digits, '-', '_' and '.')", c)
		}
	}
	return ""
}

// SafeName reports whether s is a safe account or object name (see
// docs/security.md): what validation accepts as a name.
func SafeName(s string) bool { return nameProblem(s) == "" }

// domainProblem says why s is not a host name or IP address usable as an
// account's SIP domain, or returns "".
func domainProblem(s string) string {
	if len(s) > 253 {
		return "longer than 253 characters"
	}
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return ""
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return "has an empty label"
		}
		if len(label) > 63 {
			return "has a label longer than 63 characters"
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return fmt.Sprintf("contains %q (only letters, digits, '-', '_' and '.')", c)
			}
		}
	}
	return ""
}

// Limits of ReadPromptFile.
const (
	// MaxPromptFileSize is the largest prompt file accepted (32 MiB: three
	// minutes of 44.1 kHz 16-bit stereo, over half an hour at 8 kHz).
	MaxPromptFileSize = 32 << 20
	// PromptReadTimeout bounds reading one prompt file, so that a file on
	// a stuck network mount cannot hang validation or a reload.
	PromptReadTimeout = 5 * time.Second
)

// Sentinel errors of ReadPromptFile.
var (
	ErrNotRegularFile = errors.New("not a regular file")
	ErrPromptTooLarge = fmt.Errorf("larger than %d bytes", MaxPromptFileSize)
	ErrPromptTimeout  = fmt.Errorf("not read within %s", PromptReadTimeout)
)

// ReadPromptFile reads a prompt file whole: a regular file only (a named
// pipe, a device such as /dev/zero, a directory or a socket is refused
// before anything is read: opening never blocks), of at most
// MaxPromptFileSize bytes, read within PromptReadTimeout.
func ReadPromptFile(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading blocks until a writer comes.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w (%s)", ErrNotRegularFile, fileKind(fi.Mode()))
	}
	if fi.Size() > MaxPromptFileSize {
		f.Close()
		return nil, ErrPromptTooLarge
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, MaxPromptFileSize+1))
		done <- result{data, err}
	}()
	t := time.NewTimer(PromptReadTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		if r.err == nil && len(r.data) > MaxPromptFileSize {
			r.err = ErrPromptTooLarge // it grew while being read
		}
		return r.data, r.err
	case <-t.C:
		return nil, ErrPromptTimeout
	}
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// promptDecoder checks a prompt file's bytes at validation time; package
// prompt installs the full WAV decoder (config cannot import media).
var promptDecoder atomic.Pointer[func([]byte) error]

// SetPromptDecoder makes validation check every prompt file with decode,
// which returns why the bytes are not playable audio. Package prompt calls
// it with its WAV decoder; without it a file must at least be RIFF/WAVE.
func SetPromptDecoder(decode func([]byte) error) { promptDecoder.Store(&decode) }

func checkPromptAudio(data []byte) error {
	if d := promptDecoder.Load(); d != nil {
		return (*d)(data)
	}
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return errors.New("not a RIFF/WAVE file")
	}
	return nil
}
