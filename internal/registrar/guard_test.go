package registrar

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestGuardLockout(t *testing.T) {
	clock := newFakeClock()
	g := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, Exempt: func(a netip.Addr) bool { return a == netip.MustParseAddr("10.0.0.1") }})
	ip := netip.MustParseAddr("203.0.113.7")
	other := netip.MustParseAddr("203.0.113.8")
	for i := 1; i < 5; i++ {
		if g.Fail(ip) {
			t.Fatalf("locked after %d failures", i)
		}
	}
	if g.Locked(ip) {
		t.Fatal("locked after 4 failures")
	}
	if !g.Fail(ip) || !g.Locked(ip) {
		t.Fatal("not locked after 5 failures")
	}
	if g.Locked(other) {
		t.Fatal("another address is locked")
	}
	clock.Advance(5*time.Minute - time.Second)
	if !g.Locked(ip) {
		t.Fatal("lock lifted early")
	}
	clock.Advance(time.Second)
	if g.Locked(ip) {
		t.Fatal("lock not lifted after 5 minutes")
	}
	// Failures spread over more than the window do not add up.
	for range 10 {
		if g.Fail(other) {
			t.Fatal("locked by slow failures")
		}
		clock.Advance(20 * time.Second)
	}
	// Exempt addresses are never locked.
	exempt := netip.MustParseAddr("10.0.0.1")
	for range 10 {
		g.Fail(exempt)
	}
	if g.Locked(exempt) {
		t.Fatal("exempt address locked")
	}
}

func TestGuardRateLimit(t *testing.T) {
	clock := newFakeClock()
	g := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, Rate: 20, Burst: 40})
	ip := netip.MustParseAddr("2001:db8::1")
	for i := range 40 {
		if !g.Allow(ip) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if g.Allow(ip) {
		t.Fatal("41st request allowed")
	}
	clock.Advance(100 * time.Millisecond) // 2 tokens
	if !g.Allow(ip) || !g.Allow(ip) || g.Allow(ip) {
		t.Fatal("refill is not 20/s")
	}
	if !g.Allow(netip.MustParseAddr("2001:db8::2")) {
		t.Fatal("another address is limited")
	}
	off := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, Rate: -1, MaxFailures: -1})
	for range 1000 {
		if !off.Allow(ip) {
			t.Fatal("disabled rate limit refused")
		}
		off.Fail(ip)
	}
	if off.Locked(ip) {
		t.Fatal("disabled lockout locked")
	}
}

func TestGuardBoundedMemory(t *testing.T) {
	clock := newFakeClock()
	g := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, MaxSources: 100})
	locked := netip.MustParseAddr("198.51.100.1")
	for range 5 {
		g.Fail(locked)
	}
	for i := range 5000 {
		g.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		if i%1000 == 0 {
			clock.Advance(3 * time.Second)
		}
	}
	if n := g.tracked(); n > 100 {
		t.Fatalf("tracking %d sources, max 100", n)
	}
	if !g.Locked(locked) {
		t.Fatal("a flood of new sources evicted a lockout")
	}
}

func TestGuardMiddleware(t *testing.T) {
	clock := newFakeClock()
	g := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, Rate: 1, Burst: 2})
	calls := 0
	h := g.Middleware(func(*sip.Request, sip.ServerTransaction) { calls++ })
	raw := "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
	serve := func(source string) *sip.Response {
		tx := newFakeTx()
		h(parseRequest(t, raw, source), tx)
		return tx.last()
	}
	// The packet source counts, not the Via.
	if serve("192.0.2.5:5060") != nil || serve("192.0.2.5:5061") != nil || calls != 2 {
		t.Fatalf("calls = %d", calls)
	}
	if serve("192.0.2.5:5062") != nil || calls != 2 {
		t.Fatal("over the limit: not dropped")
	}
	if serve("192.0.2.6:5060") != nil || calls != 3 {
		t.Fatal("another source limited")
	}
	clock.Advance(time.Minute)
	for range 5 {
		g.Fail(netip.MustParseAddr("192.0.2.5"))
	}
	if res := serve("192.0.2.5:5060"); res == nil || res.StatusCode != sip.StatusForbidden || calls != 3 {
		t.Fatalf("locked out source: %v (calls %d)", res, calls)
	}
}

func TestSourceAddr(t *testing.T) {
	for src, want := range map[string]string{
		"192.0.2.1:5060":          "192.0.2.1",
		"[2001:db8::1]:5060":      "2001:db8::1",
		"[::ffff:192.0.2.1]:5060": "192.0.2.1",
		"192.0.2.1":               "192.0.2.1",
		"garbage":                 "invalid IP",
	} {
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Host: "x"})
		req.SetSource(src)
		if got := SourceAddr(req).String(); got != want {
			t.Errorf("SourceAddr(%q) = %s, want %s", src, got, want)
		}
	}
}

var discard = slog.New(slog.DiscardHandler)
