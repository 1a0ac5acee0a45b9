package call

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/routing"
)

// defaultParkTimeout is how long a call waits in an orbit when its lot
// sets no timeout.
const defaultParkTimeout = 2 * time.Minute

// parkLots holds the calls waiting in park orbits on this node, by account
// and orbit number. On a shared database the orbits are claimed there too
// (Config.Orbits), and a pickup dialled on another node reaches this one
// (PeerPickup, docs/decisions.md "Park").
type parkLots struct {
	mu    sync.Mutex
	slots map[string]*parked // account "\x00" orbit
}

// parked is a call waiting in an orbit; a pickup is delivered on pickup.
type parked struct {
	pickup chan *pickup // buffered: the picker never waits
}

// pickup is a registered user's call that picks up a parked call: the
// parked call's goroutine bridges it and reports the end on done.
type pickup struct {
	by   string // "user:NAME"
	sess *media.Session
	neg  media.Negotiation
	ctx  context.Context // the picker's dialog
	done chan Cause      // the hangup cause, once the bridge is over
}

func orbitKey(account, orbit string) string { return account + "\x00" + orbit }

// enter puts a call in the lowest free orbit of lo..hi.
func (p *parkLots) enter(account string, lo, hi int) (orbit string, slot *parked, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots == nil {
		p.slots = map[string]*parked{}
	}
	for o := lo; o <= hi; o++ {
		orbit = strconv.Itoa(o)
		if _, taken := p.slots[orbitKey(account, orbit)]; !taken {
			slot = &parked{pickup: make(chan *pickup, 1)}
			p.slots[orbitKey(account, orbit)] = slot
			return orbit, slot, true
		}
	}
	return "", nil, false
}

// enterAt puts a call in the given orbit; false when it is taken here.
func (p *parkLots) enterAt(account, orbit string) (*parked, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots == nil {
		p.slots = map[string]*parked{}
	}
	if _, taken := p.slots[orbitKey(account, orbit)]; taken {
		return nil, false
	}
	slot := &parked{pickup: make(chan *pickup, 1)}
	p.slots[orbitKey(account, orbit)] = slot
	return slot, true
}

// leave takes a call out of its orbit; false means a pickup took it first
// and is waiting on slot.pickup.
func (p *parkLots) leave(account, orbit string, slot *parked) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots[orbitKey(account, orbit)] != slot {
		return false
	}
	delete(p.slots, orbitKey(account, orbit))
	return true
}

// abandon takes out of its orbit a call that left before it could wait
// there (it was never answered); a pickup that took it first, and waits
// for the bridge, is told the parked caller hung up.
func (p *parkLots) abandon(account, orbit string, slot *parked) {
	if !p.leave(account, orbit, slot) {
		(<-slot.pickup).done <- CauseCallerBye
	}
}

// take hands pk to the call in an orbit; false when the orbit is empty.
func (p *parkLots) take(account, orbit string, pk *pickup) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	slot, ok := p.slots[orbitKey(account, orbit)]
	if !ok {
		return false
	}
	delete(p.slots, orbitKey(account, orbit))
	slot.pickup <- pk
	return true
}

// occupied reports whether a call waits in an orbit.
func (p *parkLots) occupied(account, orbit string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.slots[orbitKey(account, orbit)]
	return ok
}

// park answers the caller and holds the call in the lowest free orbit of
// the lot with music until a user dials the orbit (the call is bridged to
// them and ends here: done) or the lot's timeout sends it to return_to.
func (c *call) park(ctx, dctx context.Context, name string, lot config.Park, depth int) result {
	lo, hi, err := config.ParseOrbits(lot.Orbits)
	if err != nil { // refused by validation; kept for a hand-made document
		c.tracef("park %s: %v", name, err)
		return result{class: failUnavailable}
	}
	account := c.in.Snap.Account()
	orbit, slot, ok := c.enterOrbit(ctx, account, lo, hi)
	if !ok {
		c.tracef("park %s: every orbit (%s) is taken", name, lot.Orbits)
		return c.unpark(ctx, dctx, name, lot, depth)
	}
	if !c.answerCaller() {
		c.e.parks.abandon(account, orbit, slot)
		c.releaseOrbit(account, orbit)
		return result{class: failNoAnswer}
	}
	c.tracef("parked in orbit %s of %s", orbit, name)
	stopMusic := c.holdMusic(dctx, orbit, lot.Music)
	timeout := lot.Timeout.D()
	if timeout <= 0 {
		timeout = defaultParkTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var pk *pickup
	select {
	case pk = <-slot.pickup:
	case <-dctx.Done():
	case <-t.C:
	case <-c.e.hangup:
	}
	stopMusic()
	if pk == nil && !c.e.parks.leave(account, orbit, slot) {
		pk = <-slot.pickup // picked up as the wait ended
	}
	c.releaseOrbit(account, orbit) // out of the orbit, whatever comes next
	switch {
	case pk != nil:
		c.bridgePickup(dctx, orbit, pk)
		return result{done: true}
	case dctx.Err() != nil:
		c.cause = CauseCallerBye
		c.tracef("the caller hung up in orbit %s", orbit)
		return result{done: true}
	case c.isShutdown():
		c.cause = CauseShutdown
		c.byeCaller()
		return result{done: true}
	}
	c.tracef("orbit %s: nobody picked up within %s", orbit, timeout)
	return c.unpark(ctx, dctx, name, lot, depth)
}

// enterOrbit puts the call in the lowest free orbit of lo..hi: of this
// node, or of every node when they share their orbits (claimed in the
// database first, then held here).
func (c *call) enterOrbit(ctx context.Context, account string, lo, hi int) (string, *parked, bool) {
	shared := c.e.cfg.Orbits
	if shared == nil {
		return c.e.parks.enter(account, lo, hi)
	}
	n, ok, err := shared.ClaimOrbit(ctx, account, lo, hi, c.rec.ID)
	if err != nil {
		c.log.Error("claim a park orbit", "err", err)
		c.tracef("park: the orbits could not be claimed: %v", err)
		return "", nil, false
	}
	if !ok {
		return "", nil, false
	}
	orbit := strconv.Itoa(n)
	slot, ok := c.e.parks.enterAt(account, orbit)
	if !ok { // held here without its row: a release that failed
		c.log.Error("park orbit claimed but held on this node", "orbit", orbit)
		c.releaseOrbit(account, orbit)
		return "", nil, false
	}
	return orbit, slot, true
}

// releaseOrbit frees the shared row of the orbit the call held, if any.
func (c *call) releaseOrbit(account, orbit string) {
	if c.e.cfg.Orbits == nil {
		return
	}
	n, _ := strconv.Atoi(orbit)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.e.cfg.Orbits.ReleaseOrbit(ctx, account, n, c.rec.ID); err != nil {
		c.log.Error("release a park orbit", "orbit", orbit, "err", err)
	}
}

// unpark sends a call its lot could not keep to the lot's return_to.
func (c *call) unpark(ctx, dctx context.Context, name string, lot config.Park, depth int) result {
	if lot.ReturnTo == "" {
		return result{class: failNoAnswer}
	}
	c.tracef("park %s: returning the call to %s", name, lot.ReturnTo)
	c.startRingback(c.ringbackTone())
	defer c.stopRingback()
	return c.connect(ctx, dctx, lot.ReturnTo, depth+1)
}

func (c *call) isShutdown() bool {
	select {
	case <-c.e.hangup:
		return true
	default:
		return false
	}
}

// holdMusic plays "you have been parked in orbit" and the orbit's digits,
// then the lot's music (or HoldMusic) in a loop, until the returned stop.
func (c *call) holdMusic(dctx context.Context, orbit, music string) (stop func()) {
	var parts []media.Source
	if p, ok := prompt.Builtin("parked"); ok {
		parts = append(parts, media.NewPCMSource(p, false))
	}
	for _, d := range orbit {
		if p, ok := prompt.Builtin("digit-" + string(d)); ok {
			parts = append(parts, media.NewPCMSource(p, false))
		}
	}
	var loop media.Source = media.HoldMusic()
	if music != "" {
		src, err := c.prompt(music, true)
		if err == nil {
			loop = src
		} else {
			c.tracef("park music %s: %v; the default music instead", music, err)
		}
	}
	ctx, cancel := context.WithCancel(dctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = media.NewPlayer(c.sess, c.neg.Codec, c.neg.PayloadType).Play(ctx, media.Concat(append(parts, loop)...))
	}()
	return func() { cancel(); <-done }
}

// bridgePickup connects a parked caller to the user who picked the call up
// until either hangs up, then tells the picker's call how it ended.
func (c *call) bridgePickup(dctx context.Context, orbit string, pk *pickup) {
	c.tracef("picked up from orbit %s by %s", orbit, pk.by)
	c.rec.AnsweredBy = pk.by
	cause := c.relayUntilHangup(dctx, pk.ctx, c.neg.Leg(c.sess), pk.neg.Leg(pk.sess))
	c.noteQuality(pk.by, pk.sess) // the picker's call closes it once told
	pk.done <- cause
}

// relayUntilHangup bridges the caller's media with another leg whose
// dialog context is other until one side hangs up (the caller is sent a
// BYE when the other side went), the media stops, or the node shuts down;
// it returns the hangup cause from the caller's point of view.
func (c *call) relayUntilHangup(dctx, other context.Context, a, b media.Leg) Cause {
	br, err := media.NewBridge(a, b, c.log)
	if err != nil {
		c.log.Error("bridge", "err", err)
		c.cause = CauseMediaError
		c.byeCaller()
		return c.cause
	}
	bctx, stop := context.WithCancel(dctx)
	defer stop()
	br.Start(bctx)
	defer br.Close()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-dctx.Done():
			c.cause = CauseCallerBye
			return c.cause
		case <-other.Done():
			c.cause = CauseCalleeBye
		case <-c.e.hangup:
			c.cause = CauseShutdown
		case now := <-tick.C:
			if !c.mediaStopped(now, b.Session) {
				continue
			}
			c.cause = CauseRTPTimeout
		}
		c.byeCaller()
		return c.cause
	}
}

// activity is media that can tell when it last carried a packet.
type activity interface{ LastActivity() time.Time }

// mediaStopped reports whether neither the caller nor the other media of
// the call has carried a packet for the media timeout (--rtp-timeout).
func (c *call) mediaStopped(now time.Time, others ...activity) bool {
	last := c.sess.LastActivity()
	for _, o := range others {
		if t := o.LastActivity(); t.After(last) {
			last = t
		}
	}
	if last.IsZero() {
		last = c.rec.Answer
	}
	if now.Sub(last) > c.e.cfg.RTPTimeout {
		c.tracef("no RTP for %s: hanging up", c.e.cfg.RTPTimeout)
		return true
	}
	return false
}

// pickUp runs a registered user's call to a park orbit: it is answered and
// bridged to the call waiting there; an empty orbit gets 404.
func (c *call) pickUp(dctx context.Context, orbit string) {
	account := c.in.Snap.Account()
	if !c.e.parks.occupied(account, orbit) {
		if !c.in.FromPeer && c.pickUpElsewhere(dctx, orbit) {
			return
		}
		c.tracef("orbit %s is empty", orbit)
		c.rec.Outcome, c.cause = string(routing.OutcomeNotFound), CauseOrbitEmpty
		c.refuse(ErrNotFound)
		return
	}
	if !c.answerCaller() {
		return
	}
	pk := &pickup{by: "user:" + c.in.User, sess: c.sess, neg: c.neg, ctx: dctx, done: make(chan Cause, 1)}
	if !c.e.parks.take(account, orbit, pk) { // taken or gone since the check
		c.tracef("orbit %s emptied as it was picked up", orbit)
		c.cause = CauseOrbitEmpty
		c.byeCaller()
		return
	}
	c.tracef("picked up the call in orbit %s", orbit)
	c.rec.AnsweredBy = "orbit:" + orbit
	switch cause := <-pk.done; cause {
	case "caller_bye": // the parked caller hung up: hang up the picker
		c.cause = CauseCalleeBye
		c.byeCaller()
	case "callee_bye":
		c.cause = CauseCallerBye
	default:
		c.cause = cause
		c.byeCaller()
	}
}
