package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/media"
)

// sdpOrigin is our o= line towards one leg: the session id stays, the
// version goes up with every new offer or answer (RFC 3264 §8).
type sdpOrigin struct {
	id, version uint64
}

func (o *sdpOrigin) next() uint64 {
	o.version++
	return o.version
}

// reoffer is an in-dialog INVITE the call relays to its other leg: on fax
// calls, the switch to T.38 (m=image udptl t38) either side asks for.
type reoffer struct {
	req  *sip.Request
	tx   sip.ServerTransaction
	from *peer         // the dialog it came on
	done chan struct{} // closed once it has been answered
}

// inDialog sends requests within a dialog: both sipgo dialog sessions do.
type inDialog interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
}

// reofferTimeout bounds a relayed re-INVITE: the far leg's answer.
const reofferTimeout = 10 * time.Second

// relayReoffer passes a re-INVITE from one leg of a fax call to the other:
// the offer with our addresses, a new UDP passthrough port per side for
// the image (T.38 UDPTL) stream, and the other leg's answer back the same
// way. A refusal by the other leg goes back with its status; the call and
// its audio stay up either way.
func (c *call) relayReoffer(ctx context.Context, ro *reoffer, l *leg, pass **media.Passthrough) {
	defer close(ro.done)
	fromCaller := ro.from == c.peer
	from, to := media.SideA, media.SideB
	fromSess, toSess := c.sess, l.sess
	var toDlg inDialog = l.dlg
	fromSDP, toSDP := &c.sdp, &l.sdp
	fromName, toName := "the caller", l.member
	target := l.dlg.InviteResponse.Contact()
	if !fromCaller {
		from, to = to, from
		fromSess, toSess = toSess, fromSess
		toDlg = c.dlg
		fromSDP, toSDP = toSDP, fromSDP
		fromName, toName = toName, fromName
		target = c.in.Req.Contact()
	}
	respond := func(code int, reason string, err error) {
		c.tracef("re-INVITE from %s not relayed to %s: %d (%v)", fromName, toName, code, err)
		_ = Respond(ro.tx, ro.req, &SIPError{Code: code, Reason: reason, Err: err})
	}
	if target == nil {
		respond(500, "", errors.New("no Contact to send the re-INVITE to"))
		return
	}
	if *pass == nil {
		p, err := c.e.cfg.Media.NewPassthrough(ctx)
		if err != nil {
			respond(503, "", fmt.Errorf("no port for the image stream: %w", err))
			return
		}
		*pass = p
	}
	p := *pass
	offer, offered, err := media.RelaySDP(ro.req.Body(), c.e.cfg.MediaIP, toSDP.id, toSDP.next(),
		map[string]int{"audio": toSess.Port(), "image": p.Port(to)})
	if err != nil {
		respond(488, "", err)
		return
	}
	req := sip.NewRequest(sip.INVITE, *target.Address.Clone())
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	// The call loop waits here: a BYE from either side ends the wait.
	rctx, cancel := context.WithTimeout(ctx, reofferTimeout)
	defer cancel()
	defer context.AfterFunc(c.dlg.Context(), cancel)()
	defer context.AfterFunc(l.dlg.Context(), cancel)()
	res, err := toDlg.Do(rctx, req)
	if err != nil {
		respond(500, "", fmt.Errorf("re-INVITE to %s: %w", toName, err))
		return
	}
	if !res.IsSuccess() {
		respond(res.StatusCode, res.Reason, fmt.Errorf("%s answered %d", toName, res.StatusCode))
		return
	}
	if err := toDlg.WriteRequest(sip.NewRequest(sip.ACK, *target.Address.Clone())); err != nil {
		c.log.Info("ACK of a relayed re-INVITE", "err", err)
	}
	answer, answered, err := media.RelaySDP(res.Body(), c.e.cfg.MediaIP, fromSDP.id, fromSDP.next(),
		map[string]int{"audio": fromSess.Port(), "image": p.Port(from)})
	if err != nil {
		respond(488, "", fmt.Errorf("answer of %s: %w", toName, err))
		return
	}
	if a, ok := offered["image"]; ok {
		p.SetRemote(from, a)
	}
	if a, ok := answered["image"]; ok {
		p.SetRemote(to, a)
	}
	if a, ok := offered["audio"]; ok {
		fromSess.SetRemote(a)
	}
	if a, ok := answered["audio"]; ok {
		toSess.SetRemote(a)
	}
	ro.from.sdp.Store(&answer)
	if fromCaller {
		l.peer.sdp.Store(&offer)
	} else {
		c.peer.sdp.Store(&offer)
	}
	_ = ro.tx.Respond(sip.NewSDPResponseFromRequest(ro.req, answer))
	if _, ok := answered["image"]; ok {
		c.tracef("re-INVITE from %s relayed to %s: switched to T.38 (image stream passed through)", fromName, toName)
	} else {
		c.tracef("re-INVITE from %s relayed to %s", fromName, toName)
	}
}
