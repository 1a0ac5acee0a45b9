package main

import (
	"context"
	"runtime"
	"time"
)

// idleRelease is how much free heap memory the process may keep while no
// call is in progress before it is handed back to the OS.
const idleRelease = 32 << 20

// idleSettle is how long after the last call a burst's memory becomes
// garbage: sipgo keeps each call's SIP transactions 32 s after it ended
// (RFC 3261 timers J, L, M).
const idleSettle = 40 * time.Second

// releaseWhenIdle hands the memory of a burst of calls back to the OS once
// it is over: the Go runtime keeps the pages it grew to and its background
// scavenger returns them only slowly, so after a peak the process would
// hold its peak RSS for many minutes. On period ticks while active reports
// no call, release runs (serve passes debug.FreeOSMemory: a GC, then the
// free pages go back): on the first such tick after calls were up; on the
// first one settle after the last call, when the SIP transactions that
// outlive the calls have expired (an idle process allocates nothing, so
// without this no GC would find them garbage until the runtime's forced
// one, up to 2 minutes later); and whenever more than idleRelease of heap
// pages are free but still held.
func releaseWhenIdle(ctx context.Context, period, settle time.Duration, active func() int64, free func() uint64, release func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	var lastBusy time.Time
	owed := 0 // releases owed for the last burst: 2, then 1 once right after it
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		switch {
		case active() > 0:
			lastBusy, owed = now, 2
		case owed == 2, owed == 1 && now.Sub(lastBusy) >= settle:
			release()
			owed--
		case free() > idleRelease:
			release()
		}
	}
}

// freeHeap is heap memory the runtime holds but does not use.
func freeHeap() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapIdle - m.HeapReleased
}
