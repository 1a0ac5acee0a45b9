package sipserver

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

// TestUnregisteredSourceRefused: a user's INVITE or MESSAGE from an
// address with no registration is refused 403 at once — never challenged,
// so no password can be guessed that way and our domains answer like
// anyone's — and once the phone has registered from that address, the
// same requests are challenged and go through.
func TestUnregisteredSourceRefused(t *testing.T) {
	t.Parallel()
	h := startSMS(t, smsDoc, fastRetry)
	bob := newPhone(t, testphone.Config{Name: "bob", User: "bob", Password: "b0bpass", Domain: "acme.test", Registrar: h.addr})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code, err := bob.Register(ctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register bob: %d %v", code, err)
	}
	alice := newPhone(t, testphone.Config{Name: "alice", User: "alice", Password: "s3cret", Domain: "acme.test", Registrar: h.addr,
		IP: netip.MustParseAddr("127.0.0.21")})
	dial := func() int {
		c, err := alice.Dial(ctx, "sip:102@"+h.addr, testphone.DialOptions{})
		if c == nil {
			t.Fatalf("dial: %v", err)
		}
		if c.IsAnswered() {
			_ = c.Hangup(ctx)
		}
		return c.Status()
	}
	message := func() int {
		code, _ := alice.SendMessage(ctx, "sip:102@"+h.addr, "hi", testphone.DialOptions{})
		return code
	}
	if code := dial(); code != 403 {
		t.Errorf("INVITE from an unregistered address: %d, want 403", code)
	}
	if code := message(); code != 403 {
		t.Errorf("MESSAGE from an unregistered address: %d, want 403", code)
	}
	if code, err := alice.Register(ctx, time.Hour); err != nil || code != 200 {
		t.Fatalf("register alice: %d %v", code, err)
	}
	go func() {
		for in := range bob.Incoming() {
			_ = in.Answer(ctx)
		}
	}()
	if code := dial(); code != 200 {
		t.Errorf("INVITE once registered: %d, want 200 (after the challenge)", code)
	}
	if code := message(); code != 202 {
		t.Errorf("MESSAGE once registered: %d, want 202", code)
	}
}
