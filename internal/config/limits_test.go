package config_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/config"
)

// TestOutboundLimits: the caps on users' outbound calls default when left
// out, and an explicit value — 0, no cap, included — survives export (YAML)
// and the API's JSON, so that applying an export changes nothing.
func TestOutboundLimits(t *testing.T) {
	tests := []struct {
		name             string
		defaults         string
		calls, perHour   int
		exported, absent string
	}{
		{"left out", "trunk: carrier", config.DefaultMaxOutboundCalls, config.DefaultMaxOutboundPerHour, "", "max_outbound"},
		{"set", "trunk: carrier, max_outbound_calls: 2, max_outbound_per_hour: 30", 2, 30, "max_outbound_calls: 2", ""},
		{"no cap", "trunk: carrier, max_outbound_calls: 0, max_outbound_per_hour: 0", 0, 0, "max_outbound_per_hour: 0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(minimal, "trunk: carrier }", tt.defaults+" }", 1)
			doc, err := config.Parse([]byte(src), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := doc.Validate(""); err != nil {
				t.Fatal(err)
			}
			if got, got2 := doc.Defaults.OutboundCallLimit(), doc.Defaults.OutboundHourlyLimit(); got != tt.calls || got2 != tt.perHour {
				t.Fatalf("limits %d concurrent, %d per hour; want %d, %d", got, got2, tt.calls, tt.perHour)
			}
			out, err := doc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if tt.exported != "" && !strings.Contains(string(out), tt.exported) {
				t.Errorf("export lacks %q:\n%s", tt.exported, out)
			}
			if tt.absent != "" && strings.Contains(string(out), tt.absent) {
				t.Errorf("export of defaults shows %q:\n%s", tt.absent, out)
			}
			again, err := config.Parse(out, "export")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(doc, again) {
				t.Errorf("export does not round-trip:\n%s", out)
			}
			// GET /config is the document as JSON; PUT reads it back with Parse.
			js, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			back, err := config.Parse(js, "body")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(doc, back) {
				t.Errorf("JSON does not round-trip:\n%s", js)
			}
		})
	}
}
