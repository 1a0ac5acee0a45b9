package call

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// Inbound is a new call as the SIP layer classified it.
type Inbound struct {
	Req  *sip.Request
	Tx   sip.ServerTransaction
	Snap *routing.Snapshot
	// Prompts are the account's prompts (nil: none loaded).
	Prompts Prompts
	// Route is set for a call to one of the account's numbers: the routing
	// decision of SPEC §3 is made here.
	Route *routing.Request
	// Target is set instead for a call from a registered user who dialled an
	// extension, a code or an external number; Trace says how it was resolved.
	Target string
	// Pickup is set instead when the user dialled a park orbit: the call
	// picks up the call waiting there.
	Pickup string
	// FromPeer marks a pickup another node sent on behalf of its user
	// (PeerPickup): the orbit is only looked for here, and the leg leaves
	// no record, event or live entry of its own (the user's call on the
	// other node has them).
	FromPeer   bool
	User       string // the registered user placing the call (user calls)
	CallerID   string // the caller's number as presented onwards (user calls)
	CallerName string
	Trace      []string
	// Source is the address the call came from as the SIP front saw it,
	// for security events (unset: the request's source).
	Source netip.Addr
}

// Prompts gives the audio of an account's prompts by name.
type Prompts interface {
	Source(name string, loop bool) (media.Source, error)
}

// call is the state of one call; only its own goroutine touches it.
type call struct {
	e    *Engine
	in   Inbound
	log  *slog.Logger
	rec  store.CallRecord
	dlg  *sipgo.DialogServerSession
	peer *peer // the caller's dialog as in-dialog requests find it
	sess *media.Session
	neg  media.Negotiation
	// number is the called number's configuration (nil for user calls).
	number   *config.Number
	callerID string // C as E.164 or "anonymous"
	name     string // computed caller name
	ringing  bool   // 180 sent to the caller
	// answer is our SDP answer to the caller, made once: the 183 of early
	// media and the 200 carry the same one.
	answer   []byte
	sdp      sdpOrigin // our o= line towards the caller
	answered bool      // the caller has our 200
	vars     variables // call variables: IVR input, the API
	early    *ringback // the ringing sound we play to the caller, if any
	recorder *recording
	cause    Cause // why the call ended, once it has
	// confirmed is closed once the caller acknowledged our 200, and then nil.
	confirmed chan struct{}
	// release counts the call out of its account's outbound calls (a
	// no-op for calls that are not counted).
	release func()
}

// Handle runs one inbound call. It must be called from the INVITE handler:
// sipgo ends the server transaction when the handler returns. It returns
// when the call ends, or earlier, once the caller has acknowledged our 200:
// the transaction needs the handler no longer, and the rest of the call goes
// on on the call's own goroutine.
//
// The call runs on a goroutine of its own rather than on the handler's so
// that its stack stays small for the whole of a bridged call: a goroutine's
// stack grows to the deepest point it reached (sipgo's frames below the
// handler plus our setup: 16 KiB) and shrinks only at a GC, which seldom
// runs while calls just relay RTP.
func (e *Engine) Handle(ctx context.Context, in Inbound) {
	if !e.admit() {
		_ = Respond(in.Tx, in.Req, ErrUnavailable)
		return
	}
	release, ok := e.outbound(in)
	if !ok {
		e.wg.Done()
		return
	}
	e.active.Add(1)
	confirmed := make(chan struct{})
	c := &call{e: e, in: in, confirmed: confirmed, release: release}
	done := make(chan struct{})
	go c.main(ctx, done)
	select {
	case <-done:
	case <-confirmed:
	}
}

// main runs the call to its end on its own goroutine and closes done.
func (c *call) main(ctx context.Context, done chan<- struct{}) {
	e, in := c.e, c.in
	defer close(done)
	defer func() { e.active.Add(-1); e.wg.Done() }()
	defer c.release() // an outbound call counts against its account's caps until here
	// What the SIP layer's recover caught while the call ran on the
	// handler's goroutine (a panic in finish, say) must not end the process.
	defer func() {
		if r := recover(); r != nil {
			e.cfg.Log.Error("call panicked", "panic", r)
		}
	}()
	c.rec = store.CallRecord{
		ID:      uuid.NewString(),
		Account: in.Snap.Account(),
		Start:   time.Now(),
		Trace:   append([]string(nil), in.Trace...),
		Node:    e.cfg.Node,
	}
	c.log = e.cfg.Log.With("call_id", c.rec.ID, "sip_call_id", callID(in.Req))
	lc := LiveCall{ID: c.rec.ID, Account: c.rec.Account, Caller: in.CallerID, Start: c.rec.Start, Node: e.cfg.Node}
	if in.Route != nil {
		lc.Number, lc.Caller = in.Route.Number, in.Route.Caller
	}
	if !in.FromPeer {
		e.live.Store(c.rec.ID, &live{LiveCall: lc, vars: &c.vars})
	}
	c.rec.Number, c.rec.Caller = lc.Number, lc.Caller // as received, until routed
	c.rec.Direction = store.DirectionInbound
	if in.Route == nil { // a user's call: the number is what they dialled
		c.rec.Number, c.rec.Direction = in.Target, store.DirectionInternal
		if t := in.Snap.Target(in.Target); t.Kind == routing.TargetNumber || t.Kind == routing.TargetSIP {
			c.rec.Direction = store.DirectionOutbound
		}
	}
	// The record is written when the call starts, so that a crash or the
	// loss of this node leaves it in the database, to be closed there.
	if err := c.records().StartCall(ctx, &c.rec); err != nil {
		c.log.Error("write call record", "err", err)
	}
	c.emit(EventStarted, "", "")
	defer c.finish()
	// Out of the live list before finish reports the end (call.completed):
	// whoever hears of the end no longer finds the call in progress.
	defer e.live.Delete(c.rec.ID)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("call panicked", "panic", r)
			c.cause = CauseInternalError
			if c.dlg != nil && c.dlg.LoadState() < sip.DialogStateEstablished {
				c.reject(errors.New("panic"))
			}
		}
	}()
	c.run(ctx)
}

// records is where the call's record goes: nowhere for a peer's pickup leg.
func (c *call) records() Records {
	if c.in.FromPeer {
		return noRecords{}
	}
	return c.e.cfg.Records
}

type noRecords struct{}

func (noRecords) StartCall(context.Context, *store.CallRecord) error  { return nil }
func (noRecords) InsertCall(context.Context, *store.CallRecord) error { return nil }

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func (c *call) tracef(format string, args ...any) {
	c.rec.Trace = append(c.rec.Trace, fmt.Sprintf(format, args...))
}

func (c *call) run(ctx context.Context) {
	dlg, err := c.e.cfg.UA.ReadInvite(c.in.Req, c.in.Tx)
	if err != nil {
		c.log.Info("bad INVITE", "err", err)
		_ = Respond(c.in.Tx, c.in.Req, ErrBadRequest)
		c.rec.Outcome, c.cause = string(routing.OutcomeRejected), CauseBadRequest
		return
	}
	c.dlg = dlg
	defer dlg.Close()
	c.peer = &peer{dlg: dlg}
	defer c.e.track(dialogKey(callID(c.in.Req), localTag(dlg)), c.peer)()
	_ = dlg.Respond(100, "Trying", nil)
	// Dialog context: cancelled by the caller's CANCEL or BYE.
	dctx := dlg.Context()

	target := c.in.Target
	if c.in.Route != nil {
		var ok bool
		if target, ok = c.route(); !ok {
			return
		}
	} else {
		c.callerID, c.name = c.in.CallerID, c.in.CallerName
		c.rec.Caller, c.rec.CallerName = c.callerID, c.name
		c.rec.Outcome = string(routing.OutcomeRouted)
	}

	if c.sess == nil {
		if err := c.openMedia(); err != nil {
			return
		}
	}
	defer c.sess.Close()
	if c.in.Pickup != "" {
		c.pickUp(dctx, c.in.Pickup)
		return
	}

	res := c.connect(ctx, dctx, target, 0)
	switch {
	case res.done:
	case res.leg != nil:
		c.bridge(ctx, dctx, res)
	case dctx.Err() != nil:
		switch {
		case c.cause == CauseAbandoned, c.cause == CauseAckTimeout: // left the queue; our BYE
		case c.answered: // in an IVR, captcha or queue
			c.cause = CauseCallerBye
		default:
			c.cause = CauseCallerCancel
			c.tracef("caller hung up before an answer")
		}
	default:
		c.fail(ctx, dctx, res)
	}
}

// route makes the routing decision for a call to a number; false means the
// call was answered with a final response already.
func (c *call) route() (string, bool) {
	var d routing.Decision
	req := *c.in.Route
	c.in.Snap.Route(&req, &d)
	if d.CaptchaPending {
		c.rec.Trace = append(c.rec.Trace, d.Trace()...)
		passed, ok := c.captcha()
		if !ok {
			return "", false
		}
		req.Captcha = routing.CaptchaFailed
		if passed {
			req.Captcha = routing.CaptchaPassed
		}
		d = routing.Decision{}
		c.in.Snap.Route(&req, &d)
	}
	c.rec.Trace = append(c.rec.Trace, d.Trace()...)
	c.rec.Number, c.rec.Caller, c.rec.CallerName = d.Number, d.Caller, d.CallerName
	c.rec.Tags = append([]string(nil), d.Tags...)
	c.rec.Outcome = string(d.Outcome)
	c.callerID, c.name = d.Caller, d.CallerName
	if n, _, ok := c.in.Snap.Number(d.Number); ok {
		c.number = n
	}
	switch d.Outcome {
	case routing.OutcomeRouted, routing.OutcomeForwarded:
		return d.Destination, true
	}
	status := d.SIPStatus
	if status == 0 {
		status = 480
	}
	c.cause = CauseRejected
	if d.Outcome == routing.OutcomeNotFound {
		c.cause = CauseNotFound
	}
	c.refuse(&SIPError{Code: status}) // a BYE after a captcha's goodbye
	return "", false
}

// answerCaller sends our 200 to the caller once; false when the caller left
// (caller_cancel) or never acknowledged it (ack_timeout: RFC 3261
// §13.3.1.4 says end the session with a BYE). RespondSDP returns once the
// ACK came, so the INVITE server transaction needs its handler no longer:
// Handle may return.
func (c *call) answerCaller() bool {
	if c.answered {
		return true
	}
	c.stopRingback()
	c.peer.sdp.Store(&c.answer)
	if err := c.dlg.RespondSDP(c.answer); err != nil {
		if c.dlg.Context().Err() != nil {
			c.cause = CauseCallerCancel
			return false
		}
		c.log.Info("caller never acknowledged the answer", "err", err)
		c.cause = CauseAckTimeout
		c.byeCaller()
		return false
	}
	c.answered = true
	if c.confirmed != nil {
		close(c.confirmed)
		c.confirmed = nil
	}
	if c.rec.Answer.IsZero() {
		c.rec.Answer = time.Now()
	}
	return true
}

// openMedia negotiates the caller's offer and opens the inbound RTP session.
func (c *call) openMedia() error {
	body := c.in.Req.Body()
	fail := func(code int, err error) error {
		c.tracef("caller SDP: %v -> %d", err, code)
		c.cause = CauseMediaError
		c.reject(&SIPError{Code: code, Err: err})
		return err
	}
	if len(body) == 0 {
		return fail(488, errors.New("an SDP offer is required"))
	}
	remote, err := media.ParseSDP(body)
	if err != nil {
		if errors.Is(err, media.ErrMalformedSDP) {
			return fail(400, err)
		}
		return fail(488, err)
	}
	neg, err := media.Negotiate(remote)
	if err != nil {
		return fail(488, err)
	}
	sess, err := c.e.cfg.Media.NewSession(media.SessionConfig{Logger: c.log})
	if err != nil {
		return fail(503, fmt.Errorf("no RTP port: %w", err))
	}
	sess.SetRemote(neg.Remote)
	c.sdp = sdpOrigin{id: uint64(time.Now().UnixNano())}
	local := media.LocalSDP{IP: c.e.cfg.MediaIP, Port: sess.Port(), SessionID: c.sdp.id}
	answer, err := local.Answer(neg)
	if err != nil {
		sess.Close()
		return fail(500, err)
	}
	c.sess, c.neg, c.answer = sess, neg, answer
	c.peer.sess.Store(sess)
	return nil
}

func localTag(d *sipgo.DialogServerSession) string {
	tag, _ := d.InviteRequest.To().Params.Get("tag")
	return tag
}

// bridge answers the caller and connects them to one leg after another:
// when the callee transfers (0 + a two-digit code, or a REFER) the caller
// is routed onwards and hears ringing meanwhile.
func (c *call) bridge(ctx, dctx context.Context, res result) {
	for res.leg != nil {
		next := c.talk(ctx, dctx, res)
		if next == "" {
			return
		}
		c.startRingback(c.ringbackTone())
		res = c.connect(ctx, dctx, next, 0)
		c.stopRingback()
		if res.done {
			return
		}
		if res.final != "" { // a prompt or voicemail takes the transferred caller
			c.fail(ctx, dctx, res)
			return
		}
		if res.leg == nil {
			if dctx.Err() != nil {
				c.cause = CauseCallerBye
				return
			}
			c.tracef("transfer to %s failed: %s", next, res.class)
			c.cause = CauseTransferFailed
			c.byeCaller()
			return
		}
	}
}

// digitWindow is how long each digit of a keypad sequence (0 + code, # 7)
// may take after the previous one.
const digitWindow = 2 * time.Second

// talk relays media between the caller and an answered leg until one side
// hangs up, the media stops, or the callee transfers the caller: then it
// returns the transfer target.
func (c *call) talk(ctx, dctx context.Context, res result) (transferTo string) {
	l := res.leg
	defer l.close()
	c.tracef("answered by %s (%s)", l.member, l.uri)
	if c.rec.Answer.IsZero() {
		c.rec.Answer = time.Now()
	}
	c.rec.AnsweredBy = l.member
	c.stopRingback()
	br, err := media.NewBridge(c.neg.Leg(c.sess), l.neg.Leg(l.sess), c.log)
	if err != nil {
		c.log.Error("bridge", "err", err)
		c.hangupBoth(l, "media_error")
		return ""
	}
	defer c.noteQuality(l.member, l.sess) // after the bridge closes, before the leg does
	transfer := res.ext != nil && res.ext.Transfer
	recording := ""
	if res.ext != nil {
		recording = res.ext.Recording
	}
	digits := make(chan rune, 16)
	// On an extension with transfer or manual recording the callee's keypad
	// is Switchboard's: the presses are taken, not passed to the caller. A
	// fax's tones are never ours.
	if !l.fax && (transfer || recording == "manual") {
		br.TakeDTMF(media.SideB, func(d rune) {
			select {
			case digits <- d:
			default: // a DTMF flood: drop, never block the relay
			}
		})
	}
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	br.Start(bctx)
	defer br.Close()
	// A fax's re-INVITE is relayed to the other leg by the loop below; one
	// that comes while the caller has not yet acknowledged our 200 waits
	// for it (or gets 491 and is retried), never the answer of a refresh.
	var reoffers chan *reoffer // nil unless fax
	var pass *media.Passthrough
	if l.fax {
		reoffers = make(chan *reoffer)
		c.peer.reoffers.Store(&reoffers)
		l.peer.reoffers.Store(&reoffers)
		defer func() {
			c.peer.reoffers.Store(nil)
			l.peer.reoffers.Store(nil)
			if pass != nil {
				pass.Close()
			}
		}()
	}
	// Media flows from our 200 on, not from the caller's ACK: a lost ACK
	// must not cost the first seconds of the call (RespondSDP waits for it).
	if !c.answerCaller() { // the caller cancelled as the callee answered, or never ACKed
		l.bye()
		return ""
	}
	c.emit(EventAnswered, l.member, "")
	if c.recorder != nil || recording == "always" {
		c.startRecording(bctx, br, res.ext)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var seq []rune // a keypad sequence in progress: "0" + code
	var seqAt time.Time
	for {
		select {
		case <-dctx.Done():
			c.cause = CauseCallerBye
			l.bye()
			return ""
		case <-l.dlg.Context().Done():
			c.cause = CauseCalleeBye
			c.byeCaller()
			return ""
		case <-c.e.hangup:
			c.hangupBoth(l, "shutdown")
			return ""
		case target := <-l.refer:
			if !transfer {
				c.tracef("REFER to %s from %s refused: transfer is off", target, l.member)
				continue
			}
			resolved, ok := c.dialled(target)
			if !ok {
				c.tracef("REFER to %q from %s: not an extension code, name or number", target, l.member)
				continue
			}
			c.tracef("%s transfers the caller to %s (REFER to %s)", l.member, resolved, target)
			c.emit(EventTransferred, l.member, resolved)
			l.bye()
			return resolved
		case d := <-digits:
			now := time.Now()
			if len(seq) > 0 && now.Sub(seqAt) > digitWindow {
				seq = seq[:0]
			}
			seqAt = now
			if len(seq) == 0 && d != '0' && d != '#' {
				continue
			}
			seq = append(seq, d)
			if seq[0] == '#' {
				if len(seq) == 2 {
					if seq[1] == '7' && recording == "manual" {
						c.tracef("%s dialled # 7: recording", l.member)
						c.startRecording(bctx, br, res.ext)
					}
					seq = seq[:0]
				}
				continue
			}
			if !transfer || len(seq) < 3 {
				if !transfer {
					seq = seq[:0]
				}
				continue
			}
			code := string(seq[1:])
			seq = seq[:0]
			target, ok := c.in.Snap.LookupCode(code)
			if !ok {
				c.tracef("%s dialled 0 %s: no extension has that code", l.member, code)
				if p, ok := prompt.Builtin("not-available"); ok {
					go func() { _ = br.Play(bctx, media.SideB, media.NewPCMSource(p, false)) }()
				}
				continue
			}
			c.tracef("%s transfers the caller to %s (dialled 0 %s)", l.member, target, code)
			c.emit(EventTransferred, l.member, target)
			l.bye()
			return target
		case ro := <-reoffers:
			c.relayReoffer(bctx, ro, l, &pass)
		case now := <-tick.C:
			if c.mediaStopped(now, l.sess, pass) {
				c.hangupBoth(l, "rtp_timeout")
				return ""
			}
		}
	}
}

// dialled resolves what a callee asked to transfer to: an extension code
// or user extension number, a name of the account, or an E.164 number.
func (c *call) dialled(s string) (string, bool) {
	if t, ok := c.in.Snap.LookupCode(s); ok {
		return t, true
	}
	if c.in.Snap.Doc().HasName(s) {
		return s, true
	}
	if n, ok := routing.NormalizeNumber(s); ok && config.CheckE164(n) == nil {
		return n, true
	}
	return "", false
}

func (c *call) hangupBoth(l *leg, cause Cause) {
	c.cause = cause
	l.bye()
	c.byeCaller()
}

func (c *call) byeCaller() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.dlg.Bye(ctx); err != nil {
		c.log.Debug("BYE to caller", "err", err)
	}
}

// fail runs when no leg answered: on_failure of SPEC §3.
func (c *call) fail(ctx, dctx context.Context, res result) {
	c.cause = res.class.cause()
	if res.class != failNone { // failNone: sent straight to a prompt or voicemail
		c.tracef("all attempts failed: %s", res.class)
	}
	if strings.HasPrefix(res.final, "prompt:") {
		c.playAndHangUp(ctx, dctx, res.final)
		return
	}
	if user, ok := strings.CutPrefix(res.final, "voicemail:"); ok {
		c.voicemail(ctx, dctx, user)
		return
	}
	tone, limit := c.ringbackTone(), c.e.cfg.RingTimeout
	if res.class == failBusy {
		if !c.answered {
			c.reject(&SIPError{Code: 486})
			return
		}
		// Answered already (a captcha ran): the caller hears busy instead.
		tone, limit = media.Busy(), 5*time.Second
	}
	// tones: ringback goes on until the caller gives up or the limit.
	c.startRingback(tone)
	defer c.stopRingback()
	c.tracef("on_failure tones: until the caller hangs up (at most %s)", limit)
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-dctx.Done():
		c.cause = CauseCallerCancel
		return
	case <-t.C:
	case <-ctx.Done():
	case <-c.e.hangup:
	}
	c.refuse(&SIPError{Code: 480})
}

// refuse ends a call that got no answer: the final response that reports
// err, or a BYE when the caller was answered already.
func (c *call) refuse(err error) {
	if c.answered {
		c.byeCaller()
		return
	}
	c.reject(err)
}

// reject sends the caller the final response that reports err.
func (c *call) reject(err error) {
	se := sipError(err)
	_ = c.dlg.Respond(se.Code, se.reason(), nil, se.headers()...)
}

// finish writes the call record, whatever happened.
func (c *call) finish() {
	c.closeRecording()
	c.noteCallerQuality()
	c.rec.End = time.Now()
	c.rec.HangupCause = string(c.cause)
	if !c.rec.Answer.IsZero() {
		c.rec.Duration = c.rec.End.Sub(c.rec.Answer)
	}
	if c.rec.Number == "" && c.in.Route != nil {
		c.rec.Number = c.in.Route.Number
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.records().InsertCall(ctx, &c.rec); err != nil {
		c.log.Error("write call record", "err", err)
	}
	c.log.Info("call ended", "outcome", c.rec.Outcome, "answered_by", c.rec.AnsweredBy,
		"cause", c.cause, "duration", c.rec.Duration.Round(time.Millisecond))
	c.emit(EventEnded, "", "")
}

// presentedCaller returns the From user and Privacy for an outbound leg
// according to the caller_id mode (SPEC §4). A registered user's own number
// is their extension inside the account; to an external leg (through a
// trunk) the account presents its service number instead, whatever path
// the call took there: dialled directly, an IVR option, a group member, a
// transfer (docs/decisions.md).
func (c *call) presentedCaller(mode string, external bool) (user string, hidden bool) {
	user, hidden = c.callerMode(mode)
	if external && !hidden && c.in.User != "" && user == c.callerID {
		if sn := c.in.Snap.Doc().Defaults.ServiceNumber; sn != "" {
			return sn, false
		}
	}
	return user, hidden
}

func (c *call) callerMode(mode string) (user string, hidden bool) {
	doc := c.in.Snap.Doc()
	if mode == "" || mode == "default" {
		mode = doc.Defaults.CallerID
	}
	switch mode {
	case "service":
		if doc.Defaults.ServiceNumber != "" {
			return doc.Defaults.ServiceNumber, false
		}
	case "called":
		if c.rec.Number != "" {
			return c.rec.Number, false
		}
	case "hidden":
		return "anonymous", true
	}
	if c.callerID == "" || strings.EqualFold(c.callerID, "anonymous") {
		return "anonymous", true
	}
	return c.callerID, false
}
