package sipserver

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// TestRFC2543Requests: requests in the older RFC 2543 style — a Via with
// no branch, or a branch without the z9hG4bK magic cookie — get a proper
// answer over UDP and over TCP (RFC 3261 §17.2.3 matches their
// transactions by the request's own fields): OPTIONS 200, REGISTER the
// digest challenge, each with the Via sent.
func TestRFC2543Requests(t *testing.T) {
	w := newWorld(t)
	for _, network := range []string{"udp", "tcp"} {
		for _, via := range []string{"", ";branch=1234abcd"} {
			for method, want := range map[string]int{"OPTIONS": 200, "REGISTER": 401} {
				name := fmt.Sprintf("%s %s via%q", network, method, via)
				conn, err := net.Dial(network, w.h.addr)
				if err != nil {
					t.Fatal(err)
				}
				local := conn.LocalAddr().String()
				proto := strings.ToUpper(network)
				callID := fmt.Sprintf("old-%s-%s-%d", network, method, len(via))
				target, to := "sip:acme.test", "<sip:alice@acme.test>"
				if method == "OPTIONS" {
					target, to = "sip:"+w.h.addr, "<sip:"+w.h.addr+">"
				}
				msg := fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/%s %s%s\r\nFrom: <sip:alice@acme.test>;tag=old1\r\nTo: %s\r\n"+
					"Call-ID: %s\r\nCSeq: 1 %s\r\nContact: <sip:alice@%s>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
					method, target, proto, local, via, to, callID, method, local)
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				code, hdr, err := readResponse(conn, network)
				conn.Close()
				if err != nil {
					t.Errorf("%s: no answer: %v", name, err)
					continue
				}
				if code != want {
					t.Errorf("%s: %d, want %d", name, code, want)
				}
				if got := hdr.Get("Via"); !strings.HasPrefix(got, "SIP/2.0/"+proto+" "+local) || hdr.Get("Call-Id") != callID {
					t.Errorf("%s: answered with Via %q Call-ID %q", name, got, hdr.Get("Call-Id"))
				}
			}
		}
	}
}

// readResponse reads one SIP response from a datagram or a stream.
func readResponse(conn net.Conn, network string) (int, textproto.MIMEHeader, error) {
	var r *bufio.Reader
	if network == "udp" {
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		if err != nil {
			return 0, nil, err
		}
		r = bufio.NewReader(strings.NewReader(string(buf[:n])))
	} else {
		r = bufio.NewReader(conn)
	}
	tp := textproto.NewReader(r)
	line, err := tp.ReadLine()
	if err != nil {
		return 0, nil, err
	}
	var code int
	if _, err := fmt.Sscanf(line, "SIP/2.0 %d", &code); err != nil {
		return 0, nil, fmt.Errorf("status line %q", line)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return 0, nil, err
	}
	return code, hdr, nil
}
