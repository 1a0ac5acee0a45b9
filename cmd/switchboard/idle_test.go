package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Memory goes back once a burst of calls is over, and again when freed
// pages pile up; never while calls are up, and not for the live data that
// stays.
func TestReleaseWhenIdle(t *testing.T) {
	var calls, free, released atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		releaseWhenIdle(ctx, 5*time.Millisecond, calls.Load, func() uint64 { return uint64(free.Load()) }, func() {
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
	wait("once the burst is over", 1)
	time.Sleep(50 * time.Millisecond)
	if released.Load() != 1 {
		t.Errorf("released %d times while idle with nothing free", released.Load())
	}
	free.Store(2 * idleRelease) // the burst's SIP transactions expired
	wait("when freed pages pile up", 2)
	cancel()
	<-done
}
