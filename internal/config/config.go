// Package config is the account document of SPEC §2: the typed model, loading
// from YAML or JSON, and validation that reports every error with its path.
package config

import (
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Document is one account's whole configuration.
type Document struct {
	Account    string               `yaml:"account" json:"account"`
	Domain     string               `yaml:"domain,omitempty" json:"domain,omitempty"`
	Defaults   Defaults             `yaml:"defaults,omitempty" json:"defaults,omitzero"`
	Trunks     map[string]Trunk     `yaml:"trunks,omitempty" json:"trunks,omitempty"`
	Users      map[string]User      `yaml:"users,omitempty" json:"users,omitempty"`
	Prompts    map[string]Prompt    `yaml:"prompts,omitempty" json:"prompts,omitempty"`
	Locations  map[string]Location  `yaml:"locations,omitempty" json:"locations,omitempty"`
	Extensions map[string]Extension `yaml:"extensions,omitempty" json:"extensions,omitempty"`
	IVRs       map[string]IVR       `yaml:"ivrs,omitempty" json:"ivrs,omitempty"`
	Parks      map[string]Park      `yaml:"parks,omitempty" json:"parks,omitempty"`
	Faxes      map[string]Fax       `yaml:"faxes,omitempty" json:"faxes,omitempty"`
	Numbers    map[string]Number    `yaml:"numbers,omitempty" json:"numbers,omitempty"`
}

// Defaults are the account-wide settings.
type Defaults struct {
	CallerID            string   `yaml:"caller_id,omitempty" json:"caller_id,omitempty"`
	ServiceNumber       string   `yaml:"service_number,omitempty" json:"service_number,omitempty"`
	Trunk               string   `yaml:"trunk,omitempty" json:"trunk,omitempty"`
	AllowedDestinations []string `yaml:"allowed_destinations,omitempty" json:"allowed_destinations,omitempty"`
	Webhook             string   `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	// MaxOutboundCalls caps the account's users' calls to external numbers
	// in progress at once, and MaxOutboundPerHour those placed in any hour
	// (the toll-fraud guard beside allowed_destinations). Left out, the
	// defaults below apply; 0 is no cap. Pointers, so that an explicit 0
	// survives export and is told apart from a field left out.
	MaxOutboundCalls   *int `yaml:"max_outbound_calls,omitempty" json:"max_outbound_calls,omitempty"`
	MaxOutboundPerHour *int `yaml:"max_outbound_per_hour,omitempty" json:"max_outbound_per_hour,omitempty"`
}

// Default caps on users' outbound calls: well above what a small office
// dials, far below what a compromised phone or password runs up in an hour.
const (
	DefaultMaxOutboundCalls   = 10
	DefaultMaxOutboundPerHour = 200
)

// OutboundCallLimit is max_outbound_calls with the default applied; 0 is
// no cap.
func (d *Defaults) OutboundCallLimit() int {
	if d.MaxOutboundCalls == nil {
		return DefaultMaxOutboundCalls
	}
	return *d.MaxOutboundCalls
}

// OutboundHourlyLimit is max_outbound_per_hour with the default applied;
// 0 is no cap.
func (d *Defaults) OutboundHourlyLimit() int {
	if d.MaxOutboundPerHour == nil {
		return DefaultMaxOutboundPerHour
	}
	return *d.MaxOutboundPerHour
}

// Trunk is a SIP peer: a carrier or gateway.
type Trunk struct {
	Address          string   `yaml:"address" json:"address"`
	Username         string   `yaml:"username,omitempty" json:"username,omitempty"`
	Password         string   `yaml:"password,omitempty" json:"password,omitempty"`
	InboundFrom      []string `yaml:"inbound_from,omitempty" json:"inbound_from,omitempty"`
	ReputationHeader string   `yaml:"reputation_header,omitempty" json:"reputation_header,omitempty"`
}

// User is a person whose SIP devices register with digest auth.
type User struct {
	Extension string   `yaml:"extension,omitempty" json:"extension,omitempty"`
	Password  string   `yaml:"password,omitempty" json:"password,omitempty"`
	SMS       bool     `yaml:"sms,omitempty" json:"sms,omitempty"`
	Blocklist []string `yaml:"blocklist,omitempty" json:"blocklist,omitempty"`
}

// Prompt is an audio file or a text for the TTS engine; exactly one is set.
type Prompt struct {
	File string `yaml:"file,omitempty" json:"file,omitempty"`
	Say  string `yaml:"say,omitempty" json:"say,omitempty"`
}

// Location is a PBX location whose forwarding switch covers its numbers.
type Location struct {
	Forward            bool   `yaml:"forward" json:"forward"`
	ForwardDestination string `yaml:"forward_destination,omitempty" json:"forward_destination,omitempty"`
}

// Extension types.
const (
	TypeIndividual = "individual"
	TypeGroup      = "group"
)

// Group distributions.
const (
	Sequential = "sequential"
	Rotating   = "rotating"
	MultiRing  = "multi-ring"
)

// Defaults applied when a field is left out.
const (
	DefaultTimeout     = 20 * time.Second
	DefaultMaxParallel = 3
	MaxRulesPerNumber  = 300
	MaxDocumentSize    = 10 << 20
)

// Extension is a routable destination: one target, or a group of members.
type Extension struct {
	Code            string   `yaml:"code,omitempty" json:"code,omitempty"`
	Type            string   `yaml:"type,omitempty" json:"type,omitempty"`
	Destination     string   `yaml:"destination,omitempty" json:"destination,omitempty"`
	Members         []string `yaml:"members,omitempty" json:"members,omitempty"`
	Distribution    string   `yaml:"distribution,omitempty" json:"distribution,omitempty"`
	MaxParallel     int      `yaml:"max_parallel,omitempty" json:"max_parallel,omitempty"`
	Timeout         Duration `yaml:"timeout,omitempty" json:"timeout,omitzero"`
	Ringing         string   `yaml:"ringing,omitempty" json:"ringing,omitempty"`
	Announcement    string   `yaml:"announcement,omitempty" json:"announcement,omitempty"`
	Confirm         bool     `yaml:"confirm,omitempty" json:"confirm,omitempty"`
	Transfer        bool     `yaml:"transfer,omitempty" json:"transfer,omitempty"`
	Queue           *Queue   `yaml:"queue,omitempty" json:"queue,omitempty"`
	Recording       string   `yaml:"recording,omitempty" json:"recording,omitempty"`
	RecordingNotice string   `yaml:"recording_notice,omitempty" json:"recording_notice,omitempty"`
	CallerID        string   `yaml:"caller_id,omitempty" json:"caller_id,omitempty"`
	OnFailure       string   `yaml:"on_failure,omitempty" json:"on_failure,omitempty"`
}

// EffectiveType is the extension's type with the default applied.
func (e *Extension) EffectiveType() string {
	if e.Type == "" {
		if len(e.Members) > 0 {
			return TypeGroup
		}
		return TypeIndividual
	}
	return e.Type
}

// EffectiveDistribution is the group distribution with the default applied.
func (e *Extension) EffectiveDistribution() string {
	if e.Distribution == "" {
		return Sequential
	}
	return e.Distribution
}

// EffectiveMaxParallel is max_parallel with the default applied.
func (e *Extension) EffectiveMaxParallel() int {
	if e.MaxParallel == 0 {
		return DefaultMaxParallel
	}
	return e.MaxParallel
}

// EffectiveTimeout is the per-attempt no-answer timeout with the default applied.
func (e *Extension) EffectiveTimeout() time.Duration {
	if e.Timeout.D() == 0 {
		return DefaultTimeout
	}
	return e.Timeout.D()
}

// Queue holds a caller while the members are retried.
type Queue struct {
	MaxWait Duration `yaml:"max_wait" json:"max_wait"`
	Message string   `yaml:"message,omitempty" json:"message,omitempty"`
}

// IVR is a menu or keypad data-entry step.
type IVR struct {
	Prompt    string            `yaml:"prompt,omitempty" json:"prompt,omitempty"`
	Options   map[string]string `yaml:"options,omitempty" json:"options,omitempty"`
	Collect   *Collect          `yaml:"collect,omitempty" json:"collect,omitempty"`
	Next      string            `yaml:"next,omitempty" json:"next,omitempty"`
	Retries   int               `yaml:"retries,omitempty" json:"retries,omitempty"`
	OnFailure string            `yaml:"on_failure,omitempty" json:"on_failure,omitempty"`
}

// Collect reads digits into a call variable.
type Collect struct {
	Variable   string   `yaml:"variable" json:"variable"`
	MinDigits  int      `yaml:"min_digits,omitempty" json:"min_digits,omitempty"`
	MaxDigits  int      `yaml:"max_digits,omitempty" json:"max_digits,omitempty"`
	Terminator string   `yaml:"terminator,omitempty" json:"terminator,omitempty"`
	Timeout    Duration `yaml:"timeout,omitempty" json:"timeout,omitzero"`
}

// Park is a park lot with numbered orbits.
type Park struct {
	Orbits   string   `yaml:"orbits" json:"orbits"`
	Timeout  Duration `yaml:"timeout,omitempty" json:"timeout,omitzero"`
	ReturnTo string   `yaml:"return_to,omitempty" json:"return_to,omitempty"`
	Music    string   `yaml:"music,omitempty" json:"music,omitempty"`
}

// Fax is a fax endpoint; media to it passes through untouched.
type Fax struct {
	Destination string `yaml:"destination" json:"destination"`
}

// Number is a DID with its routing rules.
type Number struct {
	Extension       string   `yaml:"extension,omitempty" json:"extension,omitempty"`
	SMSExtension    string   `yaml:"sms_extension,omitempty" json:"sms_extension,omitempty"`
	Forward         *Forward `yaml:"forward,omitempty" json:"forward,omitempty"`
	Location        string   `yaml:"location,omitempty" json:"location,omitempty"`
	Tags            []string `yaml:"tags,omitempty" json:"tags,omitempty"`
	DistinctiveRing string   `yaml:"distinctive_ring,omitempty" json:"distinctive_ring,omitempty"`
	CNAMPrefix      string   `yaml:"cnam_prefix,omitempty" json:"cnam_prefix,omitempty"`
	Rules           []Rule   `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// Forward is a number's own forwarding switch.
type Forward struct {
	Enabled     bool   `yaml:"enabled" json:"enabled"`
	Destination string `yaml:"destination,omitempty" json:"destination,omitempty"`
}

// Rule actions.
const (
	ActionRejectBusy   = "reject-busy"
	ActionReject503    = "reject-503"
	ActionCNAMPrefix   = "cnam-prefix"
	ActionVoiceCaptcha = "voice-captcha"
	ActionRoute        = "route"
)

// Rule is a per-number routing rule.
type Rule struct {
	Prefix     string   `yaml:"prefix" json:"prefix"`
	Weight     int      `yaml:"weight" json:"weight"`
	Action     string   `yaml:"action" json:"action"`
	Reputation string   `yaml:"reputation,omitempty" json:"reputation,omitempty"`
	Extension  string   `yaml:"extension,omitempty" json:"extension,omitempty"`
	CNAMPrefix string   `yaml:"cnam_prefix,omitempty" json:"cnam_prefix,omitempty"`
	Tags       []string `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("20s", "2m").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration the way Go does.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration must be a string such as \"20s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q (use Go durations such as \"20s\" or \"2m\")", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"20s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}
