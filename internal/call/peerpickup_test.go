package call

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestPeerPickup: a pickup header verifies only with the nodes' secret, on
// the INVITE it was signed for (orbit and Call-ID), while fresh.
func TestPeerPickup(t *testing.T) {
	secret := []byte("cluster-secret-0123456789")
	now := time.Unix(1_800_000_000, 0)
	invite := func(orbit, callID string, h sip.Header) *sip.Request {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: orbit, Host: "127.0.0.1", Port: 5060})
		id := sip.CallIDHeader(callID)
		req.AppendHeader(&id)
		if h != nil {
			req.AppendHeader(h)
		}
		return req
	}
	good := pickupHeader(secret, "acme", "bob", "701", "call-1", now)
	for _, tc := range []struct {
		name   string
		req    *sip.Request
		secret []byte
		at     time.Time
		ok     bool
	}{
		{"signed", invite("701", "call-1", good), secret, now, true},
		{"29 s later", invite("701", "call-1", good), secret, now.Add(29 * time.Second), true},
		{"31 s later", invite("701", "call-1", good), secret, now.Add(31 * time.Second), false},
		{"another orbit", invite("702", "call-1", good), secret, now, false},
		{"another call", invite("701", "call-2", good), secret, now, false},
		{"another secret", invite("701", "call-1", good), []byte("other"), now, false},
		{"no secret", invite("701", "call-1", good), nil, now, false},
		{"no header", invite("701", "call-1", nil), secret, now, false},
		{"garbage", invite("701", "call-1", sip.NewHeader(PickupHeader, "acme bob x y")), secret, now, false},
		{"too few fields", invite("701", "call-1", sip.NewHeader(PickupHeader, "acme bob")), secret, now, false},
	} {
		account, user, ok := PeerPickup(tc.secret, tc.req, tc.at)
		if ok != tc.ok || (ok && (account != "acme" || user != "bob")) {
			t.Errorf("%s: %q %q %v, want ok %v", tc.name, account, user, ok, tc.ok)
		}
	}
}
