package events

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url          string
		allowPrivate bool
		want         string // "" to accept; else a part of the error
	}{
		{"http://93.184.216.34/hook", false, ""},
		{"https://93.184.216.34:8443/hook?x=1", false, ""},
		{"http://[2606:2800:220:1:248:1893:25c8:1946]/", false, ""},
		{"ftp://93.184.216.34/hook", false, "http or https"},
		{"mailto:a@b.c", false, "http or https"},
		{"http:///nohost", false, "no host"},
		{"https://", false, "no host"},
		{"http://user:pw@93.184.216.34/", false, "user information"},
		{"::not a url", false, "webhook URL"},
		{"http://127.0.0.1/", false, "loopback"},
		{"http://127.1.2.3:8080/", false, "loopback"},
		{"http://10.1.2.3/", false, "private"},
		{"http://172.16.0.1/", false, "private"},
		{"http://172.31.255.255/", false, "private"},
		{"http://172.32.0.1/", false, ""},
		{"http://192.168.1.10/", false, "private"},
		{"http://169.254.169.254/latest/meta-data", false, "link-local"},
		{"http://100.64.0.1/", false, "carrier-grade NAT"},
		{"http://0.0.0.0/", false, "unspecified"},
		{"http://224.0.0.1/", false, "multicast"},
		{"http://255.255.255.255/", false, "reserved"},
		{"http://[::1]/", false, "loopback"},
		{"http://[::]/", false, "unspecified"},
		{"http://[fc00::1]/", false, "private"},
		{"http://[fd12:3456::1]/", false, "private"},
		{"http://[fe80::1%25eth0]/", false, "link-local"},
		{"http://[ff02::1]/", false, "multicast"},
		{"http://[::ffff:127.0.0.1]/", false, "loopback"},
		{"http://[::ffff:10.0.0.1]/", false, "private"},
		{"http://[64:ff9b::a00:1]/", false, "private"}, // NAT64 of 10.0.0.1
		{"http://localhost:9000/", false, "loopback"},
		// --webhook-allow-private: any host, still http(s) only.
		{"http://127.0.0.1:9000/", true, ""},
		{"http://10.1.2.3/", true, ""},
		{"http://[::1]/", true, ""},
		{"http://localhost/", true, ""},
		{"ftp://127.0.0.1/", true, "http or https"},
	}
	for _, tt := range tests {
		err := CheckURL(tt.url, tt.allowPrivate)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckURL(%q, %v) = %v, want nil", tt.url, tt.allowPrivate, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckURL(%q, %v) = %v, want an error about %q", tt.url, tt.allowPrivate, err, tt.want)
		}
		if err != nil && (strings.Contains(tt.want, "private") || strings.Contains(tt.want, "loopback")) {
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("CheckURL(%q): %v is not ErrForbiddenAddress", tt.url, err)
			}
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2001:4860:4860::8888": true, "100.63.255.255": true, "100.128.0.0": true,
		"127.0.0.1": false, "10.255.255.255": false, "192.168.0.0": false, "169.254.0.1": false,
		"100.64.0.0": false, "100.127.255.255": false, "::1": false, "fe80::1": false, "fdff::1": false,
		"::ffff:192.168.1.1": false, "198.18.0.1": false,
	} {
		err := checkAddr(netip.MustParseAddr(addr))
		if (err == nil) != ok {
			t.Errorf("checkAddr(%s) = %v, want allowed %v", addr, err, ok)
		}
	}
}

// TestDialGuardRefusesLoopback: without AllowPrivate, the dispatcher's
// dialer refuses the receiver's 127.0.0.1 (whatever CheckURL said when the
// URL was set): the attempt logs why, and no request arrives.
func TestDialGuardRefusesLoopback(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		rcv := newReceiver(t, st)
		// A name for 127.0.0.1, as a rebinding DNS would give.
		webhook := func(a string) (string, bool) {
			return strings.Replace(rcv.url(a), "127.0.0.1", "localhost", 1), true
		}
		opts := fastOptions(webhook)
		opts.AllowPrivate = false
		d := NewDispatcher(st, opts)
		evs := queue(t, st, "acme", 1)
		start(t, d)
		rcv.wait(5*time.Second, "the refused attempt", func() bool {
			ds, err := st.Deliveries(t.Context(), "acme", 10)
			return err == nil && len(ds) > 0
		})
		ds, _ := st.Deliveries(t.Context(), "acme", 10)
		a := ds[len(ds)-1]
		if a.EventID != evs[0].ID || a.No != 1 || a.Status != 0 || !strings.Contains(a.Error, "loopback") ||
			!strings.Contains(a.Error, ErrForbiddenAddress.Error()) {
			t.Fatalf("first attempt = %+v, want a refusal of a loopback address", a)
		}
		if n := rcv.total(); n != 0 {
			t.Fatalf("the receiver got %d requests", n)
		}
		e, err := st.WebhookEvent(t.Context(), "acme", evs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.State != store.EventQueued || !strings.Contains(e.LastError, "loopback") {
			t.Fatalf("the event after a refusal: %+v, want queued for a retry", e)
		}
	})
}
