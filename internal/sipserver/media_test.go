package sipserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/testphone"
)

func TestTranscodingBetweenLegs(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{Codecs: []media.Codec{media.PCMA}, Play: testphone.Tone(1000)})
	c, err := w.call("+34910000001", "+34911222333", "", testphone.DialOptions{Codecs: []media.Codec{media.PCMU}, Play: testphone.Tone(425)()})
	if err != nil {
		t.Fatal(err)
	}
	ac := incoming(t, alice)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Errorf("µ-law caller does not hear the A-law callee: %v", err)
	}
	if err := ac.WaitForTone(ctx, 425, 200*time.Millisecond); err != nil {
		t.Errorf("A-law callee does not hear the µ-law caller: %v", err)
	}
	if !strings.Contains(string(c.Response().Body()), "PCMU/8000") {
		t.Errorf("caller's answer is not PCMU:\n%s", c.Response().Body())
	}
	hangup(t, c)
}
