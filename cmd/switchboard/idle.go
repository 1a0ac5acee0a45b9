package main

import (
	"context"
	"runtime"
	"time"
)

// idleRelease is how much free heap memory the process may keep while no
// call is in progress before it is handed back to the OS.
const idleRelease = 32 << 20

// releaseWhenIdle hands the memory of a burst of calls back to the OS once
// it is over: the Go runtime keeps the pages it grew to and its background
// scavenger returns them only slowly, so after a peak the process would
// hold its peak RSS for many minutes. Every period while active reports no
// call, release runs (serve passes debug.FreeOSMemory: a GC, then the free
// pages go back) on the first such tick after calls were up, and again
// whenever more than idleRelease of heap pages are free but still held
// (SIP transactions outlive their calls by 32 s, so a burst's memory frees
// in steps).
func releaseWhenIdle(ctx context.Context, period time.Duration, active func() int64, free func() uint64, release func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	busy := false // calls were up since the last release
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if active() > 0 {
			busy = true
			continue
		}
		if busy || free() > idleRelease {
			release()
			busy = false
		}
	}
}

// freeHeap is heap memory the runtime holds but does not use.
func freeHeap() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapIdle - m.HeapReleased
}
