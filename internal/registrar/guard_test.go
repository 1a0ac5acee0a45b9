package registrar

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestGuardLockout(t *testing.T) {
	clock := newFakeClock()
	g := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, Trunk: func(a netip.Addr) bool { return a == netip.MustParseAddr("10.0.0.1") }})
	ip := netip.MustParseAddr("203.0.113.7")
	other := netip.MustParseAddr("203.0.113.8")
	for i := 1; i < 5; i++ {
		if g.Fail(context.Background(), ip) {
			t.Fatalf("locked after %d failures", i)
		}
	}
	if g.Locked(ip) {
		t.Fatal("locked after 4 failures")
	}
	if !g.Fail(context.Background(), ip) || !g.Locked(ip) {
		t.Fatal("not locked after 5 failures")
	}
	if g.Locked(other) {
		t.Fatal("another address is locked")
	}
	clock.Advance(DefaultLockout - time.Second)
	if !g.Locked(ip) {
		t.Fatal("lock lifted early")
	}
	clock.Advance(time.Second)
	if g.Locked(ip) {
		t.Fatal("lock not lifted after 15 minutes")
	}
	// Failures spread over more than the window do not add up.
	for range 10 {
		if g.Fail(context.Background(), other) {
			t.Fatal("locked by slow failures")
		}
		clock.Advance(20 * time.Second)
	}
	// Trunks have a higher request limit, and the same lockout: a wrong
	// password counts from anywhere.
	exempt := netip.MustParseAddr("10.0.0.1")
	for range 5 {
		g.Fail(context.Background(), exempt)
	}
	if !g.Locked(exempt) {
		t.Fatal("exempt address not locked after 5 failures")
	}
}

// TestGuardFloodBan: more than 16 requests in 2 s ban a source for 5
// minutes, counted over a sliding window; a trunk's address has a higher
// limit, over which requests are dropped without a ban.
func TestGuardFloodBan(t *testing.T) {
	clock := newFakeClock()
	trunk := netip.MustParseAddr("10.0.0.1")
	var logs strings.Builder
	g := NewGuard(GuardConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: clock.Now, TrunkRequests: 100,
		Trunk: func(a netip.Addr) bool { return a == trunk }})
	ip := netip.MustParseAddr("2001:db8::1")
	// 7 a second is within the limit, for as long as it lasts.
	for i := range 40 {
		if !g.Allow(ip) {
			t.Fatalf("request %d at 7/s refused", i)
		}
		clock.Advance(time.Second / 7)
	}
	// A burst straddling two windows is seen as one: 1 request opens a
	// window, 9 come 1.5 s in, and half a second into the next window
	// three quarters of those 10 still count.
	clock.Advance(10 * time.Second)
	g.Allow(ip)
	clock.Advance(1500 * time.Millisecond)
	for range 9 {
		g.Allow(ip)
	}
	clock.Advance(time.Second)
	for i := range 8 {
		if !g.Allow(ip) {
			t.Fatalf("request %d of the next window refused", i+1)
		}
	}
	if g.Allow(ip) {
		t.Fatal("a 17th request in 2 s allowed")
	}
	if !strings.Contains(logs.String(), `msg="security event" event=ban source=2001:db8::1`) {
		t.Errorf("no ban event logged: %q", logs.String())
	}
	clock.Advance(5*time.Minute - time.Second)
	if g.Allow(ip) {
		t.Fatal("ban lifted early")
	}
	clock.Advance(time.Second)
	if !g.Allow(ip) {
		t.Fatal("ban not lifted after 5 minutes")
	}
	if !g.Allow(netip.MustParseAddr("2001:db8::2")) {
		t.Fatal("another address is limited")
	}
	// The trunk: 100 in the window, then its excess is dropped — only it.
	for i := range 100 {
		if !g.Allow(trunk) {
			t.Fatalf("trunk request %d refused", i)
		}
	}
	if g.Allow(trunk) {
		t.Fatal("trunk over its limit allowed")
	}
	clock.Advance(4 * time.Second)
	if !g.Allow(trunk) {
		t.Fatal("trunk banned")
	}

	off := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, FloodRequests: -1, MaxFailures: -1})
	for range 1000 {
		if !off.Allow(ip) {
			t.Fatal("disabled flood limit refused")
		}
		off.Fail(context.Background(), ip)
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
		g.Fail(context.Background(), locked)
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
	var logs strings.Builder
	g := NewGuard(GuardConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: clock.Now, FloodRequests: 2})
	calls := 0
	h := g.Middleware(func(*sip.Request, sip.ServerTransaction) { calls++ })
	const raw = "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>%s\nCall-ID: c\nCSeq: 1 OPTIONS\n%sContent-Length: 0\n\n"
	serve := func(source, toTag, extra string) *sip.Response {
		tx := newFakeTx()
		h(parseRequest(t, fmt.Sprintf(raw, toTag, extra), source), tx)
		return tx.last()
	}
	// The packet source counts, not the Via.
	if serve("192.0.2.5:5060", "", "") != nil || serve("192.0.2.5:5061", "", "") != nil || calls != 2 {
		t.Fatalf("calls = %d", calls)
	}
	// In-dialog requests are not counted.
	if serve("192.0.2.5:5061", ";tag=9", "") != nil || calls != 3 {
		t.Fatal("in-dialog request dropped")
	}
	if serve("192.0.2.5:5062", "", "") != nil || calls != 3 {
		t.Fatal("over the limit: not dropped")
	}
	if serve("192.0.2.5:5062", ";tag=9", "") != nil || calls != 3 {
		t.Fatal("banned source: in-dialog request not dropped")
	}
	if serve("192.0.2.6:5060", "", "") != nil || calls != 4 {
		t.Fatal("another source limited")
	}
	// Scanners are dropped in silence, logged once a minute.
	for _, ua := range []string{"friendly-scanner", "sipcli/v1.8", "VaxSIPUserAgent/3.1", "Sipvicious 0.3"} {
		if serve("192.0.2.7:5060", "", "User-Agent: "+ua+"\n") != nil || calls != 4 {
			t.Fatalf("%s: not dropped", ua)
		}
	}
	if n := strings.Count(logs.String(), "event=scanner_dropped source=192.0.2.7"); n != 1 {
		t.Errorf("%d scanner_dropped events, want 1: %s", n, logs.String())
	}
	if serve("192.0.2.8:5060", "", "User-Agent: Yealink SIP-T46S\n") != nil || calls != 5 {
		t.Fatal("a phone's User-Agent dropped")
	}
	clock.Advance(6 * time.Minute)
	for range 5 {
		g.Fail(context.Background(), netip.MustParseAddr("192.0.2.5"))
	}
	if res := serve("192.0.2.5:5060", "", ""); res == nil || res.StatusCode != sip.StatusForbidden || calls != 5 {
		t.Fatalf("locked out source: %v (calls %d)", res, calls)
	}
	if !strings.Contains(logs.String(), "event=lockout source=192.0.2.5") {
		t.Errorf("no lockout event: %s", logs.String())
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

// TestGuardSharedLedger: two guards (two nodes) on one ledger lock a source
// out together — failures on either count — and a lockout heard of from
// elsewhere, put in a guard's Lockouts, is enforced by it.
func TestGuardSharedLedger(t *testing.T) {
	clock := newFakeClock()
	ledger := NewMemoryLedger(0)
	locksA, locksB := NewLockouts(0), NewLockouts(0)
	a := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, Ledger: ledger, Lockouts: locksA})
	b := NewGuard(GuardConfig{Logger: discard, Now: clock.Now, Ledger: ledger, Lockouts: locksB})
	ip := netip.MustParseAddr("198.51.100.20")
	for i := range 4 {
		g := a
		if i%2 == 1 {
			g = b
		}
		if g.Fail(context.Background(), ip) {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	if !b.Fail(context.Background(), ip) || !b.Locked(ip) {
		t.Fatal("5th failure, on b: not locked")
	}
	if a.Locked(ip) {
		t.Fatal("a knows of b's lockout before it is told")
	}
	locksA.Lock(ip, clock.Now().Add(DefaultLockout)) // what the node's listener does
	if !a.Locked(ip) {
		t.Fatal("a does not enforce the lockout it was told of")
	}
	clock.Advance(DefaultLockout)
	if a.Locked(ip) || b.Locked(ip) {
		t.Fatal("lockout not over")
	}
	locksA.Sweep(clock.Now())
	if n := locksA.Len(); n != 0 {
		t.Fatalf("%d lockouts after the sweep", n)
	}
	// The lockout spent the failures.
	if a.Fail(context.Background(), ip) {
		t.Fatal("locked again by one failure")
	}
}
