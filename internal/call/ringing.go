package call

import (
	"context"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/media"
)

// ringback is the ringing sound played to the caller before an answer.
type ringback struct {
	stop func()
	done chan struct{}
}

func (c *call) sendRinging() {
	if c.ringing || c.early != nil {
		return
	}
	c.ringing = true
	_ = c.dlg.Respond(180, "Ringing", nil)
}

// startRingback answers the caller's offer with 183 Session Progress and
// plays src as early media until the call is answered or given up, so that
// one attempt after another sounds like one continuous ring (SPEC §4).
func (c *call) startRingback(src media.Source) {
	if c.early != nil {
		return
	}
	if !c.answered {
		if err := c.dlg.Respond(183, "Session Progress", c.answer, sip.NewHeader("Content-Type", "application/sdp")); err != nil {
			c.log.Debug("183", "err", err)
			return
		}
	}
	ctx, cancel := context.WithCancel(c.dlg.Context())
	rb := &ringback{stop: cancel, done: make(chan struct{})}
	player := media.NewPlayer(c.sess, c.neg.Codec, c.neg.PayloadType)
	go func() {
		defer close(rb.done)
		_ = player.Play(ctx, src)
	}()
	c.early = rb
	if !c.answered {
		c.tracef("early media: 183 with Switchboard's ringing sound")
	}
}

// stopRingback stops the early media and waits for the player to finish,
// so that the bridge is the only writer afterwards.
func (c *call) stopRingback() {
	if c.early == nil {
		return
	}
	c.early.stop()
	<-c.early.done
	c.early = nil
}

// startRinging starts the ringing sound an extension asks for at once:
// silence (none) or a prompt in a loop; tones start when media is needed.
func (c *call) startRinging(ringing string) {
	switch {
	case ringing == "none":
		c.startRingback(media.Silence())
	case strings.HasPrefix(ringing, "prompt:"):
		src, err := c.prompt(ringing, true)
		if err != nil {
			c.tracef("ringing %s: %v; ringback tones instead", ringing, err)
			return
		}
		c.startRingback(src)
	}
}

// prompt returns the audio of a prompt:NAME reference.
func (c *call) prompt(ref string, loop bool) (media.Source, error) {
	if c.in.Prompts == nil {
		return nil, fmt.Errorf("no prompts are loaded for this account")
	}
	return c.in.Prompts.Source(strings.TrimPrefix(ref, "prompt:"), loop)
}

// playAndHangUp answers the caller, plays a prompt and hangs up.
func (c *call) playAndHangUp(ctx, dctx context.Context, ref string) {
	src, err := c.prompt(ref, false)
	if err != nil {
		c.tracef("%s: %v", ref, err)
		c.refuse(&SIPError{Code: 480})
		return
	}
	if !c.answerCaller() {
		return
	}
	c.tracef("playing %s, then hanging up", ref)
	pctx, cancel := context.WithCancel(dctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-c.e.hangup:
		}
		cancel()
	}()
	if err := media.NewPlayer(c.sess, c.neg.Codec, c.neg.PayloadType).Play(pctx, src); err != nil && dctx.Err() != nil {
		c.cause = CauseCallerBye
		return
	}
	c.cause = CausePromptPlayed
	c.byeCaller()
}

// ringbackTone is the ringback of the called number's country: the US
// cadence on +1 numbers, 425 Hz 1 s on 4 s off elsewhere.
func (c *call) ringbackTone() media.Source {
	if strings.HasPrefix(c.rec.Number, "+1") {
		return media.RingbackUS()
	}
	return media.Ringback()
}
