package sipserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

func TestUserCalls(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	bob := w.user("bob", "pb", testphone.Behavior{})
	w.pstn.SetBehavior(testphone.Behavior{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// An extension number.
	c, err := alice.Dial(ctx, "sip:102@"+w.h.addr, testphone.DialOptions{})
	if err != nil {
		t.Fatalf("alice dials 102: %v", err)
	}
	if bc := incoming(t, bob); bc.Invite().From().Address.User != "101" {
		t.Errorf("bob sees caller %q, want alice's extension 101", bc.Invite().From().Address.User)
	}
	hangup(t, c)
	// An external number in allowed_destinations, presented as the service number.
	c, err = alice.Dial(ctx, "sip:+34600000003@"+w.h.addr, testphone.DialOptions{})
	if err != nil {
		t.Fatalf("alice dials +34600000003: %v", err)
	}
	pc := incoming(t, w.pstn)
	if got := pc.Invite().From().Address.User; got != "+34910000099" {
		t.Errorf("external call presented as %q", got)
	}
	hangup(t, c)
	// Toll fraud guard: not in allowed_destinations.
	if _, err := alice.Dial(ctx, "sip:+19005550100@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 403 {
		t.Errorf("premium number: %v, want 403", err)
	}
	// Wrong password: challenged again, never connected.
	mallory := newPhone(t, testphone.Config{Name: "mallory", User: "alice", Password: "wrong", Domain: "acme.test"})
	if _, err := mallory.Dial(ctx, "sip:102@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 407 {
		t.Errorf("wrong password: %v, want 407", err)
	}
	// A domain we do not serve, from an address that is no trunk: 403.
	stranger := newPhone(t, testphone.Config{Name: "stranger", User: "x", Domain: "elsewhere.test"})
	if _, err := stranger.Dial(ctx, "sip:102@"+w.h.addr, testphone.DialOptions{}); testphone.StatusCode(err) != 403 {
		t.Errorf("stranger: %v, want 403", err)
	}
}

func TestCalleeHangupEndsCaller(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	hangup(t, incoming(t, alice))
	waitEnded(t, c, 5*time.Second)
	if c.EndReason() != testphone.EndRemoteHangup {
		t.Errorf("caller end reason %s", c.EndReason())
	}
	if rec := lastRecord(t, w.h, 1); rec.HangupCause != "callee_bye" {
		t.Errorf("record: %+v", rec)
	}
}

func TestConfigChangeTakesEffectWithoutRestart(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{})
	doc := fmt.Sprintf(worldDoc, w.pstn.Addr(), builtinDir(t))
	doc = strings.Replace(doc, `"+34910000004": { extension: busy }`,
		`"+34910000004": { extension: busy, rules: [ { prefix: "*", weight: 1, action: reject-503 } ] }`, 1)
	applyYAML(t, w.h.st, doc)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := w.call("+34910000004", "+34911222333", "")
		if testphone.StatusCode(err) == 503 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new rule is not in force 5s after apply: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestGracefulShutdown(t *testing.T) {
	w := newWorld(t, harnessOptions{drain: 500 * time.Millisecond})
	alice := w.user("alice", "pa", testphone.Behavior{})
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	w.h.cancel() // SIGTERM
	time.Sleep(100 * time.Millisecond)
	// New calls are refused while the call in progress drains.
	if _, err := w.call("+34910000001", "+34911222333", ""); testphone.StatusCode(err) != 503 {
		t.Errorf("call during drain: %v, want 503", err)
	}
	waitEnded(t, c, 5*time.Second)
	waitEnded(t, ac, 5*time.Second)
	select {
	case <-w.h.done:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
	recs := w.h.calls("acme")
	if len(recs) == 0 || recs[len(recs)-1].HangupCause != "shutdown" {
		t.Fatalf("records after shutdown: %+v", recs)
	}
}
