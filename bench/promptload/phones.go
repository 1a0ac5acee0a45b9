package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/media"
)

var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// agent is one SIP user agent on its own UDP port of 127.0.0.1: the
// callers share one, the callees (Switchboard's trunk) another.
type agent struct {
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	dua  *sipgo.DialogUA
	conn net.PacketConn
	addr netip.AddrPort
	wg   sync.WaitGroup

	mu      sync.Mutex
	inbound map[string]*inCall  // callee side, by Call-ID
	out     map[string]*outCall // caller side, by Call-ID
}

func newAgent(user string) (*agent, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	addr := netip.AddrPortFrom(loopback, uint16(conn.LocalAddr().(*net.UDPAddr).Port))
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("switchboard-promptload"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		conn.Close()
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		conn.Close()
		return nil, err
	}
	// Requests leave from the listening socket, so Switchboard sees (and
	// answers) the agent's address.
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(loopback.String()),
		sipgo.WithClientConnectionAddr(addr.String()), sipgo.WithClientLogger(quiet))
	if err != nil {
		conn.Close()
		return nil, err
	}
	a := &agent{
		ua: ua, srv: srv, conn: conn, addr: addr,
		dua: &sipgo.DialogUA{Client: cli, ContactHDR: sip.ContactHeader{
			Address: sip.Uri{Scheme: "sip", User: user, Host: loopback.String(), Port: int(addr.Port())}}},
		inbound: map[string]*inCall{},
		out:     map[string]*outCall{},
	}
	return a, nil
}

// serve starts serving once every handler is registered (sipgo's handler
// map has no lock) and waits until the socket is in the transport pool.
func (a *agent) serve(ctx context.Context) error {
	a.wg.Add(1)
	go func() { defer a.wg.Done(); _ = a.srv.ServeUDP(a.conn) }()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		if c, err := a.ua.TransportLayer().GetConnection("udp", a.addr.String()); err == nil {
			c.TryClose()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sip listener %s not ready: %w", a.addr, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

func (a *agent) close() {
	a.ua.Close()
	a.conn.Close()
	a.wg.Wait()
}

// inCall is a call Switchboard placed to the trunk (the callee's side).
type inCall struct {
	ds      *sipgo.DialogServerSession
	leg     *leg
	ended   chan struct{}
	endOnce sync.Once
}

// callee answers every INVITE at once with a PCMU/PCMA answer pointing at
// a fresh leg, sends audio on it and keeps it until the BYE.
type callee struct {
	*agent
	snd      *sender
	capacity int
	mu       sync.Mutex
	legs     []*leg // every leg, for the analysis
	answered int
}

func newCallee(snd *sender, capacity int) (*callee, error) {
	a, err := newAgent("callee")
	if err != nil {
		return nil, err
	}
	c := &callee{agent: a, snd: snd, capacity: capacity}
	a.srv.OnInvite(c.onInvite)
	a.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		if ic := c.lookupIn(req); ic != nil {
			_ = ic.ds.ReadAck(req, tx)
		}
	})
	a.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		ic := c.lookupIn(req)
		if ic == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
			return
		}
		ic.leg.stop()
		if err := ic.ds.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		}
		ic.endOnce.Do(func() { close(ic.ended) })
	})
	return c, nil
}

func (a *agent) lookupIn(req *sip.Request) *inCall {
	if req.CallID() == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inbound[req.CallID().Value()]
}

func (c *callee) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)) // no re-INVITE expected
		return
	}
	ds, err := c.dua.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
		return
	}
	defer ds.Close()
	rm, err := media.ParseSDP(req.Body())
	var n media.Negotiation
	if err == nil {
		n, err = media.Negotiate(rm)
	}
	if err != nil {
		_ = ds.Respond(sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
		return
	}
	l, err := newLeg(c.capacity)
	if err != nil {
		_ = ds.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	l.codec, l.pt = n.Codec, n.PayloadType
	l.setRemote(n.Remote)
	answer, err := media.LocalSDP{IP: loopback, Port: l.port, SessionID: uint64(time.Now().UnixNano() / 1000), SessionVersion: 1}.Answer(n)
	if err != nil {
		l.close()
		_ = ds.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	ic := &inCall{ds: ds, leg: l, ended: make(chan struct{})}
	c.mu.Lock()
	c.legs = append(c.legs, l)
	c.inbound[req.CallID().Value()] = ic
	c.mu.Unlock()
	c.snd.add(l)
	defer c.snd.remove(l)
	// RespondSDP retransmits the 200 until the ACK arrives.
	if err := ds.RespondSDP(answer); err != nil {
		l.stop()
		return
	}
	c.mu.Lock()
	c.answered++
	c.mu.Unlock()
	select {
	case <-ic.ended:
	case <-ds.Context().Done():
		l.stop()
	}
}

// outCall is one call placed to Switchboard (the caller's side).
type outCall struct {
	leg      *leg
	dc       *sipgo.DialogClientSession
	invited  time.Time
	answered time.Time
	status   int
	err      error
	byeErr   error
}

// caller places calls to Switchboard's number.
type caller struct {
	*agent
	snd    *sender
	target sip.Uri
}

// newCaller returns a caller of number at Switchboard's SIP address sb.
func newCaller(snd *sender, sb netip.AddrPort, number string) (*caller, error) {
	a, err := newAgent("caller")
	if err != nil {
		return nil, err
	}
	c := &caller{agent: a, snd: snd, target: sip.Uri{Scheme: "sip", User: number, Host: sb.Addr().String(), Port: int(sb.Port())}}
	a.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		a.mu.Lock()
		oc := a.out[req.CallID().Value()]
		a.mu.Unlock()
		if oc == nil || oc.dc == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
			return
		}
		oc.leg.stop()
		if err := oc.dc.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		}
	})
	return c, nil
}

// call places one call, sends audio once answered (and calls onAnswer) and
// hangs up at end. The outCall is filled in whatever happens.
func (c *caller) call(ctx context.Context, i int, capacity int, end time.Time, onAnswer func()) *outCall {
	oc := &outCall{invited: time.Now()}
	l, err := newLeg(capacity)
	if err != nil {
		oc.err = err
		return oc
	}
	oc.leg = l
	offer, err := media.LocalSDP{IP: loopback, Port: l.port, SessionID: uint64(time.Now().UnixNano() / 1000), SessionVersion: 1,
		Codecs: []media.Codec{media.PCMA}}.Offer()
	if err != nil {
		oc.err = err
		return oc
	}
	req := sip.NewRequest(sip.INVITE, c.target)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: fmt.Sprintf("+3460%07d", i), Host: loopback.String()}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: c.target, Params: sip.NewParams()})
	callID := sip.CallIDHeader(fmt.Sprintf("promptload-%d-%s@127.0.0.1", i, sip.GenerateTagN(10)))
	req.AppendHeader(&callID)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second) // setup only
	defer cancel()
	dc, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		oc.err = fmt.Errorf("invite: %w", err)
		return oc
	}
	oc.dc = dc
	c.mu.Lock()
	c.out[string(callID)] = oc
	c.mu.Unlock()
	if err := dc.WaitAnswer(ictx, sipgo.AnswerOptions{}); err != nil {
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			oc.status = de.Res.StatusCode
		}
		oc.err = fmt.Errorf("invite: %w", err)
		return oc
	}
	oc.status = dc.InviteResponse.StatusCode
	oc.answered = time.Now()
	if err := dc.Ack(ictx); err != nil {
		oc.err = fmt.Errorf("ack: %w", err)
		return oc
	}
	rm, err := media.ParseSDP(dc.InviteResponse.Body())
	var n media.Negotiation
	if err == nil {
		n, err = media.Negotiate(rm)
	}
	if err != nil {
		oc.err = fmt.Errorf("sdp answer: %w", err)
		_ = dc.Bye(ictx)
		return oc
	}
	l.codec, l.pt = n.Codec, n.PayloadType
	l.setRemote(n.Remote)
	c.snd.add(l)
	defer c.snd.remove(l)
	onAnswer()
	select {
	case <-time.After(time.Until(end)):
	case <-dc.Context().Done():
		oc.err = errors.New("ended by Switchboard before the hangup")
	case <-ctx.Done():
	}
	l.stop()
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer bcancel()
	if dc.Context().Err() == nil {
		oc.byeErr = dc.Bye(bctx)
	}
	return oc
}
