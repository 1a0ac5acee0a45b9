package registrar

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSippRegister registers with SIPp, a UA that is not sipgo, using its
// own digest implementation. sipp must be installed (apt-get install
// sip-tester); CI installs it.
func TestSippRegister(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		sipp = "/usr/bin/sipp"
		if _, err := os.Stat(sipp); err != nil {
			t.Fatalf("sipp is not installed (apt-get install sip-tester): %v", err)
		}
	}
	scenario, err := filepath.Abs("testdata/sipp/register.xml")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp,
		"-sf", scenario,
		"-m", "1",
		"-s", "alice",
		"-ap", "s3cret",
		"-key", "domain", testDomain,
		"-i", "127.0.0.1",
		"-t", "u1",
		"-nostdin",
		"-recv_timeout", "5000",
		"-timeout", "20s", "-timeout_error",
		ts.UDP,
	)
	cmd.Dir = t.TempDir()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sipp failed: %v\n%s", err, tail(string(out), 3000))
	}
	cs := lookup(t, ts)
	if len(cs) != 1 || !strings.HasPrefix(cs[0].URI, "sip:alice@127.0.0.1:") || cs[0].Source == "" {
		t.Fatalf("contacts after sipp = %+v", cs)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
