package security

import (
	"bytes"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// failregex is deploy/fail2ban/filter.d/switchboard.conf's, with <HOST>
// as fail2ban expands it for an address.
const failregex = `msg="security event" (?:\S+ )*?event=(?:auth_failure|lockout|ban|scanner_dropped|toll_fraud) source=(?P<host>[0-9a-fA-F.:]+)`

func TestLogFormatAndCounts(t *testing.T) {
	var buf bytes.Buffer
	counts := map[Kind]int{}
	count := func(k Kind) { counts[k]++ }
	// The handler logs errors only: events are counted all the same.
	quiet := slog.New(Counting(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}), count))
	Log(quiet.With("node", "a"), Ban, netip.MustParseAddr("203.0.113.9"), "method", "INVITE")
	if buf.Len() != 0 || counts[Ban] != 1 {
		t.Fatalf("quiet logger wrote %q, counted %d bans", buf.String(), counts[Ban])
	}

	l := slog.New(Counting(slog.NewTextHandler(&buf, nil), count))
	Log(l, AuthFailure, netip.MustParseAddr("::ffff:198.51.100.7"), "method", "REGISTER", "user", "alice")
	Log(l.With("node", "b"), Lockout, netip.MustParseAddr("2001:db8::1"))
	Log(l, TollFraud, netip.Addr{}, "account", "acme")
	l.Warn("something else", "event", "ban")
	re := regexp.MustCompile(failregex)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"198.51.100.7", "2001:db8::1", "unknown"}
	for i, w := range want {
		m := re.FindStringSubmatch(lines[i])
		if w == "unknown" {
			if m != nil {
				t.Errorf("filter matched an event without an address: %q", lines[i])
			}
			continue
		}
		if m == nil || m[1] != w {
			t.Errorf("line %q: filter found %v, want %s", lines[i], m, w)
		}
	}
	if re.MatchString(lines[3]) {
		t.Errorf("filter matched a line that is no security event: %q", lines[3])
	}
	for kind, n := range map[Kind]int{AuthFailure: 1, Lockout: 1, Ban: 1, TollFraud: 1, ScannerDropped: 0} {
		if got := counts[kind]; got != n {
			t.Errorf("%s counted %d, want %d", kind, got, n)
		}
	}
}
