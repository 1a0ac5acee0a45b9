package call

import (
	"testing"
	"time"
)

// TestParkLotsAbandon: a call that leaves its orbit before it was answered
// frees the orbit, and a pickup that took the orbit first is told the
// parked caller hung up instead of waiting for a bridge forever.
func TestParkLotsAbandon(t *testing.T) {
	var lots parkLots
	orbit, slot, ok := lots.enter("acme", 701, 702)
	if !ok || orbit != "701" {
		t.Fatalf("enter: %q %v", orbit, ok)
	}
	lots.abandon("acme", orbit, slot)
	if lots.occupied("acme", "701") {
		t.Fatal("orbit 701 still occupied after abandon")
	}

	orbit, slot, _ = lots.enter("acme", 701, 702)
	pk := &pickup{by: "user:bob", done: make(chan Cause, 1)}
	if !lots.take("acme", orbit, pk) {
		t.Fatal("take: the orbit is empty")
	}
	lots.abandon("acme", orbit, slot)
	select {
	case cause := <-pk.done:
		if cause != "caller_bye" {
			t.Errorf("the picker was told %q, want caller_bye", cause)
		}
	case <-time.After(time.Second):
		t.Fatal("the picker was never told the parked caller left")
	}
	if next, _, _ := lots.enter("acme", 701, 702); next != "701" {
		t.Errorf("after the pickup, the next call waits in %q, want 701", next)
	}
}
