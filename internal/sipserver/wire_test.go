package sipserver

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestWireScreen(t *testing.T) {
	base := "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKw\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: w\r\nCSeq: 1 OPTIONS\r\n%sContent-Length: 0\r\n\r\n"
	for _, tc := range []struct {
		name, raw string
		code      int
	}{
		{"plain", strings.Replace(base, "%s", "", 1), 0},
		{"version", strings.Replace(strings.Replace(base, "%s", "", 1), "SIP/2.0\r\nVia", "SIP/7.0\r\nVia", 1), 505},
		{"scheme", strings.Replace(strings.Replace(base, "%s", "", 1), "sip:a@b SIP", "foo:bar SIP", 1), 416},
		{"two call-ids", strings.Replace(base, "%s", "Call-ID: v\r\n", 1), 400},
		{"cseq method", strings.Replace(strings.Replace(base, "%s", "", 1), "1 OPTIONS", "1 INVITE", 1), 400},
		{"require", strings.Replace(base, "%s", "Require: foo, 100rel\r\n", 1), 420},
		// svwar's broken ACK (CSeq: 1  ACK): dropped, never answered.
		{"ack", strings.NewReplacer("OPTIONS sip", "ACK sip", "1 OPTIONS", "1 INVITE").Replace(strings.Replace(base, "%s", "", 1)), -1},
	} {
		msg, err := sip.ParseMessage([]byte(tc.raw))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := screen(msg.(*sip.Request))
		switch {
		case tc.code == -1 && (r == nil || r.code != 0):
			t.Errorf("%s: %+v, want dropped", tc.name, r)
		case tc.code == -1:
		case tc.code == 0 && r != nil:
			t.Errorf("%s: refused %d", tc.name, r.code)
		case tc.code != 0 && (r == nil || r.code != tc.code):
			t.Errorf("%s: %+v, want %d", tc.name, r, tc.code)
		}
	}
}

// TestWireScreenStream: the screened stream gives sipgo whole messages,
// folded headers intact whatever the reads, and passes keep-alives.
func TestWireScreenStream(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := &screenedConn{Conn: b, log: slog.New(slog.NewTextHandler(io.Discard, nil)), par: sip.NewParser().NewSIPStream()}
	msg := "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKw\r\nFrom: \"A\r\n B\" <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: w\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	go func() {
		_, _ = a.Write([]byte("\r\n\r\n"))
		for i := range msg {
			_, _ = a.Write([]byte(msg[i : i+1]))
		}
	}()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "\r\n\r\n" {
		t.Fatalf("keep-alive: %q %v", buf[:n], err)
	}
	var got strings.Builder
	for got.Len() < len(msg) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v after %q", err, got.String())
		}
		got.Write(buf[:n])
	}
	if got.String() != msg {
		t.Fatalf("got %q", got.String())
	}
}

// FuzzWireScreen feeds arbitrary bytes to the screen, as a datagram and as
// a stream cut at an arbitrary point: no panic, and it never passes on
// more than it was given (it only ever drops messages). make fuzz should
// list ./internal/sipserver:FuzzWireScreen.
func FuzzWireScreen(f *testing.F) {
	f.Add([]byte("OPTIONS sip:a@b SIP/7.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"), 10)
	f.Add([]byte("INVITE sip:a@b SIP/2.0\r\nFrom: \"A\r\n B\" <sip:x@y>\r\nContent-Length: 2\r\n\r\nab\r\n\r\n"), 30)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		if msg, err := parse(data); err == nil {
			if req, ok := msg.(*sip.Request); ok {
				if r := screen(req); r != nil {
					_ = r.response(req)
				}
			}
		}
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() { _, _ = io.Copy(io.Discard, a) }() // the screen's answers
		c := &screenedConn{Conn: b, log: slog.New(slog.NewTextHandler(io.Discard, nil)), par: sip.NewParser().NewSIPStream()}
		cut = min(max(cut, 0), len(data))
		if err := c.feed(data[:cut]); err == nil {
			_ = c.feed(data[cut:])
		}
		if len(c.out) > len(data) {
			t.Fatalf("passed on %d bytes of %d", len(c.out), len(data))
		}
	})
}
