package registrar

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Lockouts is a set of source addresses locked out, each until a time: what
// [Guard.Locked] checks on every request, so it is memory only. A node adds
// its own lockouts and those it hears of from the other nodes. It is safe
// for concurrent use.
type Lockouts struct {
	max int

	mu        sync.RWMutex
	until     map[netip.Addr]time.Time
	lastSweep time.Time
}

// NewLockouts returns an empty set that sweeps out ended lockouts when it
// holds max (default 65536).
func NewLockouts(max int) *Lockouts {
	if max <= 0 {
		max = 65536
	}
	return &Lockouts{max: max, until: make(map[netip.Addr]time.Time)}
}

// Lock locks ip out until until; a lockout already longer stays.
func (l *Lockouts) Lock(ip netip.Addr, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.until[ip]; ok && !cur.Before(until) {
		return
	}
	// Each lockout took MaxFailures failures, so the set grows slowly; when
	// full, at most once a second, the ended ones go. Live ones are kept
	// beyond max: dropping one would let its source guess again.
	if now := time.Now(); len(l.until) >= l.max && now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		l.sweep(now)
	}
	l.until[ip] = until
}

// Locked reports whether ip is locked out at now.
func (l *Lockouts) Locked(ip netip.Addr, now time.Time) bool {
	l.mu.RLock()
	until, ok := l.until[ip]
	l.mu.RUnlock()
	return ok && now.Before(until)
}

// Sweep forgets the lockouts that ended by now.
func (l *Lockouts) Sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
}

func (l *Lockouts) sweep(now time.Time) {
	for ip, until := range l.until {
		if !now.Before(until) {
			delete(l.until, ip)
		}
	}
}

// Len returns the number of lockouts held, ended ones not yet swept
// included.
func (l *Lockouts) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.until)
}

// MemoryLedger is the [FailureLedger] of a node alone: the failures of each
// source in this process. It is safe for concurrent use.
type MemoryLedger struct {
	max int

	mu       sync.Mutex
	failures map[netip.Addr][]time.Time // oldest first
}

// NewMemoryLedger returns a ledger that tracks at most max sources (default
// 65536); when full, the sources whose failures are all old make room, or
// failing that some source.
func NewMemoryLedger(max int) *MemoryLedger {
	if max <= 0 {
		max = 65536
	}
	return &MemoryLedger{max: max, failures: make(map[netip.Addr][]time.Time)}
}

var _ FailureLedger = (*MemoryLedger)(nil)

// Fail implements [FailureLedger].
func (m *MemoryLedger) Fail(_ context.Context, ip netip.Addr, now, since time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failures[ip]
	if !ok && len(m.failures) >= m.max {
		m.evict(since)
	}
	cut := 0
	for cut < len(f) && !f[cut].After(since) {
		cut++
	}
	f = append(f[cut:], now)
	m.failures[ip] = f
	return len(f), nil
}

// Lock implements [FailureLedger]: the failures are spent.
func (m *MemoryLedger) Lock(_ context.Context, ip netip.Addr, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failures, ip)
	return nil
}

// evict makes room for one more source. m.mu must be held.
func (m *MemoryLedger) evict(since time.Time) {
	for ip, f := range m.failures {
		if !f[len(f)-1].After(since) {
			delete(m.failures, ip)
		}
	}
	if len(m.failures) < m.max {
		return
	}
	for ip := range m.failures { // map order is random
		delete(m.failures, ip)
		return
	}
}
