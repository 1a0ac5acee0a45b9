package events

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// blocked are the ranges a webhook may not reach, with why. IPv4-mapped
// and NAT64 addresses are checked by the IPv4 address they carry.
var blocked = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // and 255.255.255.255
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// checkAddr returns an ErrForbiddenAddress error if a webhook may not
// reach addr.
func checkAddr(addr netip.Addr) error {
	a := addr.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	a = a.WithZone("")
	for _, b := range blocked {
		if b.prefix.Contains(a) {
			return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, addr, b.what)
		}
	}
	return nil
}

// parseURL checks a webhook URL's form: http or https, with a host.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("webhook URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webhook URL %q: the scheme must be http or https", raw)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("webhook URL %q has no host", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("webhook URL %q: user information is not allowed", raw)
	}
	return u, nil
}

// lookupTimeout bounds CheckURL's DNS lookup.
const lookupTimeout = 5 * time.Second

// CheckURL reports whether raw may be an account's webhook URL: http or
// https with a host and, unless allowPrivate, every address the host
// resolves to outside loopback, private (RFC 1918, fc00::/7), link-local,
// unspecified, multicast, CGNAT and other internal ranges. It is the check
// when a URL is set; the dispatcher checks each connection's address again
// when it dials, so a name that later resolves elsewhere (DNS rebinding)
// does not get through.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := parseURL(raw)
	if err != nil || allowPrivate {
		return err
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return checkAddr(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("webhook URL %q: %w", raw, err)
	}
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("webhook URL %q: %s resolves to %w", raw, host, err)
		}
	}
	return nil
}

// guardedDialer returns the dialer of the webhook client: with
// allowPrivate false it refuses, just before connecting, any address
// checkAddr refuses: whatever the name resolved to, and whatever a
// redirect or a proxy setting would have said.
func guardedDialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
			}
			a, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
			}
			return checkAddr(a)
		}
	}
	return d
}
