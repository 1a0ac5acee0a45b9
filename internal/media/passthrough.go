package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Passthrough relays raw UDP datagrams between two legs without looking at
// them: the T.38 fax stream (UDPTL, RFC 3362) after a re-INVITE moved a
// call from audio to image. Each side has its own local port; datagrams
// from one side's far end go to the other side's far end. Like a Session it
// latches onto the address datagrams actually come from (NAT).
type Passthrough struct {
	alloc *PortAllocator
	sides [2]passSide
	last  atomic.Int64 // unix nanoseconds of the last datagram relayed
	wg    sync.WaitGroup
	once  sync.Once
}

type passSide struct {
	conn, spare *net.UDPConn // spare: the odd port of the pair, kept reserved
	port        int
	remote      atomic.Pointer[netip.AddrPort]
}

// NewPassthrough binds a port pair for each side and starts relaying; it
// runs until ctx ends or Close.
func (a *PortAllocator) NewPassthrough(ctx context.Context) (*Passthrough, error) {
	p := &Passthrough{alloc: a}
	for i := range p.sides {
		rc, cc, port, err := a.allocate()
		if err != nil {
			p.Close()
			return nil, err
		}
		p.sides[i].conn, p.sides[i].spare, p.sides[i].port = rc, cc, port
	}
	for from := range p.sides {
		p.wg.Add(1)
		go p.relay(Side(from))
	}
	go func() {
		<-ctx.Done()
		p.Close()
	}()
	return p, nil
}

// Port is the local port facing side s: what s's far end sends to.
func (p *Passthrough) Port(s Side) int { return p.sides[s].port }

// SetRemote sets where datagrams for side s go until one arrives from s.
func (p *Passthrough) SetRemote(s Side, addr netip.AddrPort) {
	addr = unmap(addr)
	p.sides[s].remote.Store(&addr)
}

// LastActivity is when a datagram was last relayed (zero before the first,
// and for a nil Passthrough: a call that never switched to T.38).
func (p *Passthrough) LastActivity() time.Time {
	if p == nil {
		return time.Time{}
	}
	if ns := p.last.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (p *Passthrough) relay(from Side) {
	defer p.wg.Done()
	in, out := &p.sides[from], &p.sides[from.Other()]
	buf := make([]byte, maxPacketSize)
	failures := 0
	for {
		n, src, err := in.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			failures++
			time.Sleep(readErrorPause(failures))
			continue
		}
		failures = 0
		src = unmap(src)
		if cur := in.remote.Load(); cur == nil || *cur != src {
			in.remote.Store(&src) // symmetric: answer where it comes from
		}
		dst := out.remote.Load()
		if dst == nil {
			continue
		}
		p.last.Store(time.Now().UnixNano())
		_, _ = out.conn.WriteToUDPAddrPort(buf[:n], *dst)
	}
}

// Close stops relaying and releases the ports. It is idempotent.
func (p *Passthrough) Close() error {
	p.once.Do(func() {
		for i := range p.sides {
			if s := &p.sides[i]; s.conn != nil {
				s.conn.Close()
				s.spare.Close()
			}
		}
		p.wg.Wait()
		for i := range p.sides {
			if s := &p.sides[i]; s.conn != nil {
				p.alloc.release(s.port)
			}
		}
	})
	return nil
}

// RelaySDP rewrites an SDP offer or answer from one leg for the other leg
// of a B2BUA: the origin becomes ours (ip, the session id and version we
// use towards that leg), the connection address ip, and each media
// stream's port becomes ports[media] ("audio", "image"), or 0 (declined)
// for a media type ports lacks; every other line passes unchanged. It
// returns the rewritten SDP and where the sender expects each of its
// streams ("image" -> its UDPTL address). It works on lines rather than
// through pion/sdp, which does not know m=image (T.38, RFC 3362).
// Errors wrap ErrMalformedSDP.
func RelaySDP(b []byte, ip netip.Addr, sessionID, version uint64, ports map[string]int) ([]byte, map[string]netip.AddrPort, error) {
	if len(b) > maxSDPSize {
		return nil, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformedSDP, len(b), maxSDPSize)
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != "v=0" {
		return nil, nil, fmt.Errorf("%w: does not start with v=0", ErrMalformedSDP)
	}
	ip = ip.Unmap()
	addrType := "IP4"
	if ip.Is6() {
		addrType = "IP6"
	}
	// Sections: the session (index 0) and one per m= line.
	type section struct {
		kind    string
		port    int
		conn    string // the c= address that applies
		hasConn bool
	}
	secs := []section{{}}
	for n, line := range lines {
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return nil, nil, fmt.Errorf("%w: line %d %q is not type=value", ErrMalformedSDP, n+1, line)
		}
		value := line[2:]
		switch line[0] {
		case 'm':
			f := strings.Fields(value)
			if len(f) < 3 {
				return nil, nil, fmt.Errorf("%w: line %d: m=%s", ErrMalformedSDP, n+1, value)
			}
			port, err := strconv.Atoi(strings.SplitN(f[1], "/", 2)[0])
			if err != nil || port < 0 || port > 65535 {
				return nil, nil, fmt.Errorf("%w: line %d: m=%s port %q", ErrMalformedSDP, n+1, f[0], f[1])
			}
			secs = append(secs, section{kind: f[0], port: port, conn: secs[0].conn, hasConn: secs[0].hasConn})
		case 'c':
			f := strings.Fields(value)
			if len(f) != 3 || f[0] != "IN" {
				return nil, nil, fmt.Errorf("%w: line %d: c=%s", ErrMalformedSDP, n+1, value)
			}
			cur := &secs[len(secs)-1]
			cur.conn, cur.hasConn = strings.SplitN(f[2], "/", 2)[0], true
		}
	}
	remotes := map[string]netip.AddrPort{}
	for i, sec := range secs[1:] {
		if sec.port == 0 {
			continue
		}
		if !sec.hasConn {
			return nil, nil, fmt.Errorf("%w: no c= connection address for m=%s (stream %d)", ErrMalformedSDP, sec.kind, i+1)
		}
		addr, err := netip.ParseAddr(sec.conn)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: c= address %q of m=%s is not an IP address", ErrMalformedSDP, sec.conn, sec.kind)
		}
		if _, seen := remotes[sec.kind]; !seen {
			remotes[sec.kind] = netip.AddrPortFrom(addr.Unmap(), uint16(sec.port))
		}
	}
	var out strings.Builder
	sec, wroteConn := 0, false
	for _, line := range lines {
		if line[0] == 't' && !wroteConn { // only media-level c= lines: one for the session
			fmt.Fprintf(&out, "c=IN %s %s\r\n", addrType, ip)
			wroteConn = true
		}
		switch line[0] {
		case 'o':
			fmt.Fprintf(&out, "o=switchboard %d %d IN %s %s\r\n", sessionID, version, addrType, ip)
			continue
		case 'c':
			if sec == 0 && !wroteConn {
				fmt.Fprintf(&out, "c=IN %s %s\r\n", addrType, ip)
				wroteConn = true
			}
			continue // media-level addresses are all ours: the session's c= says so
		case 'm':
			sec++
			f := strings.Fields(line[2:])
			if secs[sec].port != 0 {
				f[1] = strconv.Itoa(ports[secs[sec].kind])
			}
			line = "m=" + strings.Join(f, " ")
		}
		out.WriteString(line)
		out.WriteString("\r\n")
	}
	if !wroteConn {
		return nil, nil, fmt.Errorf("%w: no t= line", ErrMalformedSDP)
	}
	return []byte(out.String()), remotes, nil
}
