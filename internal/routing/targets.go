package routing

import (
	"maps"
	"slices"

	"github.com/switchboard/switchboard/internal/config"
)

// TargetKind is what a target resolves to in an account.
type TargetKind uint8

// Target kinds (SPEC §1).
const (
	TargetUnknown   TargetKind = iota // a name the account does not have
	TargetExtension                   // Ext: an individual extension or a group
	TargetUser                        // user:NAME, or a bare user name (Name: the user)
	TargetIVR                         // IVR
	TargetPark                        // Park
	TargetFax                         // Fax
	TargetNumber                      // +E164, dialled out through the default trunk
	TargetSIP                         // sip:user@host[:port]
	TargetVoicemail                   // voicemail:USER (Name: the user)
	TargetPrompt                      // prompt:NAME (Name: the prompt)
	TargetVariable                    // ${var} (Name: the variable)
)

// Target is a target string of the document, resolved once when the
// snapshot is compiled: the call executor reads these rather than parse
// strings on every call.
type Target struct {
	Kind TargetKind
	Raw  string // as configured
	Name string // the object, user, prompt or variable name; the number or URI
	Ext  *config.Extension
	IVR  *config.IVR
	Park *config.Park
	Fax  *config.Fax
}

// Ringable reports whether the target can be rung as one attempt of a
// group: a person's devices, an address, an extension of those, a fax.
// IVRs, park lots, voicemail and prompts answer the call themselves.
func (t Target) Ringable() bool {
	switch t.Kind {
	case TargetExtension, TargetUser, TargetNumber, TargetSIP, TargetFax, TargetVariable:
		return true
	}
	return false
}

// Target resolves a target string. Every target the document names was
// resolved when the snapshot was compiled; others (a call variable's
// value, a REFER's target) are resolved now.
func (s *Snapshot) Target(raw string) Target {
	if t, ok := s.targets[raw]; ok {
		return t
	}
	return s.resolve(raw)
}

func (s *Snapshot) resolve(raw string) Target {
	doc := s.doc
	ct := config.TargetOf(raw)
	t := Target{Raw: raw, Name: ct.Value}
	switch ct.Kind {
	case config.TargetUser:
		t.Kind = TargetUser
	case config.TargetE164:
		t.Kind = TargetNumber
	case config.TargetSIP:
		t.Kind = TargetSIP
	case config.TargetVoicemail:
		t.Kind = TargetVoicemail
	case config.TargetPrompt:
		t.Kind = TargetPrompt
	case config.TargetVariable:
		t.Kind = TargetVariable
	case config.TargetName:
		if e, ok := doc.Extensions[raw]; ok {
			t.Kind, t.Ext = TargetExtension, &e
		} else if _, ok := doc.Users[raw]; ok {
			t.Kind = TargetUser
		} else if m, ok := doc.IVRs[raw]; ok {
			t.Kind, t.IVR = TargetIVR, &m
		} else if p, ok := doc.Parks[raw]; ok {
			t.Kind, t.Park = TargetPark, &p
		} else if f, ok := doc.Faxes[raw]; ok {
			t.Kind, t.Fax = TargetFax, &f
		}
	}
	return t
}

// compileTargets resolves every target string the document names.
func (s *Snapshot) compileTargets() {
	doc := s.doc
	s.targets = map[string]Target{}
	add := func(raw string) {
		if _, done := s.targets[raw]; raw != "" && !done {
			s.targets[raw] = s.resolve(raw)
		}
	}
	for name, e := range doc.Extensions {
		add(name)
		add(e.Destination)
		add(e.OnFailure)
		for _, m := range e.Members {
			add(m)
		}
	}
	for name := range doc.Users {
		add(name)
		add("user:" + name)
	}
	for name, m := range doc.IVRs {
		add(name)
		add(m.Next)
		add(m.OnFailure)
		for _, o := range m.Options {
			add(o)
		}
	}
	for name, p := range doc.Parks {
		add(name)
		add(p.ReturnTo)
	}
	for name, f := range doc.Faxes {
		add(name)
		add(f.Destination)
	}
	for _, n := range doc.Numbers {
		add(n.Extension)
		if n.Forward != nil {
			add(n.Forward.Destination)
		}
		for _, r := range n.Rules {
			add(r.Extension)
		}
	}
	for _, l := range doc.Locations {
		add(l.ForwardDestination)
	}
	s.defaultTrunk = doc.Defaults.Trunk
	if s.defaultTrunk == "" && len(doc.Trunks) > 0 {
		// Validation allows this only with a single trunk; should there be
		// more, the first by name is taken, never a random one.
		s.defaultTrunk = slices.Min(slices.Collect(maps.Keys(doc.Trunks)))
	}
}

// DefaultTrunk is the trunk external numbers are dialled through:
// defaults.trunk, or the account's only trunk.
func (s *Snapshot) DefaultTrunk() (name string, t *config.Trunk, ok bool) {
	tr, ok := s.doc.Trunks[s.defaultTrunk]
	if !ok {
		return "", nil, false
	}
	return s.defaultTrunk, &tr, true
}
