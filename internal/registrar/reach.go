package registrar

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Where a registered device is reached (docs/decisions.md, "Where a
// registered device is reached"): at its Contact, unless
//   - the REGISTER came with a Path (RFC 3327): through that path, its
//     first hop the destination and every hop a Route header;
//   - NAT was detected when it registered (Contact.NAT, detectNAT): at the
//     address the REGISTER came from;
//   - it registered over a connection (TCP, TLS, WS): back over it, at the
//     source (the transport reuses the connection while it is up).

// unroutable are the special-purpose ranges a device behind NAT puts in its
// Contact: private, shared (CGNAT), loopback, link-local, documentation,
// benchmarking, reserved.
var unroutable = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "::1/128", "::/128", "fc00::/7", "fe80::/10",
		"2001:db8::/32"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

func isUnroutable(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range unroutable {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// detectNAT reports whether a binding of contact, registered by a REGISTER
// from source (host:port) whose top Via is via, is behind NAT: the
// Contact's host is an unroutable address other than the source's, or the
// Via asked for rport (RFC 3581) and the source is not the Via's sent-by.
func detectNAT(contact, source string, via *sip.ViaHeader) bool {
	src, err := netip.ParseAddrPort(source)
	if err != nil {
		return true // nothing to compare: keep to the source
	}
	var uri sip.Uri
	if err := sip.ParseUri(contact, &uri); err != nil {
		return true
	}
	if h, err := netip.ParseAddr(strings.Trim(uri.Host, "[]")); err == nil && isUnroutable(h) && h.Unmap() != src.Addr().Unmap() {
		return true
	}
	if via != nil && via.Params != nil && via.Params.Has("rport") {
		sent, err := netip.ParseAddr(strings.Trim(via.Host, "[]"))
		port := via.Port
		if port == 0 {
			port = 5060
		}
		if err != nil || sent.Unmap() != src.Addr().Unmap() || uint16(port) != src.Port() {
			return true
		}
	}
	return false
}

// Destination is where requests to the device are sent (host:port): the
// first hop of its Path, or its source when it is behind NAT or on a
// connection, else its Contact's host and port.
func (c Contact) Destination() string {
	if len(c.Path) > 0 {
		if d := uriHostPort(c.Path[0]); d != "" {
			return d
		}
	}
	if c.NAT || c.Source != "" && isStream(c.Transport) {
		return c.Source
	}
	if d := uriHostPort(c.URI); d != "" {
		return d
	}
	return c.Source
}

func isStream(transport string) bool {
	switch strings.ToUpper(transport) {
	case "TCP", "TLS", "WS", "WSS":
		return true
	}
	return false
}

// uriHostPort is the host:port a SIP URI (optionally in <>) names, the
// port 5060 (5061 for sips) when it has none; "" when it does not parse or
// its host is a name (resolving it is left to the transport).
func uriHostPort(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	var uri sip.Uri
	if err := sip.ParseUri(s, &uri); err != nil {
		return ""
	}
	host := strings.Trim(uri.Host, "[]")
	if _, err := netip.ParseAddr(host); err != nil {
		return ""
	}
	port := uri.Port
	if port == 0 {
		port = 5060
		if uri.IsEncrypted() {
			port = 5061
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// pathOf is the REGISTER's Path header values (RFC 3327), in order, each
// one URI; nil without Path.
func pathOf(req *sip.Request) []string {
	var path []string
	for _, h := range req.GetHeaders("Path") {
		for _, v := range strings.Split(h.Value(), ",") {
			if v = strings.TrimSpace(v); v != "" {
				path = append(path, v)
			}
		}
	}
	return path
}
