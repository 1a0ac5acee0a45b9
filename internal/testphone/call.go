package testphone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/media"
)

// Direction says who placed a call.
type Direction int

// Directions of a Call.
const (
	// Outbound calls were placed by this phone (Dial, StartCall).
	Outbound Direction = iota
	// Inbound calls were received by this phone (Incoming).
	Inbound
)

func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// EndReason says why a call ended.
type EndReason string

// End reasons.
const (
	// EndNone: the call has not ended.
	EndNone EndReason = ""
	// EndHangup: this phone hung up (BYE sent).
	EndHangup EndReason = "hangup"
	// EndRemoteHangup: the far end hung up (BYE received).
	EndRemoteHangup EndReason = "remote-hangup"
	// EndCanceled: the INVITE was cancelled before it was answered, by
	// this phone (outbound) or by the caller (inbound).
	EndCanceled EndReason = "canceled"
	// EndRejected: the INVITE got a final non-2xx response (Status).
	EndRejected EndReason = "rejected"
	// EndClosed: the phone was closed.
	EndClosed EndReason = "closed"
	// EndError: a SIP or media failure (Err says which).
	EndError EndReason = "error"
)

// DialOptions are the options of Dial and StartCall (and SendMessage: From
// and Headers).
type DialOptions struct {
	// FromUser is the user part of From (default Config.User), e.g. the
	// caller's number when the phone plays a carrier.
	FromUser string
	// FromDisplay is the display name of From.
	FromDisplay string
	// FromHost is the host of From (default Config.Domain).
	FromHost string
	// Headers are added to the request (in name order).
	Headers map[string]string
	// Play is what to send once answered (default silence).
	Play media.Source
	// Codecs to offer, in order (default PCMU, PCMA); telephone-event 101
	// is always offered.
	Codecs []media.Codec
	// NoAuth: do not answer digest challenges (the 401/407 ends the call).
	NoAuth bool
}

func (o DialOptions) headers() []sip.Header {
	var hs []sip.Header
	for _, name := range slices.Sorted(maps.Keys(o.Headers)) {
		hs = append(hs, sip.NewHeader(name, o.Headers[name]))
	}
	return hs
}

// decision is what an inbound call's owner is told to do.
type decision struct{ code int }

// Call is one call of a Phone, inbound or outbound. Its methods are safe
// for concurrent use.
type Call struct {
	p      *Phone
	dir    Direction
	key    string // dialogKey: Call-ID + local tag
	callID string
	log    *slog.Logger

	ringing, answered, ended chan struct{}
	// responded is closed when an inbound call's 200 has been acknowledged
	// (or given up on): sipgo's dialog is not safe to send requests on
	// while RespondSDP still retransmits the 200.
	responded            chan struct{}
	ringOnce, answerOnce sync.Once
	control              chan decision // inbound, before the final response
	cancelInvite         context.CancelCauseFunc
	localHangup          atomic.Bool
	reinvites            atomic.Int32

	mu           sync.Mutex
	invite       *sip.Request
	response     *sip.Response // outbound: the final response
	dss          *sipgo.DialogServerSession
	dcs          *sipgo.DialogClientSession
	ua           *sipgo.DialogUA
	stream       *stream
	pendingPlay  media.Source
	local        media.LocalSDP
	codecs       []media.Codec
	awaitAnswer  bool // we offered in a 200 and the answer comes in the ACK
	earlyMedia   bool
	endReason    EndReason
	status       int
	err          error
	provisionals []int
}

func newCall(p *Phone, dir Direction, callID, localTag string) *Call {
	return &Call{
		p:         p,
		dir:       dir,
		key:       dialogKey(callID, localTag),
		callID:    callID,
		log:       p.log.With("call_id", callID, "dir", dir.String()),
		ringing:   make(chan struct{}),
		answered:  make(chan struct{}),
		ended:     make(chan struct{}),
		responded: make(chan struct{}),
		control:   make(chan decision, 1),
	}
}

// cleanupTimeout bounds waits for the SIP layer to finish a transaction.
func cleanupTimeout() time.Duration { return 64*sip.T1 + time.Second }

// Dial calls target (a sip: URI such as "sip:+34910000000@127.0.0.1:5060")
// and returns once the call is answered (nil error) or has failed: a non-2xx
// final response gives a *StatusError (see StatusCode). When ctx ends first
// the INVITE is cancelled (or the call hung up, if a 200 crossed the
// CANCEL) and ctx's error is returned. The Call is returned as well when the
// INVITE was sent, so a failed call can be inspected.
func (p *Phone) Dial(ctx context.Context, target string, opts DialOptions) (*Call, error) {
	c, err := p.StartCall(ctx, target, opts)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.answered:
		return c, nil
	case <-c.ended:
		return c, c.Err()
	case <-ctx.Done():
	}
	hctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout())
	defer cancel()
	_ = c.hangupCause(hctx, 0, context.Cause(ctx))
	return c, fmt.Errorf("testphone: dial %s: %w", target, ctx.Err())
}

// StartCall sends an INVITE to target and returns at once; watch Ringing,
// Answered and Ended, or Wait. Hangup before the answer sends CANCEL. ctx
// bounds sending the INVITE only.
func (p *Phone) StartCall(ctx context.Context, target string, opts DialOptions) (*Call, error) {
	uri, transport, err := p.parseTarget(target)
	if err != nil {
		return nil, err
	}
	if p.ctx.Err() != nil {
		return nil, ErrClosed
	}
	sess, err := p.ports.NewSession(media.SessionConfig{Logger: p.log})
	if err != nil {
		return nil, fmt.Errorf("testphone: rtp: %w", err)
	}
	local := media.LocalSDP{IP: p.ip, Port: sess.Port(), SessionID: sessionID(), SessionVersion: 1, Codecs: opts.Codecs}
	offer, err := local.Offer()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("testphone: sdp offer: %w", err)
	}

	req := sip.NewRequest(sip.INVITE, uri)
	req.SetTransport(strings.ToUpper(transport))
	fromTag := p.addFromTo(req, uri, opts)
	callID := sip.CallIDHeader(randomID() + "@" + p.ip.String())
	req.AppendHeader(&callID)
	for _, h := range opts.headers() {
		req.AppendHeader(h)
	}
	req.AppendHeader(sip.NewHeader("User-Agent", "switchboard-testphone/"+p.cfg.Name))
	req.AppendHeader(sip.NewHeader("Allow", allowed))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)

	c := newCall(p, Outbound, string(callID), fromTag)
	c.invite = req.Clone()
	c.local = local
	c.codecs = opts.Codecs
	c.ua = p.dialogUA(transport)
	c.stream = newStream(p.ctx, sess, c.log, opts.Play)
	inviteCtx, cancel := context.WithCancelCause(p.ctx)
	c.cancelInvite = cancel
	if !p.addCall(c) {
		cancel(ErrClosed)
		sess.Close()
		return nil, ErrClosed
	}
	d, err := c.ua.WriteInvite(ctx, req)
	if err != nil {
		cancel(err)
		c.finish(EndError, 0, err)
		return nil, fmt.Errorf("testphone: invite %s: %w", target, err)
	}
	c.mu.Lock()
	c.dcs = d
	c.mu.Unlock()
	noAuth := opts.NoAuth
	if !p.goTrack(func() { c.runOutbound(inviteCtx, d, noAuth) }) {
		cancel(ErrClosed)
		c.finish(EndClosed, 0, ErrClosed)
		return nil, ErrClosed
	}
	return c, nil
}

// addFromTo adds From (with a new tag, returned) and To for a request to uri.
func (p *Phone) addFromTo(req *sip.Request, uri sip.Uri, opts DialOptions) string {
	user, host := opts.FromUser, opts.FromHost
	if user == "" {
		user = p.cfg.User
	}
	if host == "" {
		host = p.cfg.Domain
	}
	tag := sip.GenerateTagN(16)
	from := &sip.FromHeader{DisplayName: opts.FromDisplay, Address: sip.Uri{Scheme: "sip", User: user, Host: host}, Params: sip.NewParams()}
	from.Params.Add("tag", tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: uri.User, Host: uri.Host, Port: uri.Port}, Params: sip.NewParams()})
	return tag
}

// runOutbound owns an outbound call until its final response.
func (c *Call) runOutbound(ctx context.Context, d *sipgo.DialogClientSession, noAuth bool) {
	opts := sipgo.AnswerOptions{OnResponse: c.onProgress}
	if !noAuth && c.p.cfg.Password != "" {
		opts.Username, opts.Password = c.p.authUser(), c.p.cfg.Password
	}
	err := d.WaitAnswer(ctx, opts)
	res := d.InviteResponse
	c.mu.Lock()
	c.invite = d.InviteRequest.Clone()
	c.response = res
	c.mu.Unlock()

	if res != nil && res.IsSuccess() && ctx.Err() != nil {
		// A CANCEL (or Close) crossed the 200: complete the dialog and end it.
		c.log.Debug("200 crossed cancel: ack and bye")
		c.ackAndBye(d)
		c.finish(EndCanceled, res.StatusCode, context.Cause(ctx))
		return
	}
	if err != nil {
		var de *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &de):
			c.finish(EndRejected, de.Res.StatusCode, statusError(sip.INVITE, de.Res))
		case ctx.Err() != nil:
			code := sip.StatusRequestTerminated
			if res != nil && res.StatusCode >= 300 {
				code = res.StatusCode
			}
			c.finish(EndCanceled, code, context.Cause(ctx))
		default:
			c.finish(EndError, 0, fmt.Errorf("testphone: invite: %w", err))
		}
		return
	}

	ackCtx, cancel := context.WithTimeout(c.p.ctx, cleanupTimeout())
	defer cancel()
	if err := d.Ack(ackCtx); err != nil {
		c.finish(EndError, res.StatusCode, fmt.Errorf("testphone: ack: %w", err))
		return
	}
	n, err := c.negotiate(res.Body())
	if err != nil {
		_ = d.Bye(ackCtx)
		c.finish(EndError, res.StatusCode, fmt.Errorf("testphone: sdp answer: %w", err))
		return
	}
	c.stream.configure(n)
	c.markAnswered(res.StatusCode)
	c.stream.startReceiving(c.p.goTrack)
	c.stream.startSending(c.p.goTrack)
}

// ackAndBye confirms and ends a dialog whose 200 is no longer wanted.
func (c *Call) ackAndBye(d *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout())
	defer cancel()
	if err := d.Ack(ctx); err != nil {
		c.log.Debug("ack failed", "error", err)
		return
	}
	if err := d.Bye(ctx); err != nil {
		c.log.Debug("bye failed", "error", err)
	}
}

// onProgress handles provisional responses of an outbound call (on the
// owner's goroutine): ringing, and early media from a 18x with SDP.
func (c *Call) onProgress(res *sip.Response) error {
	if !res.IsProvisional() || res.StatusCode == sip.StatusTrying {
		return nil
	}
	c.mu.Lock()
	c.provisionals = append(c.provisionals, res.StatusCode)
	c.mu.Unlock()
	c.ringOnce.Do(func() { close(c.ringing) })
	if len(res.Body()) == 0 {
		return nil
	}
	n, err := c.negotiate(res.Body())
	if err != nil {
		c.log.Debug("early media sdp ignored", "status", res.StatusCode, "error", err)
		return nil
	}
	c.mu.Lock()
	c.earlyMedia = true
	c.mu.Unlock()
	c.stream.configure(n)
	c.stream.startReceiving(c.p.goTrack)
	return nil
}

// negotiate parses a remote SDP and negotiates it within c.codecs.
func (c *Call) negotiate(body []byte) (media.Negotiation, error) {
	rm, err := media.ParseSDP(body)
	if err != nil {
		return media.Negotiation{}, err
	}
	c.mu.Lock()
	allow := c.codecs
	c.mu.Unlock()
	if len(allow) > 0 {
		for i := range rm.Formats {
			if !slices.Contains(allow, rm.Formats[i].Codec) {
				rm.Formats[i].Codec = media.CodecNone
			}
		}
	}
	return media.Negotiate(rm)
}

func sessionID() uint64 { return uint64(time.Now().UnixNano()/1000) & 0xFFFFFFFFFF }

// onInvite handles initial INVITEs (it owns the inbound call until the
// final response is sent and, for a 200, acknowledged) and re-INVITEs.
func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() == nil || req.CallID() == nil || req.From() == nil || req.CSeq() == nil {
		respond(tx, req, sip.StatusBadRequest, "Missing Mandatory Header")
		return
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		p.onReinvite(req, tx)
		return
	}
	if !p.track() {
		respond(tx, req, sip.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	defer p.wg.Done()
	received := req.Clone()
	ua := p.dialogUA(req.Transport())
	ds, err := ua.ReadInvite(req, tx)
	if err != nil {
		p.log.Debug("bad invite", "error", err)
		respond(tx, req, sip.StatusBadRequest, "Bad Request")
		return
	}
	toTag, _ := ds.InviteRequest.To().Params.Get("tag")
	c := newCall(p, Inbound, req.CallID().Value(), toTag)
	c.invite = received
	c.dss = ds
	c.ua = ua
	b := p.Behavior()
	c.codecs = b.Codecs
	if !p.addCall(c) {
		_ = ds.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	select {
	case p.incoming <- c:
	default:
		p.log.Warn("testphone: incoming call dropped from Incoming(), it is full", "call_id", c.callID)
	}
	c.runInbound(ds, b)
}

// runInbound rings, waits for the Behavior's timer or an Answer/Reject/
// Hangup, and sends the final response.
func (c *Call) runInbound(ds *sipgo.DialogServerSession, b Behavior) {
	immediate := b.AnswerAfter <= 0 && (b.Mode == Busy || b.Mode == Reject)
	var sdp []byte // sent in a 183 already
	switch {
	case b.EarlyMedia && len(c.Invite().Body()) > 0:
		var ok bool
		if sdp, ok = c.sendEarlyMedia(ds, b); !ok {
			return
		}
	case !b.NoRinging && !immediate:
		if err := ds.Respond(sip.StatusRinging, "Ringing", nil); err != nil {
			c.endFromDialog(ds, err)
			return
		}
		c.mu.Lock()
		c.provisionals = append(c.provisionals, sip.StatusRinging)
		c.mu.Unlock()
		c.ringOnce.Do(func() { close(c.ringing) })
	}
	var timer <-chan time.Time
	if b.Mode != NeverAnswer {
		t := time.NewTimer(b.AnswerAfter)
		defer t.Stop()
		timer = t.C
	}
	var d decision
	select {
	case <-timer:
		switch b.Mode {
		case Busy:
			d.code = sip.StatusBusyHere
		case Reject:
			d.code = b.Code
			if d.code == 0 {
				d.code = sip.StatusGlobalDecline
			}
		default:
			d.code = sip.StatusOK
		}
	case d = <-c.control:
	case <-ds.Context().Done():
		c.endFromDialog(ds, nil)
		return
	case <-c.p.ctx.Done():
		d.code = sip.StatusTemporarilyUnavailable
	}
	if d.code == sip.StatusOK {
		c.answerInbound(ds, b, sdp)
		return
	}
	if err := ds.Respond(d.code, reasonPhrase(d.code), nil); err != nil {
		c.endFromDialog(ds, err)
		return
	}
	c.finish(EndRejected, d.code, nil)
}

// endFromDialog ends an inbound call whose transaction ended before our
// final response: cancelled by the caller, or failed.
func (c *Call) endFromDialog(ds *sipgo.DialogServerSession, err error) {
	cause := context.Cause(ds.Context())
	switch {
	case errors.Is(cause, sip.ErrTransactionCanceled):
		c.finish(EndCanceled, sip.StatusRequestTerminated, nil)
	case c.p.ctx.Err() != nil:
		c.finish(EndClosed, 0, ErrClosed)
	default:
		if err == nil {
			err = cause
		}
		if err == nil {
			err = errors.New("invite transaction ended")
		}
		c.finish(EndError, 0, fmt.Errorf("testphone: %w", err))
	}
}

// prepareMedia creates the stream of an inbound call and our SDP: an
// answer to the INVITE's offer, or an offer of ours when it had none. On
// failure it sends the final response, ends the call and returns false.
func (c *Call) prepareMedia(ds *sipgo.DialogServerSession, b Behavior) ([]byte, bool) {
	sess, err := c.p.ports.NewSession(media.SessionConfig{Logger: c.log})
	if err != nil {
		_ = ds.Respond(sip.StatusInternalServerError, "No RTP Port", nil)
		c.finish(EndError, sip.StatusInternalServerError, fmt.Errorf("testphone: rtp: %w", err))
		return nil, false
	}
	c.mu.Lock()
	src := c.pendingPlay
	if src == nil && b.Play != nil {
		src = b.Play()
	}
	st := newStream(c.p.ctx, sess, c.log, src)
	c.stream = st
	c.local = media.LocalSDP{IP: c.p.ip, Port: sess.Port(), SessionID: sessionID(), SessionVersion: 1, Codecs: b.Codecs}
	local := c.local
	body := c.invite.Body()
	c.mu.Unlock()

	var sdp []byte
	if len(body) == 0 {
		sdp, err = local.Offer()
		c.mu.Lock()
		c.awaitAnswer = true
		c.mu.Unlock()
	} else {
		var n media.Negotiation
		if n, err = c.negotiate(body); err != nil {
			_ = ds.Respond(sip.StatusNotAcceptableHere, "Not Acceptable Here", nil)
			c.finish(EndRejected, sip.StatusNotAcceptableHere, fmt.Errorf("testphone: sdp offer: %w", err))
			return nil, false
		}
		st.configure(n)
		sdp, err = local.Answer(n)
	}
	if err != nil {
		_ = ds.Respond(sip.StatusInternalServerError, "Server Internal Error", nil)
		c.finish(EndError, sip.StatusInternalServerError, fmt.Errorf("testphone: sdp: %w", err))
		return nil, false
	}
	return sdp, true
}

// sendEarlyMedia sends 183 Session Progress with our SDP answer and starts
// sending and receiving before the call is answered. sdp is nil after a
// failure (the call has ended).
func (c *Call) sendEarlyMedia(ds *sipgo.DialogServerSession, b Behavior) (sdp []byte, ok bool) {
	sdp, ok = c.prepareMedia(ds, b)
	if !ok {
		return nil, false
	}
	if err := ds.Respond(sip.StatusSessionInProgress, "Session Progress", sdp, sip.NewHeader("Content-Type", "application/sdp")); err != nil {
		c.endFromDialog(ds, err)
		return nil, false
	}
	c.mu.Lock()
	c.provisionals = append(c.provisionals, sip.StatusSessionInProgress)
	c.earlyMedia = true
	st := c.stream
	c.mu.Unlock()
	c.ringOnce.Do(func() { close(c.ringing) })
	st.startReceiving(c.p.goTrack)
	st.startSending(c.p.goTrack)
	return sdp, true
}

// answerInbound sends the 200 with SDP (prepared now unless early media
// did already) and waits for the ACK.
func (c *Call) answerInbound(ds *sipgo.DialogServerSession, b Behavior, sdp []byte) {
	if sdp == nil {
		var ok bool
		if sdp, ok = c.prepareMedia(ds, b); !ok {
			return
		}
	}
	st := c.media()
	c.markAnswered(sip.StatusOK)
	st.startReceiving(c.p.goTrack)
	st.startSending(c.p.goTrack)
	// RespondSDP retransmits the 200 until the ACK arrives (or 64*T1).
	err := ds.RespondSDP(sdp)
	close(c.responded)
	if err != nil {
		select {
		case <-c.ended:
			return
		default:
		}
		if errors.Is(context.Cause(ds.Context()), sip.ErrTransactionCanceled) {
			c.finish(EndCanceled, sip.StatusRequestTerminated, nil)
			return
		}
		if ds.LoadState() == sip.DialogStateEnded {
			// A BYE overtook the ACK (sipgo handles messages
			// concurrently): onBye ends the call.
			return
		}
		c.log.Debug("200 not acknowledged", "error", err)
		ctx, cancel := context.WithTimeout(c.p.ctx, cleanupTimeout())
		defer cancel()
		_ = ds.Bye(ctx)
		c.finish(EndError, sip.StatusOK, fmt.Errorf("testphone: 200 OK: %w", err))
	}
}

func reasonPhrase(code int) string {
	switch code {
	case sip.StatusBusyHere:
		return "Busy Here"
	case sip.StatusGlobalDecline:
		return "Decline"
	case sip.StatusTemporarilyUnavailable:
		return "Temporarily Unavailable"
	case sip.StatusNotFound:
		return "Not Found"
	case sip.StatusForbidden:
		return "Forbidden"
	case sip.StatusServiceUnavailable:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	}
	return "Rejected"
}

// onReinvite answers a re-INVITE of a live call: new remote address,
// codec or direction (hold), answered 200 with our SDP.
func (p *Phone) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil || !c.IsAnswered() {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	c.reinvites.Add(1)
	c.mu.Lock()
	ds, st, ua := c.dss, c.stream, c.ua
	c.local.SessionVersion++
	local := c.local
	c.mu.Unlock()
	if ds != nil {
		// Track the caller's CSeq so its ACK matches; messages may be
		// reordered, so a failed check is not fatal.
		if err := ds.ReadRequest(req, tx); err != nil {
			c.log.Debug("re-invite cseq", "error", err)
		}
	}
	if fn := p.Behavior().OnReoffer; fn != nil && len(req.Body()) > 0 {
		code, answer := fn(req.Body())
		res := sip.NewResponseFromRequest(req, code, "Rejected", nil)
		if code == 200 {
			res = sip.NewSDPResponseFromRequest(req, answer)
		}
		res.AppendHeader(ua.ContactHDR.Clone())
		_ = tx.Respond(res)
		return
	}
	var sdp []byte
	var err error
	if body := req.Body(); len(body) > 0 {
		n, nerr := c.negotiate(body)
		if nerr != nil {
			respond(tx, req, sip.StatusNotAcceptableHere, "Not Acceptable Here")
			return
		}
		st.configure(n)
		sdp, err = local.Answer(n)
	} else {
		sdp, err = local.Offer()
		c.mu.Lock()
		c.awaitAnswer = true
		c.mu.Unlock()
	}
	if err != nil {
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	res := sip.NewSDPResponseFromRequest(req, sdp)
	res.AppendHeader(ua.ContactHDR.Clone())
	if err := tx.Respond(res); err != nil {
		c.log.Debug("re-invite response failed", "error", err)
	}
}

// onAck confirms an inbound dialog (unblocking the 200's retransmission
// loop) and takes the SDP answer of a delayed offer.
func (p *Phone) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil {
		return
	}
	c.mu.Lock()
	ds, st, await := c.dss, c.stream, c.awaitAnswer
	if len(req.Body()) > 0 {
		c.awaitAnswer = false
	}
	c.mu.Unlock()
	if await && len(req.Body()) > 0 && st != nil {
		if n, err := c.negotiate(req.Body()); err == nil {
			st.configure(n)
		} else {
			c.log.Debug("sdp in ack ignored", "error", err)
		}
	}
	if ds != nil {
		if err := ds.ReadAck(req, tx); err != nil {
			c.log.Debug("ack", "error", err)
		}
	}
}

// onBye ends a call on the far end's BYE.
func (p *Phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.lookup(req)
	if c == nil || !c.IsAnswered() {
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	c.mu.Lock()
	ds, dc := c.dss, c.dcs
	c.mu.Unlock()
	var err error
	if ds != nil {
		err = ds.ReadBye(req, tx)
	} else {
		err = dc.ReadBye(req, tx)
	}
	if err != nil {
		c.log.Debug("bye", "error", err)
		respond(tx, req, sip.StatusOK, "OK")
	}
	c.finish(EndRemoteHangup, 0, nil)
}

// markAnswered records the answer and wakes Answered.
func (c *Call) markAnswered(status int) {
	c.mu.Lock()
	c.status = status
	c.mu.Unlock()
	c.answerOnce.Do(func() { close(c.answered) })
}

// finish ends the call once: it records why, stops the media and forgets
// the dialog. Later calls do nothing.
func (c *Call) finish(reason EndReason, status int, err error) {
	if reason == EndRemoteHangup && c.localHangup.Load() {
		reason = EndHangup // our BYE and theirs crossed
	}
	if reason != EndRemoteHangup && c.p.isClosed() {
		reason = EndClosed
	}
	c.mu.Lock()
	if c.endReason != EndNone {
		c.mu.Unlock()
		return
	}
	c.endReason = reason
	if status != 0 {
		c.status = status
	}
	c.err = err
	st := c.stream
	c.mu.Unlock()
	c.p.removeCall(c)
	if c.cancelInvite != nil {
		c.cancelInvite(ErrCallEnded)
	}
	if st != nil {
		st.close()
	}
	close(c.ended)
	c.log.Debug("call ended", "reason", reason, "status", status, "error", err)
}

// Direction says whether the phone placed or received the call.
func (c *Call) Direction() Direction { return c.dir }

// CallID is the SIP Call-ID of the call.
func (c *Call) CallID() string { return c.callID }

// Invite returns the initial INVITE: as received (inbound, every header as
// it arrived) or as sent (outbound; after the final response, the last one
// sent, with credentials if it was challenged). Treat it as read-only.
func (c *Call) Invite() *sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.invite
}

// Header returns the value of the first header name of the INVITE, or "".
func (c *Call) Header(name string) string {
	if h := c.Invite().GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// Response returns the final response of an outbound call (nil before it,
// and for inbound calls).
func (c *Call) Response() *sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.response
}

// Provisionals returns the provisional status codes (above 100) received
// (outbound) or sent (inbound), in order.
func (c *Call) Provisionals() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.provisionals)
}

// EarlyMedia reports whether the call had early media: an outbound call
// got SDP in a provisional response (and so receives, say, a ringback tone
// before the answer); an inbound call sent 183 with SDP.
func (c *Call) EarlyMedia() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.earlyMedia
}

// Ringing is closed on the first 18x (received or sent).
func (c *Call) Ringing() <-chan struct{} { return c.ringing }

// Answered is closed when the call is answered (200 received, or sent).
func (c *Call) Answered() <-chan struct{} { return c.answered }

// Ended is closed when the call has ended; see EndReason.
func (c *Call) Ended() <-chan struct{} { return c.ended }

// IsAnswered reports whether the call was answered.
func (c *Call) IsAnswered() bool {
	select {
	case <-c.answered:
		return true
	default:
		return false
	}
}

// EndReason says why the call ended (EndNone while it has not).
func (c *Call) EndReason() EndReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason
}

// Status is the INVITE's final status code (0 before it): 200 when
// answered, else the rejection (486, 487...).
func (c *Call) Status() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Err is why an unsuccessful call failed: a *StatusError for a rejection
// received, the cancellation cause, or the SIP/media error.
func (c *Call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ReInvites counts the re-INVITEs received.
func (c *Call) ReInvites() int { return int(c.reinvites.Load()) }

// Wait waits until the call ends (or ctx does).
func (c *Call) Wait(ctx context.Context) error {
	select {
	case <-c.ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("testphone: waiting for call end: %w", ctx.Err())
	}
}

// Answer answers a ringing inbound call now (whatever the Behavior) and
// waits until the 200 is sent.
func (c *Call) Answer(ctx context.Context) error {
	return c.decide(ctx, sip.StatusOK)
}

// Reject answers a ringing inbound call with code (486, 603...) now.
func (c *Call) Reject(ctx context.Context, code int) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("testphone: reject with %d: not a final error status", code)
	}
	return c.decide(ctx, code)
}

func (c *Call) decide(ctx context.Context, code int) error {
	if c.dir != Inbound {
		return ErrWrongDirection
	}
	select {
	case c.control <- decision{code: code}:
	default: // a decision is already pending
	}
	select {
	case <-c.answered:
		if code == sip.StatusOK {
			return nil
		}
		return errors.New("testphone: call already answered")
	case <-c.ended:
		if code != sip.StatusOK {
			return nil
		}
		return ErrCallEnded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hangup ends the call: BYE when answered; CANCEL for an outbound call not
// answered yet; 603 Decline for a ringing inbound call. It returns once
// the call has ended (or ctx has), and nil if it had ended already.
func (c *Call) Hangup(ctx context.Context) error {
	return c.hangupCause(ctx, sip.StatusGlobalDecline, errHangup)
}

var errHangup = errors.New("testphone: hung up")

func (c *Call) hangupCause(ctx context.Context, rejectCode int, cause error) error {
	if rejectCode == 0 {
		rejectCode = sip.StatusGlobalDecline
	}
	for {
		select {
		case <-c.ended:
			return nil
		default:
		}
		if c.IsAnswered() {
			return c.bye(ctx)
		}
		if c.dir == Outbound {
			c.cancelInvite(cause)
		} else {
			select {
			case c.control <- decision{code: rejectCode}:
			default:
			}
		}
		select {
		case <-c.ended:
			return nil
		case <-c.answered:
			// The answer won the race: loop to send BYE. (When an
			// outbound owner sees the CANCEL after the 200 it sends ACK
			// and BYE itself and never marks the call answered.)
		case <-ctx.Done():
			return fmt.Errorf("testphone: hangup: %w", ctx.Err())
		}
	}
}

func (c *Call) bye(ctx context.Context) error {
	c.localHangup.Store(true)
	c.mu.Lock()
	ds, dc := c.dss, c.dcs
	c.mu.Unlock()
	var err error
	if dc != nil {
		err = dc.Bye(ctx)
	} else {
		err = ds.Bye(ctx)
	}
	c.finish(EndHangup, 0, nil)
	if err != nil {
		return fmt.Errorf("testphone: bye: %w", err)
	}
	return nil
}

// media returns the call's RTP stream, nil before an inbound call is
// answered.
func (c *Call) media() *stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stream
}

// Play switches what the call sends (from the next 20 ms frame); a finite
// source is followed by silence. Before an inbound call is answered it
// replaces the Behavior's Play.
func (c *Call) Play(src media.Source) {
	c.mu.Lock()
	st := c.stream
	if st == nil {
		c.pendingPlay = src
	}
	c.mu.Unlock()
	if st != nil {
		st.play(src)
	}
}

// DTMF timing of SendDTMF.
const (
	dtmfDuration = 100 * time.Millisecond
	dtmfGap      = 80 * time.Millisecond
)

// SendDTMF sends digits (0-9 * # A-D) as RFC 4733 telephone-events with
// the payload type the far end negotiated, 100 ms each with 80 ms between
// them, and returns when they have been sent.
func (c *Call) SendDTMF(ctx context.Context, digits string) error {
	return c.sendDTMF(ctx, digits, dtmfDuration, dtmfGap)
}

// FloodDTMF sends digits as fast as RFC 4733 allows: 40 ms each, back to
// back (a stuck key, a misbehaving phone, an attack).
func (c *Call) FloodDTMF(ctx context.Context, digits string) error {
	return c.sendDTMF(ctx, digits, 40*time.Millisecond, 0)
}

func (c *Call) sendDTMF(ctx context.Context, digits string, duration, gap time.Duration) error {
	for _, d := range digits {
		if _, ok := media.DigitToEvent(d); !ok {
			return fmt.Errorf("testphone: %q is not a DTMF digit", d)
		}
	}
	if !c.IsAnswered() {
		return ErrNotAnswered
	}
	st := c.media()
	for i, d := range digits {
		select {
		case <-c.ended:
			return ErrCallEnded
		default:
		}
		pt := st.telephoneEventPT()
		if pt == 0 {
			return ErrNoTelephoneEvent
		}
		if i > 0 && gap > 0 {
			if err := sleep(ctx, gap); err != nil {
				return err
			}
		}
		if err := media.SendDTMF(ctx, st.sess, pt, d, duration); err != nil {
			if errors.Is(err, media.ErrClosed) {
				return ErrCallEnded
			}
			return fmt.Errorf("testphone: send dtmf: %w", err)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// DTMFReceived returns the digits received as RFC 4733 events so far.
func (c *Call) DTMFReceived() string {
	if st := c.media(); st != nil {
		return st.dtmfReceived()
	}
	return ""
}

// Heard returns the audio (8 kHz linear) received in the last d, decoded
// with the negotiated codec, oldest first. Gaps in the stream are not
// filled.
func (c *Call) Heard(d time.Duration) []int16 {
	if st := c.media(); st != nil {
		return st.heard(d)
	}
	return nil
}

// Tone detection thresholds of HeardTone.
const (
	toneMinShare = 0.5 // of the energy of the window at the frequency
	toneMinRMS   = 50  // about -56 dBFS: quieter is silence
)

// HeardTone reports whether freq (Hz) dominated the audio received in the
// last d: at least half the energy of the window (Goertzel) and not silence.
// Use d of 100 ms or more to tell close frequencies apart.
func (c *Call) HeardTone(freq float64, d time.Duration) bool {
	return toneIn(c.Heard(d), freq)
}

func toneIn(samples []int16, freq float64) bool {
	if len(samples) < media.FrameSamples || media.RMS(samples) < toneMinRMS {
		return false
	}
	return media.DetectTone(samples, freq) >= toneMinShare
}

// DominantFrequency returns which of candidates dominates the audio
// received in the last d, false for silence or none (media.DominantFrequency).
func (c *Call) DominantFrequency(candidates []float64, d time.Duration) (float64, bool) {
	return media.DominantFrequency(c.Heard(d), candidates)
}

// WaitForTone polls HeardTone(freq, window) every 20 ms until it holds,
// the call ends or ctx ends.
func (c *Call) WaitForTone(ctx context.Context, freq float64, window time.Duration) error {
	return c.poll(ctx, fmt.Sprintf("%g Hz tone", freq), func() bool { return c.HeardTone(freq, window) })
}

// WaitForDTMF polls until DTMFReceived ends with digits, the call ends or
// ctx ends.
func (c *Call) WaitForDTMF(ctx context.Context, digits string) error {
	return c.poll(ctx, fmt.Sprintf("dtmf %q", digits), func() bool { return strings.HasSuffix(c.DTMFReceived(), digits) })
}

func (c *Call) poll(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testphone: waiting for %s: %w", what, ctx.Err())
		case <-c.ended:
			if cond() {
				return nil
			}
			return fmt.Errorf("testphone: waiting for %s: %w", what, ErrCallEnded)
		case <-t.C:
		}
	}
}

// RTPStats returns the RTP packets sent and received (0, 0 before there is
// a media session).
func (c *Call) RTPStats() (sent, received int) {
	st := c.media()
	if st == nil {
		return 0, 0
	}
	s := st.sess.Stats()
	return int(s.PacketsOut), int(s.PacketsIn)
}

// remoteTarget is where in-dialog requests go: the far end's Contact.
func (c *Call) remoteTarget() (sip.Uri, error) {
	c.mu.Lock()
	ds, dc, invite, res := c.dss, c.dcs, c.invite, c.response
	c.mu.Unlock()
	switch {
	case ds != nil && invite.Contact() != nil:
		return *invite.Contact().Address.Clone(), nil
	case dc != nil && res != nil && res.Contact() != nil:
		return *res.Contact().Address.Clone(), nil
	}
	return sip.Uri{}, errors.New("testphone: no remote contact")
}

// do sends an in-dialog request and returns its final response.
func (c *Call) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	c.mu.Lock()
	ds, dc := c.dss, c.dcs
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout())
	defer cancel()
	if dc != nil {
		return dc.Do(ctx, req)
	}
	select {
	case <-c.responded:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return ds.Do(ctx, req)
}

// writeRequest sends an in-dialog request without a transaction (ACK).
func (c *Call) writeRequest(req *sip.Request) error {
	c.mu.Lock()
	ds, dc := c.dss, c.dcs
	c.mu.Unlock()
	if dc != nil {
		return dc.WriteRequest(req)
	}
	return ds.WriteRequest(req)
}

// Hold puts the call on hold (on: a re-INVITE with a=sendonly, so the far
// end stops sending) or resumes it (a=sendrecv). It returns once the
// re-INVITE has been answered and acknowledged.
func (c *Call) Hold(ctx context.Context, on bool) error {
	dir := media.SendRecv
	if on {
		dir = media.SendOnly
	}
	return c.reinvite(ctx, dir)
}

// reinvite offers our SDP again with direction dir and applies the answer.
func (c *Call) reinvite(ctx context.Context, dir media.MediaDirection) error {
	if !c.IsAnswered() {
		return ErrNotAnswered
	}
	select {
	case <-c.ended:
		return ErrCallEnded
	default:
	}
	remote, err := c.remoteTarget()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.local.SessionVersion++
	c.local.Direction = dir
	local, st := c.local, c.stream
	c.mu.Unlock()
	offer, err := local.Offer()
	if err != nil {
		return fmt.Errorf("testphone: re-invite offer: %w", err)
	}
	req := sip.NewRequest(sip.INVITE, remote)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	res, err := c.do(ctx, req)
	if err != nil {
		return fmt.Errorf("testphone: re-invite: %w", err)
	}
	if !res.IsSuccess() {
		return statusError(sip.INVITE, res)
	}
	if err := c.writeRequest(sip.NewRequest(sip.ACK, remote)); err != nil {
		return fmt.Errorf("testphone: re-invite ack: %w", err)
	}
	n, err := c.negotiate(res.Body())
	if err != nil {
		return fmt.Errorf("testphone: re-invite answer: %w", err)
	}
	st.configure(n)
	return nil
}

// Reoffer sends a re-INVITE with body as its SDP offer (a T.38 switch, say),
// acknowledges a 2xx and returns the final response. The call's audio is
// left as it was.
func (c *Call) Reoffer(ctx context.Context, body []byte) (*sip.Response, error) {
	if !c.IsAnswered() {
		return nil, ErrNotAnswered
	}
	remote, err := c.remoteTarget()
	if err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.INVITE, remote)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("testphone: re-invite: %w", err)
	}
	if res.IsSuccess() {
		if err := c.writeRequest(sip.NewRequest(sip.ACK, remote)); err != nil {
			return res, fmt.Errorf("testphone: re-invite ack: %w", err)
		}
	}
	return res, nil
}

// Refer sends a REFER (blind transfer to target, a sip: URI or a number)
// within the answered call and returns the final status; a non-2xx status
// also comes back as a *StatusError.
func (c *Call) Refer(ctx context.Context, target string) (int, error) {
	if !c.IsAnswered() {
		return 0, ErrNotAnswered
	}
	remote, err := c.remoteTarget()
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(target, "sip:") && !strings.HasPrefix(target, "tel:") {
		target = "sip:" + target + "@" + remote.Host
	}
	c.mu.Lock()
	ua := c.ua
	c.mu.Unlock()
	req := sip.NewRequest(sip.REFER, remote)
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+target+">"))
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+ua.ContactHDR.Address.String()+">"))
	r, err := c.do(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("testphone: refer: %w", err)
	}
	if !r.IsSuccess() {
		return r.StatusCode, statusError(sip.REFER, r)
	}
	return r.StatusCode, nil
}

// SendInfoDTMF sends digits as SIP INFO requests (application/dtmf-relay,
// "Signal=5\r\nDuration=100"), the fallback of phones without RFC 4733, one
// request per digit with dtmfGap between them. A digit the far end does not
// accept comes back as a *StatusError.
func (c *Call) SendInfoDTMF(ctx context.Context, digits string) error {
	for i, d := range digits {
		if i > 0 {
			if err := sleep(ctx, dtmfGap); err != nil {
				return err
			}
		}
		body := fmt.Appendf(nil, "Signal=%c\r\nDuration=%d\r\n", d, dtmfDuration.Milliseconds())
		if _, err := c.SendInfo(ctx, "application/dtmf-relay", body); err != nil {
			return err
		}
	}
	return nil
}

// SendInfo sends one INFO request with a body within the answered call and
// returns the final status; a non-2xx status also comes back as a
// *StatusError.
func (c *Call) SendInfo(ctx context.Context, contentType string, body []byte) (int, error) {
	if !c.IsAnswered() {
		return 0, ErrNotAnswered
	}
	remote, err := c.remoteTarget()
	if err != nil {
		return 0, err
	}
	req := sip.NewRequest(sip.INFO, remote)
	req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	req.SetBody(body)
	r, err := c.do(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("testphone: info: %w", err)
	}
	if !r.IsSuccess() {
		return r.StatusCode, statusError(sip.INFO, r)
	}
	return r.StatusCode, nil
}
