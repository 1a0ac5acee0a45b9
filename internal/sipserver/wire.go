package sipserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// The wire screen sits between the sockets and sipgo. Requests that sipgo
// parses but RFC 3261 says a server must refuse before any handler reads
// them (RFC 4475's badvers, unkscm, mcl01, mismatch01, bext01) are answered
// here, statelessly, and never reach the transaction layer; and a message
// the parser panics on is dropped (a datagram) or ends its connection (a
// stream) instead of taking the process down on sipgo's read goroutine,
// where no handler's recover reaches. Everything else passes as it came.
//
// Each message is parsed here once more, with sipgo's own parser, so that
// both agree on where messages start and end; responses, which are never
// screened, are passed on after a look at their first bytes.

// screenPacketConn screens the datagrams read from c.
func screenPacketConn(c net.PacketConn, log *slog.Logger) net.PacketConn {
	return &screenedPacketConn{PacketConn: c, log: log}
}

// screenListener screens the streams accepted by l.
func screenListener(l net.Listener, log *slog.Logger) net.Listener {
	return &screenedListener{Listener: l, log: log}
}

// supportedExtensions are the option tags of Require that Switchboard
// implements (none: it sends no Supported); any other is answered 420.
var supportedExtensions = map[string]bool{}

// refusal is the stateless answer to a request the screen stops.
type refusal struct {
	code   int
	reason string
	hdrs   []sip.Header
}

// singleHeaders may appear once only (RFC 3261 §7.3.1): a second value
// leaves the message ambiguous, a second Content-Length its framing.
var singleHeaders = []string{"Content-Length", "CSeq", "Call-ID", "From", "To", "Max-Forwards"}

// screen says whether req must be refused before the transaction layer.
// A refused ACK gets a refusal of code 0: it is dropped, since no ACK is
// ever answered (RFC 3261 §17.1.1.3).
func screen(req *sip.Request) *refusal {
	r := check(req)
	if r != nil && req.IsAck() {
		return &refusal{reason: r.reason}
	}
	return r
}

// check is screen's refusal of req, ACK or not.
func check(req *sip.Request) *refusal {
	if req.SipVersion != "SIP/2.0" {
		return &refusal{code: 505, reason: "Version Not Supported"}
	}
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		return &refusal{code: 416, reason: "Unsupported URI Scheme"}
	}
	for _, name := range singleHeaders {
		if n := len(req.GetHeaders(name)); n > 1 {
			return &refusal{code: 400, reason: fmt.Sprintf("Bad Request (%d %s headers)", n, name)}
		}
	}
	// sipgo upper-cases the request line's method (RFC 3261 §7.1 says
	// methods are case-sensitive) but not CSeq's, so compare as it does.
	if cseq := req.CSeq(); cseq != nil && !strings.EqualFold(string(cseq.MethodName), string(req.Method)) {
		return &refusal{code: 400, reason: "Bad Request (CSeq method does not match)"}
	}
	if req.IsAck() || req.IsCancel() { // RFC 3261 §8.2.2.3: never 420 for these
		return nil
	}
	var unsupported []string
	for _, h := range req.GetHeaders("Require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			if tag = strings.TrimSpace(tag); tag != "" && !supportedExtensions[strings.ToLower(tag)] {
				unsupported = append(unsupported, tag)
			}
		}
	}
	if len(unsupported) > 0 {
		return &refusal{code: 420, reason: "Bad Extension", hdrs: []sip.Header{sip.NewHeader("Unsupported", strings.Join(unsupported, ", "))}}
	}
	return nil
}

// response builds the stateless answer to req.
func (r *refusal) response(req *sip.Request) []byte {
	res := sip.NewResponseFromRequest(req, r.code, r.reason, nil)
	res.SipVersion = "SIP/2.0"
	if to := res.To(); to != nil && req.Method == sip.INVITE {
		if _, ok := to.Params.Get("tag"); !ok {
			to.Params.Add("tag", "sb-screen") // RFC 3261 §8.2.6.2
		}
	}
	for _, h := range r.hdrs {
		res.AppendHeader(h)
	}
	return []byte(res.String())
}

// parse runs sipgo's parser on a datagram, turning a panic into an error.
func parse(data []byte) (msg sip.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, &parserPanic{p}
		}
	}()
	return sip.ParseMessage(data)
}

// parserPanic is a panic of sipgo's parser, recovered by the screen.
type parserPanic struct{ v any }

func (p *parserPanic) Error() string { return fmt.Sprintf("sip parser panicked: %v", p.v) }

var crlf = []byte("\r\n")

// headersDone reports whether the message at the start of p (after any
// CRLFs before it) has its blank line.
func headersDone(p []byte) bool {
	return bytes.Contains(bytes.TrimLeft(p, "\r\n"), []byte("\r\n\r\n"))
}

func isResponse(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, "\r\n"), []byte("SIP/"))
}

type screenedPacketConn struct {
	net.PacketConn
	log *slog.Logger
}

// ReadFrom returns the next datagram the screen lets through.
func (c *screenedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || n == 0 || isResponse(b[:n]) {
			return n, addr, err
		}
		msg, perr := parse(b[:n])
		var pp *parserPanic
		if errors.As(perr, &pp) {
			c.log.Warn("sip datagram dropped: the parser panicked", "source", addr.String(), "panic", pp.v)
			continue
		}
		req, ok := msg.(*sip.Request)
		if perr != nil || !ok {
			return n, addr, nil // sipgo drops what it cannot parse
		}
		r := screen(req)
		if r == nil {
			return n, addr, nil
		}
		req.SetSource(addr.String())
		if r.code == 0 {
			// dropped
		} else if _, err := c.PacketConn.WriteTo(r.response(req), udpReplyAddr(req, addr)); err != nil {
			c.log.Debug("sip screen answer not sent", "source", addr.String(), "error", err)
		}
		c.log.Info("sip request refused by the wire screen", "source", addr.String(), "method", string(req.Method), "code", r.code, "reason", r.reason)
	}
}

// udpReplyAddr is where a response to a datagram goes, as sipgo sends it:
// the source address, at the Via's port unless rport asks for the source
// port (RFC 3261 §18.2.2, RFC 3581 §4).
func udpReplyAddr(req *sip.Request, src net.Addr) net.Addr {
	ua, ok := src.(*net.UDPAddr)
	if !ok {
		return src
	}
	via := req.Via()
	if via == nil {
		return src
	}
	if rport, ok := via.Params.Get("rport"); ok && rport == "" {
		return src
	}
	port := via.Port
	if port == 0 {
		port = 5060
	}
	return &net.UDPAddr{IP: ua.IP, Port: port, Zone: ua.Zone}
}

type screenedListener struct {
	net.Listener
	log *slog.Logger
}

// Accept returns the next connection, screened.
func (l *screenedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &screenedConn{Conn: c, log: l.log, par: sip.NewParser().NewSIPStream()}, nil
}

// screenedConn hands sipgo the stream's bytes a whole message at a time,
// leaving out the messages the screen answers itself. After a framing
// error it passes everything on as it comes, for sipgo to close the
// connection as it does.
type screenedConn struct {
	net.Conn
	log *slog.Logger

	mu      sync.Mutex // Read runs on sipgo's reader; Write on any goroutine
	par     *sip.ParserStream
	pending []byte // bytes read, not yet part of a whole message
	fed     int    // how many of pending par has been given
	out     []byte // bytes for sipgo
	buf     [16384]byte
	through bool  // framing lost: no more screening
	err     error // the read error to return once out is drained
}

func (c *screenedConn) Read(b []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.Conn.Read(c.buf[:])
		if n > 0 {
			if ferr := c.feed(c.buf[:n]); ferr != nil {
				c.err = ferr
			}
		}
		if err != nil && c.err == nil {
			c.err = err
		}
	}
	n := min(len(b), len(c.out))
	if n < len(c.out) && n > 1 && c.out[n-2] == '\r' && c.out[n-1] == '\n' {
		n-- // sipgo's own parser has the same trouble with folding (feed)
	}
	n = copy(b, c.out[:n])
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// Write serialises the screen's answers with sipgo's writes.
func (c *screenedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(b)
}

// feed takes the bytes of one read; an error ends the stream.
func (c *screenedConn) feed(data []byte) (err error) {
	if c.through {
		c.out = append(c.out, data...)
		return nil
	}
	// A keep-alive between messages (RFC 5626 §3.5.1) goes through as it
	// is, so that sipgo still answers a double CRLF.
	if len(c.pending) == 0 && len(data) <= 4 && len(bytes.Trim(data, "\r\n")) == 0 {
		c.out = append(c.out, data...)
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			c.log.Warn("sip stream closed: the parser panicked", "source", c.RemoteAddr().String(), "panic", p)
			err = &parserPanic{p}
		}
	}()
	c.pending = append(c.pending, data...)
	release := false
	for len(c.pending) > 0 {
		// sipgo takes a header line as whole once its CRLF is in, before
		// it can see whether the next line continues it (RFC 3261 §7.3.1
		// folding), and a continuation that comes in the next read is then
		// a broken line: keep a final CRLF from it until it is known to be
		// the blank line or in the body of the message now being read.
		avail := len(c.pending)
		if !release && bytes.HasSuffix(c.pending, crlf) {
			avail -= 2
		}
		if avail > c.fed {
			_, _ = c.par.Write(c.pending[c.fed:avail])
			c.fed = avail
		}
		var msg sip.Message
		var n int
		perr := io.ErrUnexpectedEOF
		if c.fed > 0 {
			msg, n, perr = c.par.ParseNext()
		}
		if errors.Is(perr, io.ErrUnexpectedEOF) {
			if !release && c.fed < len(c.pending) && headersDone(c.pending) {
				release = true
				continue
			}
			return nil
		}
		release = false
		if perr != nil {
			c.through = true
			c.out = append(c.out, c.pending...)
			c.pending, c.fed = nil, 0
			return nil
		}
		raw := c.pending[:n]
		c.pending, c.fed = c.pending[n:], c.fed-n
		if req, ok := msg.(*sip.Request); ok {
			if r := screen(req); r != nil {
				req.SetSource(c.RemoteAddr().String())
				if r.code == 0 {
					// dropped
				} else if _, err := c.Write(r.response(req)); err != nil {
					return err
				}
				c.log.Info("sip request refused by the wire screen", "source", c.RemoteAddr().String(), "method", string(req.Method), "code", r.code, "reason", r.reason)
				continue
			}
		}
		c.out = append(c.out, raw...)
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return nil
}
