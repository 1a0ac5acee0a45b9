package sipserver

import (
	"testing"

	"github.com/switchboard/switchboard/internal/testphone"
)

func TestCallerIDModes(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{})
	tests := []struct {
		number, wantUser, privacy string
	}{
		{"+34910000006", "anonymous", "id"},
		{"+34910000007", "+34910000099", ""},
		{"+34910000008", "+34910000008", ""},
	}
	for i, tt := range tests {
		c, err := w.call(tt.number, "+34911222333", "Caller")
		if err != nil {
			t.Fatalf("%s: %v", tt.number, err)
		}
		bc := incoming(t, bob)
		if got := bc.Invite().From().Address.User; got != tt.wantUser {
			t.Errorf("%s: From user %q, want %q", tt.number, got, tt.wantUser)
		}
		if got := bc.Header("Privacy"); got != tt.privacy {
			t.Errorf("%s: Privacy %q, want %q", tt.number, got, tt.privacy)
		}
		hangup(t, c)
		w.h.waitCalls("acme", i+1)
	}
}

func TestReputationRuleAndReject(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{})
	_, err := w.call("+34910000010", "+34911222333", "", testphone.DialOptions{Headers: map[string]string{"X-Spam-Score": "95"}})
	if code := testphone.StatusCode(err); code != 486 {
		t.Fatalf("high-reputation caller: got %d (%v), want 486", code, err)
	}
	c, err := w.call("+34910000010", "+34911222333", "", testphone.DialOptions{Headers: map[string]string{"X-Spam-Score": "10"}})
	if err != nil {
		t.Fatalf("low score caller: %v", err)
	}
	hangup(t, c)
	recs := w.h.waitCalls("acme", 2)
	if recs[1].Outcome != "rejected" || recs[0].Outcome != "routed" {
		t.Errorf("outcomes %q, %q", recs[1].Outcome, recs[0].Outcome)
	}
}
