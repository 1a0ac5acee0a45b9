package call

import (
	"context"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
)

// screen plays the extension's announcement to a callee who answered while
// the caller still hears ringing, and with confirm: true waits up to 5 s
// for the callee to press 1 (SPEC §4). It reports whether the leg may be
// bridged; a declined or vanished leg is hung up and closed.
func (c *call) screen(dctx context.Context, l *leg, ext *config.Extension) bool {
	c.startRingback(c.ringbackTone())
	ctx, cancel := context.WithCancel(dctx)
	defer cancel()
	go func() {
		select {
		case <-l.dlg.Context().Done():
		case <-ctx.Done():
		}
		cancel()
	}()
	ch := media.NewChannel(l.sess, l.neg.Codec, l.neg.PayloadType, l.neg.EventPT, c.log)
	ch.Start(ctx)
	if ref := ext.Announcement; ref != "" {
		if src, err := c.prompt(ref, false); err != nil {
			c.tracef("announcement %s: %v; connecting without it", ref, err)
		} else {
			c.tracef("announcement %s to %s", ref, l.member)
			_ = ch.Play(ctx, src)
		}
	}
	ok := ctx.Err() == nil
	if ok && ext.Confirm {
		ok = false
		t := time.NewTimer(ConfirmTimeout)
	wait:
		for {
			select {
			case d := <-ch.Digits():
				if d == '1' {
					ok = true
					break wait
				}
			case <-t.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		t.Stop()
		if ok {
			c.tracef("%s pressed 1: connecting", l.member)
		} else if ctx.Err() == nil {
			c.tracef("%s did not press 1 within %s: counted as no answer", l.member, ConfirmTimeout)
		}
	}
	ch.Stop()
	if ok && ctx.Err() == nil {
		return true
	}
	if l.dlg.Context().Err() == nil {
		l.bye()
	}
	l.close()
	return false
}

// ConfirmTimeout is how long a callee has to press 1 with confirm: true.
const ConfirmTimeout = 5 * time.Second
