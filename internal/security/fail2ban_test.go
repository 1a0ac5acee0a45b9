package security

import (
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestFail2banFilter runs fail2ban's own fail2ban-regex with
// deploy/fail2ban's filter over a log of every kind of event (and lines
// that are none, or are ignored): each event is matched, with its source
// as the host.
func TestFail2banFilter(t *testing.T) {
	bin, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("fail2ban-regex is not installed (apt-get install fail2ban): %v", err)
		}
		t.Skip("fail2ban-regex not installed")
	}
	logFile := filepath.Join(t.TempDir(), "switchboard.log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	l := slog.New(slog.NewTextHandler(f, nil))
	sources := []string{"203.0.113.9", "2001:db8::7", "198.51.100.4", "192.0.2.44", "203.0.113.10"}
	for i, kind := range Kinds {
		Log(l.With("node", "a"), kind, netip.MustParseAddr(sources[i]), "method", "REGISTER", "error", "wrong password")
	}
	// A user over the account's outbound cap is not the firewall's business.
	Log(l, TollFraud, netip.MustParseAddr("192.0.2.3"), "reason", "outbound_limit", "cap", "concurrent")
	l.Info("sip listening", "udp", "127.0.0.1:5060", "source", "192.0.2.1")
	l.Warn("sip auth: renewing nonce", "source", "192.0.2.2")
	f.Close()

	filter, err := filepath.Abs("../../deploy/fail2ban/filter.d/switchboard.conf")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--print-all-matched", logFile, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`Lines: 8 lines, 1 ignored, (\d+) matched, (\d+) missed`).FindSubmatch(out); m == nil ||
		string(m[1]) != "5" || string(m[2]) != "2" {
		t.Fatalf("want 5 of 8 lines matched, 1 ignored:\n%s", out)
	}
	for _, s := range sources {
		if !regexp.MustCompile(`source=` + regexp.QuoteMeta(s) + `\b`).Match(out) {
			t.Errorf("event from %s not among the matched lines:\n%s", s, out)
		}
	}
}
