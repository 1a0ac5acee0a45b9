package call

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/media"
)

// dialog is either side of a call that in-dialog requests are routed to.
type dialog interface {
	ReadBye(req *sip.Request, tx sip.ServerTransaction) error
}

// peer is what the engine knows of one dialog of a call in progress: where
// the far end's in-dialog requests go. Its call fills the atomic fields in
// as the call goes on; the SIP goroutines only read them.
type peer struct {
	dlg   dialog
	refer chan<- string // REFER targets (outbound legs: blind transfer)
	sess  atomic.Pointer[media.Session]
	sdp   atomic.Pointer[[]byte] // our SDP, repeated to session refreshes
	// reoffers, while set, takes re-INVITEs to relay to the other leg
	// (fax calls) instead of answering them with sdp.
	reoffers atomic.Pointer[chan *reoffer]
}

// dialogKey identifies a dialog by Call-ID and our own tag, which is the To
// tag of every request the far end sends within it.
func dialogKey(callID, localTag string) string { return callID + "\x00" + localTag }

// track makes a dialog reachable by in-dialog requests until untrack.
func (e *Engine) track(key string, p *peer) (untrack func()) {
	e.dialogs.Store(key, p)
	return func() { e.dialogs.Delete(key) }
}

// lookup finds the dialog an in-dialog request belongs to.
func (e *Engine) lookup(req *sip.Request) (*peer, bool) {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil, false
	}
	tag, ok := to.Params.Get("tag")
	if !ok || tag == "" {
		return nil, false
	}
	v, ok := e.dialogs.Load(dialogKey(cid.Value(), tag))
	if !ok {
		return nil, false
	}
	return v.(*peer), true
}

// HandleAck passes an ACK to its dialog; it reports whether one matched.
func (e *Engine) HandleAck(req *sip.Request, tx sip.ServerTransaction) bool {
	p, ok := e.lookup(req)
	if !ok {
		return false
	}
	if s, ok := p.dlg.(*sipgo.DialogServerSession); ok {
		_ = s.ReadAck(req, tx)
	}
	return true
}

// HandleBye ends the dialog the BYE belongs to (answering 200); ErrNoDialog
// means the caller should answer 481.
func (e *Engine) HandleBye(req *sip.Request, tx sip.ServerTransaction) error {
	p, ok := e.lookup(req)
	if !ok {
		return ErrNoDialog
	}
	return p.dlg.ReadBye(req, tx)
}

// HandleReinvite answers an in-dialog INVITE (hold, session refresh) with the
// SDP we already gave that leg, or on a fax call hands it to the call to
// relay to the other leg; ErrNoDialog when nothing matches.
func (e *Engine) HandleReinvite(req *sip.Request, tx sip.ServerTransaction) error {
	p, ok := e.lookup(req)
	if !ok {
		return ErrNoDialog
	}
	if ch := p.reoffers.Load(); ch != nil {
		ro := &reoffer{req: req, tx: tx, from: p, done: make(chan struct{})}
		select {
		case *ch <- ro:
			<-ro.done // sipgo ends the transaction when the handler returns
			return nil
		case <-time.After(2 * time.Second): // the call is busy with another
		}
		return Respond(tx, req, errPending)
	}
	sdp := p.sdp.Load()
	if sdp == nil { // not answered yet: RFC 3261 §14.2
		return Respond(tx, req, errPending)
	}
	return tx.Respond(sip.NewSDPResponseFromRequest(req, *sdp))
}

// HandleRefer takes a blind transfer (RFC 3515) from a callee: the target
// is the Refer-To URI's user part (an extension code, name or number). It
// answers 202 and hands the target to the call, or ErrNoDialog.
func (e *Engine) HandleRefer(req *sip.Request, tx sip.ServerTransaction) error {
	p, ok := e.lookup(req)
	if !ok || p.refer == nil {
		return ErrNoDialog
	}
	h := req.GetHeader("Refer-To")
	if h == nil {
		return Respond(tx, req, ErrBadRequest)
	}
	var to sip.Uri
	v := strings.Trim(strings.TrimSpace(h.Value()), "<>")
	if i := strings.IndexByte(v, '>'); i >= 0 {
		v = v[:i]
	}
	if err := sip.ParseUri(v, &to); err != nil || to.User == "" {
		return Respond(tx, req, ErrBadRequest)
	}
	select {
	case p.refer <- to.User:
		return tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
	default:
		return Respond(tx, req, errPending)
	}
}

// HandleInfo takes a key press sent as SIP INFO (application/dtmf-relay,
// or application/dtmf), the fallback of phones without RFC 4733: the digit
// goes to whoever reads that leg's media, as if it came in RTP. Other
// bodies get 415; ErrNoDialog when nothing matches.
func (e *Engine) HandleInfo(req *sip.Request, tx sip.ServerTransaction) error {
	p, ok := e.lookup(req)
	if !ok {
		return ErrNoDialog
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = strings.ToLower(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]))
	}
	if ct != "application/dtmf-relay" && ct != "application/dtmf" {
		return Respond(tx, req, &SIPError{Code: 415, Header: sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf")})
	}
	d, err := media.ParseDTMFInfo(ct, req.Body())
	if err != nil {
		return Respond(tx, req, &SIPError{Code: 400, Err: err})
	}
	if s := p.sess.Load(); s != nil {
		s.SignalDTMF(d)
	}
	return tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}
