package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/registrar"
)

// guardFlags adds serve's flags for the SIP guard (docs/security.md) to fs
// and returns the function that reads them once fs is parsed.
func guardFlags(fs *flag.FlagSet) func() (registrar.GuardConfig, error) {
	var g registrar.GuardConfig
	fs.IntVar(&g.FloodRequests, "flood-requests", 16, "new SIP requests one source may send in --flood-window; more ban it (negative: no limit)")
	fs.DurationVar(&g.FloodWindow, "flood-window", 2*time.Second, "the window of --flood-requests and --trunk-requests")
	fs.DurationVar(&g.BanDuration, "flood-ban", 5*time.Minute, "how long a flooding source is ignored")
	fs.IntVar(&g.TrunkRequests, "trunk-requests", 4000, "new SIP requests a trunk's address may send in --flood-window (more are dropped; trunks are never banned)")
	fs.IntVar(&g.MaxFailures, "lockout-failures", 5, "failed digest authentications within --lockout-window that lock a source out (negative: no lockout)")
	fs.DurationVar(&g.FailureWindow, "lockout-window", time.Minute, "the window of --lockout-failures")
	fs.DurationVar(&g.LockoutDuration, "lockout", registrar.DefaultLockout, "how long a locked-out source gets 403 to every request")
	scanners := fs.String("scanners", strings.Join(registrar.DefaultScanners, ","),
		`comma-separated User-Agent substrings whose requests are dropped unanswered ("" drops none)`)
	return func() (registrar.GuardConfig, error) {
		for name, v := range map[string]int{"--flood-requests": g.FloodRequests, "--trunk-requests": g.TrunkRequests, "--lockout-failures": g.MaxFailures} {
			if v == 0 {
				return g, fmt.Errorf("%w: %s: 0 would refuse everything; a negative value turns it off", errUsage, name)
			}
		}
		for name, d := range map[string]time.Duration{"--flood-window": g.FloodWindow, "--flood-ban": g.BanDuration,
			"--lockout-window": g.FailureWindow, "--lockout": g.LockoutDuration} {
			if d <= 0 {
				return g, fmt.Errorf("%w: %s: must be more than 0", errUsage, name)
			}
		}
		g.Scanners = []string{}
		for _, s := range strings.Split(*scanners, ",") {
			if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
				g.Scanners = append(g.Scanners, s)
			}
		}
		return g, nil
	}
}
