package call

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/routing"
)

// failClass is why an attempt failed (SPEC §3).
type failClass int

const (
	failNone failClass = iota
	failNoAnswer
	failUnavailable
	failBusy
)

func (f failClass) String() string {
	switch f {
	case failNoAnswer:
		return "no_answer"
	case failUnavailable:
		return "unavailable"
	case failBusy:
		return "busy"
	}
	return "none"
}

// result is the outcome of trying a target: an answered leg or a failure.
type result struct {
	leg   *leg
	class failClass
	// ext is the extension whose attempt answered (its announcement,
	// recording and transfer settings apply), nil for other targets.
	ext *config.Extension
	// final is the on_failure that ends the call here (prompt:NAME,
	// voicemail:USER) when every attempt failed.
	final string
	// done: the call was connected and has ended already (a park pickup).
	done bool
}

// dest is one device or address to send an INVITE to.
type dest struct {
	member    string // the member as configured ("user:alice", "+34600000003")
	uri       sip.Uri
	addr      string // where to send it, when not the URI's host (a device's Destination)
	transport string
	route     []string      // Route headers (a device's Path)
	toUser    bool          // a user's device: gets Alert-Info
	fax       bool          // a fax endpoint: media passes untouched, T.38 re-INVITEs are relayed
	trunk     *config.Trunk // credentials when the trunk challenges
	pickup    *peerPickup   // a pickup sent to the node the call is parked on
}

// leg is an answered outbound leg.
type leg struct {
	member  string
	uri     string
	dlg     *sipgo.DialogClientSession
	sess    *media.Session
	neg     media.Negotiation
	refer   chan string // REFER targets from the callee (blind transfer)
	peer    *peer
	untrack func()
	fax     bool
	sdp     sdpOrigin // our o= line towards the callee
}

func (l *leg) bye() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.dlg.Bye(ctx)
}

func (l *leg) close() {
	l.untrack()
	l.sess.Close()
}

// maxDepth bounds on_failure chains and nested groups.
const maxDepth = 4

// connect tries a target until someone answers: every wave of its attempt
// plan in turn, then the extension's on_failure when that is another target.
func (c *call) connect(ctx, dctx context.Context, target string, depth int) result {
	snap := c.in.Snap
	if depth >= maxDepth*2 {
		c.tracef("%s: too many steps (a loop of IVRs or on_failure?)", target)
		return result{class: failUnavailable}
	}
	t := snap.Target(target)
	switch t.Kind {
	case routing.TargetIVR:
		return c.runIVR(ctx, dctx, t.Name, *t.IVR, depth)
	case routing.TargetPark:
		return c.park(ctx, dctx, t.Name, *t.Park, depth)
	case routing.TargetVoicemail, routing.TargetPrompt:
		// They answer the call themselves: run() plays or records them.
		return result{final: target}
	case routing.TargetVariable:
		resolved, ok := c.variable(t.Name)
		if !ok {
			return result{class: failUnavailable}
		}
		return c.connect(ctx, dctx, resolved, depth+1)
	}
	ext := t.Ext // nil unless an extension
	if ext != nil && ext.EffectiveType() == config.TypeIndividual {
		if d := snap.Target(ext.Destination); !d.Ringable() {
			// An IVR, park lot, voicemail or prompt behind an extension
			// takes the call as itself (SPEC §1: any target).
			c.tracef("%s is an individual extension -> %s", target, ext.Destination)
			return c.connect(ctx, dctx, ext.Destination, depth+1)
		}
	}
	c.noteExtension(t)
	timeout := config.DefaultTimeout
	mode := ""
	if ext != nil {
		timeout, mode = ext.EffectiveTimeout(), ext.CallerID
	}
	var counter uint64
	if snap.IsRotating(target) {
		n, err := c.e.cfg.Counters.NextRotation(ctx, snap.Account(), target)
		if err != nil {
			c.log.Error("rotation counter", "extension", target, "err", err)
		}
		counter = n
	}
	if ext != nil && depth == 0 {
		c.startRinging(ext.Ringing)
	}
	plan := snap.Plan(target, c.callerID, counter)
	c.rec.Trace = append(c.rec.Trace, plan.Notes...)
	r := c.attempts(ctx, dctx, plan.Waves, timeout, mode, depth, ext, time.Time{})
	if r.leg != nil || dctx.Err() != nil || ext == nil {
		return r
	}
	last := r.class
	if ext.Queue != nil {
		if r = c.queue(ctx, dctx, plan.Waves, timeout, mode, depth, ext); r.leg != nil || dctx.Err() != nil {
			return r
		}
	}
	if f := ext.OnFailure; depth < maxDepth && f != "" && f != "tones" {
		if k := snap.Target(f).Kind; k == routing.TargetPrompt || k == routing.TargetVoicemail {
			return result{class: last, final: f}
		}
		c.tracef("on_failure of %s: continuing to %s", target, f)
		return c.connect(ctx, dctx, f, depth+1)
	}
	return result{class: last}
}

// noteExtension records on the call the first extension or user it
// rings: the party of the missed-call ledger (store.CallRecord.Missed).
func (c *call) noteExtension(t routing.Target) {
	if c.rec.Extension != "" {
		return
	}
	switch t.Kind {
	case routing.TargetExtension:
		c.rec.Extension = t.Name
	case routing.TargetUser:
		c.rec.Extension = "user:" + t.Name
	}
}

// attempts rings the waves of an attempt plan in turn until one answers;
// with a deadline, no attempt runs past it.
func (c *call) attempts(ctx, dctx context.Context, waves [][]string, timeout time.Duration, mode string, depth int, ext *config.Extension, deadline time.Time) result {
	last := failUnavailable
	for i, wave := range waves {
		var dests []dest
		for _, m := range wave {
			dests = append(dests, c.expand(ctx, m, depth)...)
		}
		if len(dests) == 0 {
			c.tracef("attempt %d %v: unavailable (nothing to ring)", i+1, wave)
			last = failUnavailable
			continue
		}
		if i > 0 || depth > 0 {
			// The next attempt: keep the caller hearing one ring.
			c.startRingback(c.ringbackTone())
		}
		wait := timeout
		if !deadline.IsZero() {
			if wait = min(wait, time.Until(deadline)); wait <= 0 {
				break
			}
		}
		r := c.ring(dctx, dests, wait, mode)
		if r.leg != nil && ext != nil && (ext.Announcement != "" || ext.Confirm) && !c.screen(dctx, r.leg, ext) {
			if dctx.Err() != nil {
				return result{class: failNoAnswer}
			}
			last = failNoAnswer
			continue
		}
		if r.leg != nil {
			r.ext = ext
			return r
		}
		if dctx.Err() != nil {
			c.tracef("attempt %d %v: cancelled by the caller", i+1, wave)
			return result{class: r.class}
		}
		c.tracef("attempt %d %v: %s", i+1, wave, r.class)
		last = r.class
	}
	return result{class: last}
}

// queue holds the caller once every member has failed (SPEC §3): answered,
// the queue message once, then the ringing sound while the members are
// tried again in the same order until max_wait has passed.
func (c *call) queue(ctx, dctx context.Context, waves [][]string, timeout time.Duration, mode string, depth int, ext *config.Extension) result {
	start := time.Now()
	deadline := start.Add(ext.Queue.MaxWait.D())
	if !c.answerCaller() {
		return result{class: failNoAnswer}
	}
	c.tracef("queue: holding the caller for up to %s", ext.Queue.MaxWait)
	if m := ext.Queue.Message; m != "" {
		if src, err := c.prompt(m, false); err == nil {
			_ = media.NewPlayer(c.sess, c.neg.Codec, c.neg.PayloadType).Play(dctx, src)
		} else {
			c.tracef("queue message %s: %v", m, err)
		}
	}
	c.startRinging(ext.Ringing)
	c.startRingback(c.ringbackTone()) // tones, unless a ringing sound already plays
	last := failNoAnswer
	for time.Now().Before(deadline) && dctx.Err() == nil {
		r := c.attempts(ctx, dctx, waves, timeout, mode, depth, ext, deadline)
		if r.leg != nil {
			c.tracef("queue: answered after %s", time.Since(start).Round(time.Millisecond))
			return r
		}
		last = r.class
		if r.class == failUnavailable { // nobody to ring: do not spin
			select {
			case <-dctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	if dctx.Err() != nil {
		c.cause = CauseAbandoned
		c.tracef("queue: the caller hung up after waiting %s", time.Since(start).Round(time.Millisecond))
		return result{class: last}
	}
	c.tracef("queue: max_wait %s passed", ext.Queue.MaxWait)
	return result{class: last}
}

// expand turns one member into the devices and addresses to ring for it.
// Members come from the validated document, or from a variable whose value
// dialled checked.
func (c *call) expand(ctx context.Context, member string, depth int) []dest {
	t := c.in.Snap.Target(member)
	switch t.Kind {
	case routing.TargetUser:
		return c.devices(ctx, member, t.Name)
	case routing.TargetNumber:
		return c.viaTrunk(member, t.Name)
	case routing.TargetSIP:
		var u sip.Uri
		if err := sip.ParseUri(t.Name, &u); err != nil {
			c.tracef("%s: %v", member, err)
			return nil
		}
		return []dest{{member: member, uri: u}}
	case routing.TargetVariable:
		resolved, ok := c.variable(t.Name)
		if !ok || depth >= maxDepth {
			return nil
		}
		return c.expand(ctx, resolved, depth+1) // answered_by names who it resolved to
	case routing.TargetExtension, routing.TargetFax:
		if depth >= maxDepth {
			c.tracef("%s: nested too deep", member)
			return nil
		}
		if t.Fax != nil {
			ds := c.expand(ctx, t.Fax.Destination, depth+1)
			for i := range ds {
				ds[i].fax = true
			}
			return relabel(ds, member)
		}
		if t.Ext.EffectiveType() == config.TypeIndividual {
			return relabel(c.expand(ctx, t.Ext.Destination, depth+1), member)
		}
		var out []dest
		for _, m := range t.Ext.Members {
			out = append(out, c.expand(ctx, m, depth+1)...)
		}
		return relabel(out, member)
	}
	c.tracef("%s: cannot be rung (IVRs, park lots, voicemail and prompts take a call themselves, not as one member of a group)", member)
	return nil
}

func relabel(ds []dest, member string) []dest {
	for i := range ds {
		ds[i].member = member
	}
	return ds
}

func (c *call) devices(ctx context.Context, member, user string) []dest {
	devs, err := c.e.cfg.Devices.Devices(ctx, c.in.Snap.Account(), user)
	if err != nil {
		c.log.Error("device lookup", "user", user, "err", err)
	}
	if len(devs) == 0 {
		c.tracef("%s: no registered device", member)
		return nil
	}
	out := make([]dest, 0, len(devs))
	for _, d := range devs {
		var u sip.Uri
		if err := sip.ParseUri(d.URI, &u); err != nil {
			continue
		}
		out = append(out, dest{member: member, uri: u, addr: d.Addr, transport: d.Transport, route: d.Route, toUser: true})
	}
	return out
}

func (c *call) viaTrunk(member, number string) []dest {
	name, tr, ok := c.in.Snap.DefaultTrunk()
	if !ok {
		c.tracef("%s: no trunk to dial out", member)
		return nil
	}
	var u sip.Uri
	if err := sip.ParseUri(tr.Address, &u); err != nil {
		c.tracef("%s: trunk %s address: %v", member, name, err)
		return nil
	}
	u.User = number
	return []dest{{member: member, uri: u, trunk: tr}}
}

type attempt struct {
	leg   *leg
	class failClass
	why   string // for the trace: what went wrong with this leg
	who   string
}

// ring sends INVITEs to every dest at once; the first to answer wins and the
// others are cancelled. It returns as soon as the outcome is known: legs
// still being cancelled are cleaned up in the background (a CANCEL sent
// before any provisional response can wait for Timer B).
func (c *call) ring(dctx context.Context, dests []dest, timeout time.Duration, mode string) result {
	wctx, cancel := context.WithTimeoutCause(dctx, timeout, errNoAnswer)
	results := make(chan attempt, len(dests))
	ringing := make(chan string, len(dests)) // members whose leg rings
	for _, d := range dests {
		go func() { results <- c.e.dial(c, wctx, d, mode, ringing) }()
	}
	var (
		winner  *leg
		last    = failNone
		pending = len(dests)
	)
wait:
	for pending > 0 && winner == nil {
		select {
		case member := <-ringing:
			c.emit(EventRinging, member, "")
			c.sendRinging()
		case <-wctx.Done():
			// Timed out or the caller left: the legs still ringing are
			// cancelled in the background rather than waited for.
			last = max(last, failNoAnswer)
			break wait
		case a := <-results:
			pending--
			if a.leg != nil {
				winner = a.leg
				continue
			}
			last = max(last, a.class) // busy anywhere in a wave counts as busy
			if a.why != "" {
				c.tracef("%s: %s", a.who, a.why)
			}
		}
	}
	cancel()
	// A leg that rang and ended at once has sent both: its ringing is
	// still news (the event, and a 180 if nothing else rang).
	for drained := false; !drained; {
		select {
		case member := <-ringing:
			c.emit(EventRinging, member, "")
			if winner == nil {
				c.sendRinging()
			}
		default:
			drained = true
		}
	}
	if pending > 0 {
		c.e.cleanup.Add(1)
		go func() {
			defer c.e.cleanup.Done()
			for ; pending > 0; pending-- {
				if a := <-results; a.leg != nil { // a 200 that crossed our CANCEL
					a.leg.bye()
					a.leg.close()
				}
			}
		}()
	}
	if winner != nil {
		return result{leg: winner}
	}
	c.emit(EventWaveEnded, "", "")
	if last == failNone {
		last = failNoAnswer
	}
	return result{class: last}
}

var errNoAnswer = errors.New("no answer within the attempt timeout")

// dial places one outbound INVITE and waits for its final response.
func (c *call) dial(ctx context.Context, d dest, mode string, ringing chan<- string) attempt {
	log := c.log.With("leg", d.uri.String())
	sess, err := c.e.cfg.Media.NewSession(media.SessionConfig{Logger: log})
	if err != nil {
		log.Error("no RTP port for outbound leg", "err", err)
		return attempt{class: failUnavailable, who: d.member, why: "no RTP port: " + err.Error()}
	}
	local := media.LocalSDP{IP: c.e.cfg.MediaIP, Port: sess.Port(), SessionID: uint64(time.Now().UnixNano())}
	if d.fax { // the caller's codec first: no transcoding when the fax has it too
		local.Codecs = []media.Codec{media.PCMU, media.PCMA}
		if c.neg.Codec == media.PCMA {
			local.Codecs = []media.Codec{media.PCMA, media.PCMU}
		}
	}
	offer, err := local.Offer()
	if err != nil {
		sess.Close()
		return attempt{class: failUnavailable, who: d.member, why: err.Error()}
	}
	req := c.newInvite(d, mode, offer)
	dlg, err := c.e.cfg.UA.WriteInvite(ctx, req)
	if err != nil {
		log.Info("INVITE not sent", "err", err)
		sess.Close()
		return attempt{class: failUnavailable, who: d.member, why: "INVITE not sent: " + err.Error()}
	}
	rang := false
	opts := sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
		if (r.StatusCode == 180 || r.StatusCode == 183) && !rang {
			rang = true // one ringing per leg; its channel has room for each
			ringing <- d.member
		}
		return nil
	}}
	if d.trunk != nil && d.trunk.Password != "" {
		opts.Username, opts.Password = d.trunk.Username, d.trunk.Password
	}
	err = dlg.WaitAnswer(ctx, opts)
	if err != nil {
		if r := dlg.InviteResponse; r != nil && r.IsSuccess() {
			// The callee answered as we cancelled: take the call down.
			_ = dlg.Ack(context.Background())
			(&leg{dlg: dlg}).bye()
		}
		sess.Close()
		a := attempt{class: classify(ctx, err), who: d.member}
		if a.class == failUnavailable {
			a.why = err.Error()
		}
		return a
	}
	if err := dlg.Ack(context.Background()); err != nil {
		log.Info("ACK", "err", err)
	}
	l := &leg{member: d.member, uri: d.uri.String(), dlg: dlg, sess: sess, refer: make(chan string, 1), fax: d.fax, sdp: sdpOrigin{id: local.SessionID}}
	l.peer = &peer{dlg: dlg, refer: l.refer}
	l.peer.sdp.Store(&offer)
	l.peer.sess.Store(sess)
	l.untrack = c.e.track(dialogKey(callID(dlg.InviteRequest), fromTag(dlg.InviteRequest)), l.peer)
	remote, err := media.ParseSDP(dlg.InviteResponse.Body())
	if err == nil {
		l.neg, err = media.Negotiate(remote)
	}
	if err != nil {
		log.Info("callee SDP answer unusable", "err", err)
		l.bye()
		l.close()
		return attempt{class: failUnavailable, who: d.member, why: "unusable SDP answer: " + err.Error()}
	}
	sess.SetRemote(l.neg.Remote)
	return attempt{leg: l}
}

// classify maps a failed INVITE to busy, no answer or unavailable.
func classify(ctx context.Context, err error) failClass {
	var dr *sipgo.ErrDialogResponse
	if errors.As(err, &dr) {
		switch dr.Res.StatusCode {
		case 486, 600:
			return failBusy
		case 408, 487:
			return failNoAnswer
		}
		return failUnavailable
	}
	if errors.Is(context.Cause(ctx), errNoAnswer) {
		return failNoAnswer
	}
	if ctx.Err() != nil {
		return failNoAnswer
	}
	return failUnavailable
}

func fromTag(req *sip.Request) string {
	tag, _ := req.From().Params.Get("tag")
	return tag
}

// newInvite builds the outbound INVITE: caller ID and name per SPEC §4,
// Privacy for hidden callers, Alert-Info for distinctive ring on users.
func (c *call) newInvite(d dest, mode string, offer []byte) *sip.Request {
	req := sip.NewRequest(sip.INVITE, d.uri)
	if d.addr != "" {
		req.SetDestination(d.addr)
	}
	if d.transport != "" {
		req.SetTransport(strings.ToUpper(d.transport))
	}
	for _, hop := range d.route {
		req.AppendHeader(sip.NewHeader("Route", hop))
	}
	user, hidden := c.presentedCaller(mode, d.trunk != nil)
	from := &sip.FromHeader{DisplayName: c.name, Address: sip.Uri{Scheme: "sip", User: user, Host: c.domain()}}
	if hidden {
		from.DisplayName = "Anonymous"
		from.Address = sip.Uri{Scheme: "sip", User: "anonymous", Host: "anonymous.invalid"}
		req.AppendHeader(sip.NewHeader("Privacy", "id"))
	}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: d.uri.Scheme, User: d.uri.User, Host: d.uri.Host, Port: d.uri.Port}}
	req.AppendHeader(to)
	if d.toUser && c.number != nil && c.number.DistinctiveRing != "" {
		req.AppendHeader(sip.NewHeader("Alert-Info", "<http://localhost>;info="+c.number.DistinctiveRing))
	}
	if p := d.pickup; p != nil {
		if req.CallID() == nil {
			id := sip.CallIDHeader(uuid.NewString())
			req.AppendHeader(&id)
		}
		req.AppendHeader(pickupHeader(c.e.cfg.Secret, p.account, p.user, p.orbit, req.CallID().Value(), time.Now()))
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	return req
}

func (c *call) domain() string {
	doc := c.in.Snap.Doc()
	if doc.Domain != "" {
		return doc.Domain
	}
	return doc.Account
}
