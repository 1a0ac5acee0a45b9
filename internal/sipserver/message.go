package sipserver

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/sms"
	"github.com/switchboard/switchboard/internal/store"
)

// Messages takes the SIP MESSAGEs the server has classified
// (internal/sms): from a trunk to one of the account's numbers, or from
// one of its registered users.
type Messages interface {
	FromTrunk(ctx context.Context, a *accounts.Account, trunk string, in sms.Incoming) (*store.Message, error)
	FromUser(ctx context.Context, a *accounts.Account, user string, in sms.Incoming) (*store.Message, error)
	// Registered is told that a user has registered devices, and must
	// not block.
	Registered(account, user string)
}

// messagesBox keeps one concrete type in the atomic.Value.
type messagesBox struct{ m Messages }

// SetMessages hands MESSAGEs to m from now on; until it is called they
// are answered 405, as any method the server does not serve.
func (s *Server) SetMessages(m Messages) { s.msgs.Store(messagesBox{m}) }

func (s *Server) messages() Messages {
	b, _ := s.msgs.Load().(messagesBox)
	return b.m
}

// onBindings passes a REGISTER's outcome on to Config.OnBindings, and
// tells the messages a user has devices to deliver to.
func (s *Server) onBindings(account, user string, devices int) {
	if s.cfg.OnBindings != nil {
		s.cfg.OnBindings(account, user, devices)
	}
	if m := s.messages(); m != nil && devices > 0 {
		m.Registered(account, user)
	}
}

// messageTimeout bounds storing a message before the answer.
const messageTimeout = 5 * time.Second

// onMessage classifies a MESSAGE as onInvite classifies an INVITE: from a
// trunk address it is for the number in the Request-URI; from a
// registered source, for one of our domains, it must pass digest auth and
// is the user's; anything else is 403. An accepted message is answered 202
// once it is stored.
func (s *Server) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	msgs := s.messages()
	if msgs == nil {
		_ = call.Respond(tx, req, &call.SIPError{Code: 405})
		return
	}
	in, err := readMessage(req)
	if err != nil {
		_ = call.Respond(tx, req, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), messageTimeout)
	defer cancel()
	view := s.accts.View()
	src := s.source(req)
	if m, ok := view.FromTrunk(src, req.Recipient.User); ok {
		_, err = msgs.FromTrunk(ctx, m.Account, m.Trunk, in)
	} else if !s.userSource(req, tx, view, src) {
		return // refused
	} else {
		id, ok := s.auth.Authenticate(req, tx)
		if !ok {
			return // challenged or refused
		}
		a, ok := view.Account(id.Account)
		if !ok {
			err = call.ErrForbidden
		} else {
			_, err = msgs.FromUser(ctx, a, id.User, in)
		}
	}
	_ = call.Respond(tx, req, messageError(err))
}

// readMessage reads what the SMS service needs of a MESSAGE: 400 without
// the headers every request has, 481 inside a dialog (RFC 3428 MESSAGEs
// are outside of one, and we keep none).
func readMessage(req *sip.Request) (sms.Incoming, error) {
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		return sms.Incoming{}, call.ErrBadRequest
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		return sms.Incoming{}, call.ErrNoDialog
	}
	in := sms.Incoming{To: req.Recipient.User, From: req.From().Address.User, Body: req.Body(),
		Dedup: req.CallID().Value() + " " + req.CSeq().Value()}
	if ct := req.ContentType(); ct != nil {
		in.ContentType = ct.Value()
	}
	return in, nil
}

// messageError is the SIPError that answers a MESSAGE: 202 when it was
// accepted, the code of a refusal (with its reason in a Warning), 500
// for anything else.
func messageError(err error) error {
	if err == nil {
		return &call.SIPError{Code: 202}
	}
	var se *call.SIPError
	if errors.As(err, &se) {
		return se
	}
	var e *sms.Error
	if !errors.As(err, &e) {
		return err
	}
	out := &call.SIPError{Code: e.Code, Err: errors.New(e.Reason)}
	if e.Code == 415 {
		out.Header = sip.NewHeader("Accept", "text/plain")
	}
	return out
}
