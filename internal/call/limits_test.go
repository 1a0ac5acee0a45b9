package call

import (
	"testing"
	"time"
)

// TestTollFraudLimits: the concurrent cap counts calls until they are
// released (twice is once), the hourly cap counts admissions in a sliding
// hour, refusals count for neither, 0 is no cap, and the accounts are
// counted apart and forgotten once nothing is counted.
func TestTollFraudLimits(t *testing.T) {
	var l outboundLimits
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	mustAdmit := func(account string, at time.Time, maxActive, maxPerHour int) func() {
		t.Helper()
		release, hit := l.admit(account, at, maxActive, maxPerHour)
		if hit != "" || release == nil {
			t.Fatalf("%s at %s: refused (%s), want admitted", account, at.Format(time.TimeOnly), hit)
		}
		return release
	}
	mustRefuse := func(account string, at time.Time, maxActive, maxPerHour int, want string) {
		t.Helper()
		if release, hit := l.admit(account, at, maxActive, maxPerHour); hit != want || release != nil {
			t.Fatalf("%s at %s: hit %q, want %q", account, at.Format(time.TimeOnly), hit, want)
		}
	}

	// Concurrent: 2 at once.
	a := mustAdmit("acme", t0, 2, 0)
	b := mustAdmit("acme", t0, 2, 0)
	mustRefuse("acme", t0, 2, 0, capConcurrent)
	mustAdmit("other", t0, 2, 0)() // another account's calls are its own
	a()
	a() // a second release changes nothing
	c := mustAdmit("acme", t0, 2, 0)
	mustRefuse("acme", t0, 2, 0, capConcurrent)
	b()
	c()
	if len(l.accounts) != 0 {
		t.Fatalf("accounts with nothing counted are kept: %v", l.accounts)
	}

	// Hourly: 3 in any hour, whether or not they ended.
	for i := range 3 {
		mustAdmit("acme", t0.Add(time.Duration(i)*10*time.Minute), 0, 3)()
	}
	mustRefuse("acme", t0.Add(30*time.Minute), 0, 3, capHourly)
	mustRefuse("acme", t0.Add(59*time.Minute), 0, 3, capHourly) // the refusals did not count
	mustAdmit("acme", t0.Add(60*time.Minute), 0, 3)()           // the first is an hour old
	mustRefuse("acme", t0.Add(61*time.Minute), 0, 3, capHourly)
	mustAdmit("acme", t0.Add(2*time.Hour), 0, 3)()

	// Both caps: the concurrent one is checked first; 0 is no cap.
	l = outboundLimits{}
	r := mustAdmit("acme", t0, 1, 1)
	mustRefuse("acme", t0, 1, 1, capConcurrent)
	r()
	mustRefuse("acme", t0, 1, 1, capHourly)
	for range 100 {
		mustAdmit("acme", t0, 0, 0)
	}
}
