package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestRegistrations: GET registrations lists the devices that registered
// over SIP, with where they registered from and until when.
func TestRegistrations(t *testing.T) {
	nodetest.EachDB(t, func(t *testing.T, db string) {
		srv := nodetest.Run(t, fmt.Sprintf(acmeDoc, builtinDir(t)), nodetest.Options{DB: db, TTS: stubTTS{}})
		c := newClient(t, srv, "acme", "devices", true, 1)
		var out struct {
			Registrations []struct {
				User, Contact, Address, Transport string
				UserAgent                         string `json:"user_agent"`
				Expires                           time.Time
			}
		}
		want(t, c.do("GET", "/acme/registrations", nil), 200).decode(t, &out)
		if len(out.Registrations) != 0 {
			t.Fatalf("before any REGISTER: %+v", out.Registrations)
		}
		bob := userPhone(t, srv, "bob", bobPW, testphone.Behavior{})
		alice := userPhone(t, srv, "alice", alicePW, testphone.Behavior{})
		want(t, c.do("GET", "/acme/registrations", nil), 200).decode(t, &out)
		if len(out.Registrations) != 2 {
			t.Fatalf("registrations %+v", out.Registrations)
		}
		for i, p := range []*testphone.Phone{alice, bob} {
			r := out.Registrations[i]
			if r.User != []string{"alice", "bob"}[i] || r.Address != p.Addr().String() || !strings.Contains(r.Contact, p.Addr().String()) ||
				r.Transport == "" || time.Until(r.Expires) < 50*time.Minute || time.Until(r.Expires) > 61*time.Minute {
				t.Errorf("registration %d = %+v (phone at %s)", i, r, p.Addr())
			}
		}
		want(t, c.do("GET", "/globex/registrations", nil), 404)
	})
}
