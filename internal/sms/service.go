package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/store"
)

// Store is what the service keeps messages in (internal/store).
type Store interface {
	InsertMessage(ctx context.Context, m *store.Message, ds []store.MessageDelivery, evs []store.Event) (bool, error)
	TakeDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.DueMessage, error)
	RecordMessageAttempt(ctx context.Context, deliveryID string, claim int64, a store.MessageAttempt, state string, next time.Time,
		events func(*store.Message) []store.Event) (*store.Message, bool, error)
	AssignMessageDevices(ctx context.Context, account, user string, devices []string, newID func() string, now time.Time,
		events func(*store.Message) []store.Event) (int, error)
}

var _ Store = (*store.Store)(nil)

// Accounts is the node's current accounts.
type Accounts interface {
	View() *accounts.View
}

// Config configures a Service.
type Config struct {
	Store    Store
	Accounts Accounts
	Devices  call.Locator  // users' registered devices
	Client   *sipgo.Client // sends the MESSAGEs (from the listening socket)
	Log      *slog.Logger
	// Schedule is when failed deliveries are tried again (zero:
	// DefaultSchedule).
	Schedule Schedule
	// Lease is how long a taken delivery is this node's before it is due
	// again for anyone (default 1 min: longer than a MESSAGE transaction).
	Lease time.Duration
	// Poll is how often the database is read for due deliveries besides
	// the wake-ups of this node's own messages and registrations
	// (default 1 s).
	Poll time.Duration
	// Timeout bounds one attempt (default 40 s; SIP's Timer F is 32 s).
	Timeout time.Duration
	// Parallel bounds the attempts in flight (default 64).
	Parallel int
}

// Service accepts messages and delivers them.
type Service struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	sem  chan struct{}
	wg   sync.WaitGroup
}

// New returns a service; Run delivers.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Schedule.Every == 0 && len(cfg.Schedule.Steps) == 0 {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 40 * time.Second
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 64
	}
	return &Service{cfg: cfg, log: cfg.Log.With("component", "sms"), wake: make(chan struct{}, 1), sem: make(chan struct{}, cfg.Parallel)}
}

// Incoming is a SIP MESSAGE as the SIP front read it.
type Incoming struct {
	To          string // the Request-URI user: the number or extension it is for
	From        string // the From user
	ContentType string
	Body        []byte
	Dedup       string // Call-ID and CSeq
}

// FromTrunk accepts a message from a trunk to one of a's numbers.
func (s *Service) FromTrunk(ctx context.Context, a *accounts.Account, trunk string, in Incoming) (*store.Message, error) {
	p, err := Inbound(a.Snap.Doc(), in.To, in.From, in.ContentType, in.Body, in.Dedup, time.Now())
	if err != nil {
		return nil, err
	}
	return s.accept(ctx, p)
}

// FromUser accepts a registered user's message.
func (s *Service) FromUser(ctx context.Context, a *accounts.Account, user string, in Incoming) (*store.Message, error) {
	p, err := Outbound(a.Snap, user, in.To, in.ContentType, in.Body, in.Dedup, time.Now())
	if err != nil {
		return nil, err
	}
	return s.accept(ctx, p)
}

// accept stores a planned message with a delivery per device of each
// recipient that has some now, and starts delivering it.
func (s *Service) accept(ctx context.Context, p *Plan) (*store.Message, error) {
	var ds []store.MessageDelivery
	for _, d := range p.Deliveries {
		if d.User == "" || d.Trunk != "" {
			ds = append(ds, d)
			continue
		}
		devs, err := s.cfg.Devices.Devices(ctx, p.Message.Account, d.User)
		if err != nil {
			s.log.Warn("device lookup", "user", d.User, "err", err)
		}
		if len(devs) == 0 {
			ds = append(ds, d) // the worker looks again; a registration hands it over
			continue
		}
		for i, dev := range devs {
			dd := d
			if i > 0 {
				dd.ID = uuid.NewString()
			}
			dd.Device = dev.URI
			ds = append(ds, dd)
		}
	}
	m := p.Message
	created, err := s.cfg.Store.InsertMessage(ctx, &m, ds, p.Events)
	if err != nil {
		return nil, err
	}
	if created {
		s.log.Info("message accepted", "account", m.Account, "id", m.ID, "direction", m.Direction, "to", m.To, "deliveries", len(ds))
		s.Wake()
	}
	return &m, nil
}

// Registered hands a user's waiting messages to the devices the user has
// now; it returns at once (the REGISTER is not held up).
func (s *Service) Registered(account, user string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n, _ := s.assign(ctx, account, user); n > 0 {
			s.Wake()
		}
	}()
}

// assign hands a user's queued messages to the user's current devices
// (store.AssignMessageDevices): each gets each message once, and
// deliveries to bindings that no longer exist are moved to them or
// retired. It returns how many deliveries are due, and false when the user
// has no device or the store failed.
func (s *Service) assign(ctx context.Context, account, user string) (int, bool) {
	devs, err := s.cfg.Devices.Devices(ctx, account, user)
	if err != nil || len(devs) == 0 {
		return 0, false
	}
	uris := make([]string, len(devs))
	for i, d := range devs {
		uris[i] = d.URI
	}
	var doc *config.Document
	if a, ok := s.cfg.Accounts.View().Account(account); ok {
		doc = a.Snap.Doc()
	}
	n, err := s.cfg.Store.AssignMessageDevices(ctx, account, user, uris, uuid.NewString, time.Now(), stateEvents(doc))
	if err != nil {
		s.log.Error("hand messages to registered devices", "account", account, "user", user, "err", err)
		return 0, false
	}
	return n, true
}

// Wake makes the worker look for due deliveries now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// takeBatch is how many due deliveries one read takes.
const takeBatch = 64

// Run delivers until ctx ends: every due delivery (the database's, so
// deliveries a stopped or killed node left are taken up at start and
// after their lease), each attempt on its own goroutine. It returns once
// the attempts in flight have stopped; one cut short is not recorded and
// is tried again after its lease.
func (s *Service) Run(ctx context.Context) {
	defer s.wg.Wait()
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		due, err := s.cfg.Store.TakeDueDeliveries(ctx, time.Now(), s.cfg.Lease, takeBatch)
		if err != nil && ctx.Err() == nil {
			s.log.Error("take due deliveries", "err", err)
		}
		for _, dm := range due {
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			s.wg.Add(1)
			go func() {
				defer func() { <-s.sem; s.wg.Done() }()
				s.attempt(ctx, dm)
			}()
		}
		if len(due) == takeBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// attempt tries one delivery and records what happened.
func (s *Service) attempt(ctx context.Context, dm store.DueMessage) {
	d, m := dm.Delivery, dm.Message
	log := s.log.With("message", m.ID, "delivery", d.ID)
	a, ok := s.cfg.Accounts.View().Account(m.Account)
	if !ok {
		s.record(ctx, log, nil, &dm, store.MessageAttempt{Error: "the account no longer exists"}, true)
		return
	}
	doc := a.Snap.Doc()
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	switch {
	case d.Trunk != "":
		status, err := s.sendTrunk(actx, doc, &d, &m)
		if ctx.Err() != nil {
			return
		}
		res := store.MessageAttempt{Status: status, Error: errText(status, err)}
		// The trunk's final answer is the message's state; only no answer
		// at all is tried again.
		s.record(ctx, log, doc, &dm, res, status >= 300)
	case d.Device == "":
		if n, _ := s.assign(actx, m.Account, d.User); n > 0 {
			s.Wake()
			return
		}
		s.record(ctx, log, doc, &dm, store.MessageAttempt{Error: "no registered device"}, false)
	default:
		devs, err := s.cfg.Devices.Devices(actx, m.Account, d.User)
		if err != nil {
			log.Warn("device lookup", "err", err)
		}
		var dev *call.Device
		for i := range devs {
			if devs[i].URI == d.Device {
				dev = &devs[i]
			}
		}
		if dev == nil {
			// The binding is gone. If the user has devices now (the phone
			// back under another Contact, say), the delivery goes to one
			// without the message, or is retired; else it waits, retried,
			// for the next registration to hand it over.
			if len(devs) > 0 {
				if _, ok := s.assign(actx, m.Account, d.User); ok {
					log.Info("message delivery to a binding that no longer exists handed over", "device", d.Device)
					s.Wake()
					return
				}
			}
			s.record(ctx, log, doc, &dm, store.MessageAttempt{Error: "device not registered"}, false)
			return
		}
		status, err := s.sendDevice(actx, doc, *dev, &d, &m)
		if ctx.Err() != nil {
			return
		}
		s.record(ctx, log, doc, &dm, store.MessageAttempt{Status: status, Error: errText(status, err)}, false)
	}
}

func errText(status int, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case status >= 200 && status < 300:
		return ""
	default:
		return fmt.Sprintf("%d %s", status, call.ReasonPhrase(status))
	}
}

// record settles an attempt: a 2xx is delivered; otherwise the delivery
// is tried again on the schedule, or fails when final or out of tries.
func (s *Service) record(ctx context.Context, log *slog.Logger, doc *config.Document, dm *store.DueMessage, a store.MessageAttempt, final bool) {
	now := time.Now()
	a.At = now
	state, next := store.MessageDelivered, now
	if a.Error != "" {
		state = store.MessageFailed
		if !final {
			if n, ok := s.cfg.Schedule.Next(dm.Delivery.Attempts+1, dm.Message.Created, now); ok {
				state, next = store.MessageQueued, n
			}
		}
	}
	events := stateEvents(doc)
	rctx := context.WithoutCancel(ctx)
	m, changed, err := s.cfg.Store.RecordMessageAttempt(rctx, dm.Delivery.ID, dm.Delivery.Claim, a, state, next, events)
	if errors.Is(err, store.ErrClaimLost) {
		// A registration handed it to a device meanwhile (or another node
		// took it after the lease): this attempt's outcome is not its state.
		log.Info("message attempt outdated", "error", a.Error)
		return
	}
	if err != nil {
		log.Error("record message attempt", "err", err)
		return
	}
	log.Info("message attempt", "user", dm.Delivery.User, "device", dm.Delivery.Device, "trunk", dm.Delivery.Trunk,
		"status", a.Status, "error", a.Error, "delivery_state", state)
	if changed {
		log.Info("message "+m.State, "account", m.Account)
	}
}

// stateEvents makes a message's event when its state changes to delivered
// or failed (none when doc, the account, has no webhook).
func stateEvents(doc *config.Document) func(m *store.Message) []store.Event {
	return func(m *store.Message) []store.Event {
		typ := TypeMessageDelivered
		switch m.State {
		case store.MessageDelivered:
		case store.MessageFailed:
			typ = TypeMessageFailed
		default:
			return nil
		}
		if ev, ok := Event(doc, typ, m); ok {
			return []store.Event{ev}
		}
		return nil
	}
}

// domain is the host of the account's SIP URIs.
func domain(doc *config.Document) string {
	if doc.Domain != "" {
		return doc.Domain
	}
	return doc.Account
}

// newMessage builds a MESSAGE of delivery d to ruri. Every attempt of a
// delivery has its Call-ID (the delivery's ID) and the next CSeq, so the
// receiver can tell a retry of the same message from a new one.
func newMessage(ruri sip.Uri, from, to sip.Uri, d *store.MessageDelivery, m *store.Message) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, ruri)
	callID := sip.CallIDHeader(d.ID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: uint32(d.Attempts + 1), MethodName: sip.MESSAGE})
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: to})
	ct := m.ContentType
	if ct == "" {
		ct = "text/plain;charset=UTF-8"
	}
	req.AppendHeader(sip.NewHeader("Content-Type", ct))
	req.SetBody([]byte(m.Body))
	return req
}

// sendDevice sends m to one registered device of user: From is the
// sender, To the user's address of record.
func (s *Service) sendDevice(ctx context.Context, doc *config.Document, dev call.Device, d *store.MessageDelivery, m *store.Message) (int, error) {
	var ruri sip.Uri
	if err := sip.ParseUri(dev.URI, &ruri); err != nil {
		return 0, fmt.Errorf("device URI: %w", err)
	}
	host := domain(doc)
	req := newMessage(ruri, sip.Uri{Scheme: "sip", User: m.From, Host: host}, sip.Uri{Scheme: "sip", User: d.User, Host: host}, d, m)
	if dev.Addr != "" {
		req.SetDestination(dev.Addr)
	}
	if dev.Transport != "" {
		req.SetTransport(strings.ToUpper(dev.Transport))
	}
	for _, hop := range dev.Route {
		req.AppendHeader(sip.NewHeader("Route", hop))
	}
	res, err := s.cfg.Client.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// sendTrunk sends m through a trunk to the external number m.To, with
// digest auth when the trunk asks for it.
func (s *Service) sendTrunk(ctx context.Context, doc *config.Document, d *store.MessageDelivery, m *store.Message) (int, error) {
	tr, ok := doc.Trunks[d.Trunk]
	if !ok {
		return 0, fmt.Errorf("trunk %s no longer exists", d.Trunk)
	}
	var ruri sip.Uri
	if err := sip.ParseUri(tr.Address, &ruri); err != nil {
		return 0, fmt.Errorf("trunk %s address: %w", d.Trunk, err)
	}
	ruri.User = m.To
	host := domain(doc)
	req := newMessage(ruri, sip.Uri{Scheme: "sip", User: m.From, Host: host}, sip.Uri{Scheme: "sip", User: m.To, Host: ruri.Host}, d, m)
	res, err := s.cfg.Client.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	if (res.StatusCode == 401 || res.StatusCode == 407) && tr.Password != "" {
		user := tr.Username
		if user == "" {
			user = m.From
		}
		res, err = s.cfg.Client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: tr.Password})
		if err != nil {
			return 0, err
		}
	}
	return res.StatusCode, nil
}

// ErrorCode is the status that reports err: an Error's code, else 500.
func ErrorCode(err error) (int, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Reason
	}
	return 500, "internal error"
}
