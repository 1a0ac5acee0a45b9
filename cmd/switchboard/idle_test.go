package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Memory goes back once a burst of calls is over, again once the SIP
// transactions that outlive the calls have expired, and whenever freed
// pages pile up; never while calls are up, and not for the live data that
// stays.
func TestReleaseWhenIdle(t *testing.T) {
	var calls, free, released atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		releaseWhenIdle(ctx, 5*time.Millisecond, 200*time.Millisecond, calls.Load, func() uint64 { return uint64(free.Load()) }, func() {
			released.Add(1)
			free.Store(0)
		})
	}()
	wait := func(what string, n int64) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); released.Load() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: released %d times, want %d", what, released.Load(), n)
			}
		}
	}
	calls.Store(1000)
	free.Store(200 << 20)
	time.Sleep(50 * time.Millisecond)
	if released.Load() != 0 {
		t.Fatal("released while calls were up")
	}
	calls.Store(0)
	ended := time.Now()
	wait("once the burst is over", 1)
	wait("once the transactions have expired", 2) // nothing free: they are garbage only a GC finds
	// Settling counts from the last tick that saw calls, which a busy
	// scheduler can leave a little before they ended: half of it is the
	// bound that shows the release waited.
	if d := time.Since(ended); d < 100*time.Millisecond {
		t.Errorf("second release %v after the burst, long before it settled (200ms)", d)
	}
	time.Sleep(50 * time.Millisecond)
	if released.Load() != 2 {
		t.Errorf("released %d times while idle with nothing free", released.Load())
	}
	free.Store(2 * idleRelease)
	wait("when freed pages pile up", 3)
	cancel()
	<-done
}
