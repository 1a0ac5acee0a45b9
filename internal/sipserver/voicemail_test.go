package sipserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestVoicemail: on_failure voicemail:USER answers, plays the greeting and
// a beep, and records what the caller says into a file for the user.
func TestVoicemail(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000021", "+34911222333", "")
	if err != nil {
		t.Fatalf("voicemail answers: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 100*time.Millisecond); err != nil {
		t.Fatalf("no beep: %v", err)
	}
	if score := heardPrompt(t, c.Heard(4*time.Second), "leave-message"); score < 0.7 {
		t.Errorf("no greeting (correlation %.2f)", score)
	}
	time.Sleep(600 * time.Millisecond) // the beep ends
	c.Play(media.Sine(425))
	time.Sleep(1500 * time.Millisecond)
	// # ends the message; the hang-up may overtake the digit's end packets.
	if err := c.SendDTMF(ctx, "#"); err != nil && c.EndReason() == testphone.EndNone {
		t.Fatal(err)
	}
	waitEnded(t, c, 5*time.Second)
	rec := lastRecord(t, w.h, 1)
	if rec.Voicemail == "" || rec.HangupCause != "voicemail_left" {
		t.Fatalf("record: %+v", rec)
	}
	left, _, err := media.ReadStereoWAV(rec.Voicemail)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := media.DominantFrequency(left[max(0, len(left)-4000):], []float64{425, 1000}); !ok || f != 425 {
		t.Errorf("voicemail holds %v %v, want the caller's 425 Hz", f, ok)
	}
	if !strings.Contains(rec.Voicemail, "/voicemail/alice/") {
		t.Errorf("voicemail stored at %s, want it under alice", rec.Voicemail)
	}
}

// TestVoicemailOwnGreeting: a user's own greeting (the prompt
// voicemail-USER) replaces the built-in one.
func TestVoicemailOwnGreeting(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{Mode: testphone.NeverAnswer})
	c, err := w.call("+34910000024", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitForTone(ctx, 1000, 100*time.Millisecond); err != nil {
		t.Fatalf("no beep: %v", err)
	}
	heard := c.Heard(4 * time.Second)
	if own, builtin := heardPrompt(t, heard, "not-available"), heardPrompt(t, heard, "leave-message"); own < 0.7 || builtin > 0.5 {
		t.Errorf("greeting: own %.2f, built-in %.2f", own, builtin)
	}
	hangup(t, c)
}
