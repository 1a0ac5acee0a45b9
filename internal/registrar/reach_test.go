package registrar

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestDetectNAT: a device is behind NAT when its Contact names an
// unroutable address other than the one the REGISTER came from, or its Via
// asked for rport and the source is not its sent-by.
func TestDetectNAT(t *testing.T) {
	via := func(host string, port int, rport bool) *sip.ViaHeader {
		v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: host, Port: port, Params: sip.NewParams()}
		if rport {
			v.Params.Add("rport", "")
		}
		return v
	}
	for _, tc := range []struct {
		name, contact, source string
		via                   *sip.ViaHeader
		want                  bool
	}{
		{"two sockets on one host (contact port differs)", "sip:alice@127.0.0.1:25074", "127.0.0.1:25076", via("127.0.0.1", 25076, false), false},
		{"two sockets, rport, Via as sent", "sip:alice@127.0.0.1:25074", "127.0.0.1:25076", via("127.0.0.1", 25076, true), false},
		{"public contact, public source, no rport", "sip:alice@203.0.114.7:5060", "198.51.101.9:5060", via("203.0.114.7", 5060, false), false},
		{"private contact behind a NAT's public source", "sip:alice@192.168.1.20:5060", "198.51.101.9:40123", via("192.168.1.20", 5060, false), true},
		{"CGNAT contact", "sip:alice@100.64.3.4:5060", "198.51.101.9:40123", nil, true},
		{"link-local contact", "sip:alice@[fe80::1]:5060", "[2001:4860::1]:5060", nil, true},
		{"private contact that is the source itself (a LAN)", "sip:alice@10.0.0.5:5062", "10.0.0.5:5060", via("10.0.0.5", 5060, false), false},
		{"rport and the source port rewritten", "sip:alice@203.0.114.7:5060", "203.0.114.7:61000", via("203.0.114.7", 5060, true), true},
		{"rport and another source address", "sip:alice@203.0.114.7:5060", "198.51.101.9:5060", via("203.0.114.7", 5060, true), true},
		{"rport, Via without a port means 5060", "sip:alice@203.0.114.7", "203.0.114.7:5060", via("203.0.114.7", 0, true), false},
		{"a contact by name", "sip:alice@phone.example.com:5060", "203.0.114.7:5060", nil, false},
		{"an unparsable source", "sip:alice@127.0.0.1:5060", "nowhere", nil, true},
		{"an unparsable contact", "alice at home", "127.0.0.1:5060", nil, true},
	} {
		if got := detectNAT(tc.contact, tc.source, tc.via); got != tc.want {
			t.Errorf("%s: detectNAT = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDestination: where requests to a binding go.
func TestDestination(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Contact
		want string
	}{
		{"UDP, no NAT: the Contact", Contact{URI: "sip:alice@127.0.0.1:25074", Source: "127.0.0.1:25076", Transport: "UDP"}, "127.0.0.1:25074"},
		{"the Contact without a port", Contact{URI: "sip:alice@203.0.114.7", Source: "203.0.114.7:5062", Transport: "UDP"}, "203.0.114.7:5060"},
		{"sips without a port", Contact{URI: "sips:alice@203.0.114.7", Source: "203.0.114.7:40000", Transport: "UDP"}, "203.0.114.7:5061"},
		{"behind NAT: the source", Contact{URI: "sip:alice@192.168.1.20:5060", Source: "198.51.101.9:40123", Transport: "UDP", NAT: true}, "198.51.101.9:40123"},
		{"over TCP: back over its connection", Contact{URI: "sip:alice@127.0.0.1:5062;transport=tcp", Source: "127.0.0.1:41000", Transport: "TCP"}, "127.0.0.1:41000"},
		{"over TLS", Contact{URI: "sips:alice@127.0.0.1:5063", Source: "127.0.0.1:41001", Transport: "tls"}, "127.0.0.1:41001"},
		{"a Path: its first hop", Contact{URI: "sip:alice@192.168.1.20:5060", Source: "127.0.0.5:5060", Transport: "UDP", NAT: true,
			Path: []string{"<sip:127.0.0.5:5070;lr>", "<sip:10.9.9.9;lr>"}}, "127.0.0.5:5070"},
		{"a Path hop by name: the next rule", Contact{URI: "sip:alice@127.0.0.1:5080", Source: "127.0.0.1:5081", Transport: "UDP",
			Path: []string{"<sip:proxy.example.com;lr>"}}, "127.0.0.1:5080"},
		{"a Contact by name: the source", Contact{URI: "sip:alice@phone.example.com", Source: "203.0.114.7:5060", Transport: "UDP"}, "203.0.114.7:5060"},
	} {
		if got := tc.c.Destination(); got != tc.want {
			t.Errorf("%s: Destination = %q, want %q", tc.name, got, tc.want)
		}
	}
	// The request carries the path as its route.
	c := Contact{URI: "sip:alice@192.168.1.20:5060", Source: "127.0.0.5:5060", Path: []string{"<sip:127.0.0.5:5070;lr>", "<sip:10.9.9.9;lr>"}}
	req, err := c.NewRequest(sip.MESSAGE)
	if err != nil {
		t.Fatal(err)
	}
	if req.Destination() != "127.0.0.5:5070" {
		t.Errorf("destination %q", req.Destination())
	}
	var route []string
	for _, h := range req.GetHeaders("Route") {
		route = append(route, h.Value())
	}
	if len(route) != 2 || route[0] != "<sip:127.0.0.5:5070;lr>" || route[1] != "<sip:10.9.9.9;lr>" {
		t.Errorf("Route = %v", route)
	}
}

// TestRegisterPath: a REGISTER relayed with a Path (RFC 3327) stores it,
// echoes it in the 200 OK, and requests to the device go through it.
func TestRegisterPath(t *testing.T) {
	ts := startServer(t)
	p := newPhone(t, ts.UDP, "UDP")
	res := p.registerOK(p.register("alice", "Contact: <sip:alice@192.168.1.20:5060>",
		"Path: <sip:127.0.0.5:5070;lr>", "Path: <sip:10.9.9.9;lr>"), "alice", "s3cret")
	var echoed []string
	for _, h := range res.GetHeaders("Path") {
		echoed = append(echoed, h.Value())
	}
	if len(echoed) != 2 || echoed[0] != "<sip:127.0.0.5:5070;lr>" || echoed[1] != "<sip:10.9.9.9;lr>" {
		t.Errorf("200 OK Path = %v", echoed)
	}
	cs := lookup(t, ts)
	if len(cs) != 1 || len(cs[0].Path) != 2 || cs[0].Destination() != "127.0.0.5:5070" {
		t.Fatalf("binding %+v", cs)
	}
}
