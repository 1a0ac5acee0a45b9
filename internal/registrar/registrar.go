// Package registrar handles SIP REGISTER (RFC 3261 §10) for the users of
// every account, and authenticates users' requests with digest auth.
//
// The pieces are independent and meant to be wired by internal/sipserver:
//
//   - [Guard]: per-source token-bucket rate limit and lockout after repeated
//     authentication failures, as sipgo middleware.
//   - [Authenticator]: digest challenges and verification with stateless,
//     HMAC-signed nonces shared by every node, nonce-count replay
//     protection, and identical answers for unknown users and wrong
//     passwords.
//   - [Registrar]: the REGISTER handler and the location lookup used by the
//     call layer, over a [Contacts] store.
//
// Locks: Guard.mu, Lockouts.mu, MemoryLedger.mu, ncTracker.mu and
// MemContacts.mu are leaves; no lock is held while calling out of the
// package (Guard.Fail calls its ledger unlocked).
package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Config configures a [Registrar].
type Config struct {
	// Users resolves addresses of record (required).
	Users Users
	// Contacts stores the bindings (required).
	Contacts Contacts
	// Auth authenticates REGISTERs (required).
	Auth *Authenticator
	// DefaultExpires applies when the request gives no expiry (default 3600s).
	DefaultExpires time.Duration
	// MinExpires: shorter non-zero expiries get 423 Interval Too Brief
	// (default 60s).
	MinExpires time.Duration
	// MaxExpires: longer expiries are shortened to it (default 7200s).
	MaxExpires time.Duration
	// MaxContacts bounds the bindings of one user (default 10); when a new
	// binding would exceed it, those closest to expiry are dropped.
	MaxContacts int
	// OnRegister, if set, is called after a successful REGISTER that added
	// or refreshed at least one binding, once the 200 OK has been sent, on
	// the request's goroutine (start a goroutine for slow work). Stored SMS
	// are delivered from here.
	OnRegister func(account, user string)
	// OnBindings, if set, is called after every successful REGISTER
	// (new, refreshed or removed bindings) with the user's devices now,
	// and when a binding this registrar accepted expires unrefreshed.
	OnBindings func(account, user string, devices int)
	// StoreTimeout bounds each call to Contacts (default 5s).
	StoreTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Registrar is the SIP registrar. It is safe for concurrent use.
type Registrar struct {
	cfg Config
	// expiry holds, per user it registered, a timer at the earliest expiry
	// of their bindings, for OnBindings.
	mu     sync.Mutex
	expiry map[[2]string]*time.Timer
	closed bool
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Registrar, error) {
	switch {
	case cfg.Users == nil:
		return nil, errors.New("registrar: Config.Users is required")
	case cfg.Contacts == nil:
		return nil, errors.New("registrar: Config.Contacts is required")
	case cfg.Auth == nil:
		return nil, errors.New("registrar: Config.Auth is required")
	}
	if cfg.DefaultExpires <= 0 {
		cfg.DefaultExpires = time.Hour
	}
	if cfg.MinExpires <= 0 {
		cfg.MinExpires = time.Minute
	}
	if cfg.MaxExpires <= 0 {
		cfg.MaxExpires = 2 * time.Hour
	}
	if cfg.MinExpires > cfg.MaxExpires {
		return nil, fmt.Errorf("registrar: MinExpires %v above MaxExpires %v", cfg.MinExpires, cfg.MaxExpires)
	}
	cfg.DefaultExpires = min(max(cfg.DefaultExpires, cfg.MinExpires), cfg.MaxExpires)
	if cfg.MaxContacts <= 0 {
		cfg.MaxContacts = 10
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registrar{cfg: cfg, expiry: map[[2]string]*time.Timer{}}, nil
}

// Close stops the expiry timers: no OnBindings after it returns, but for
// one already running.
func (r *Registrar) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for k, t := range r.expiry {
		t.Stop()
		delete(r.expiry, k)
	}
}

// watchExpiry sets the user's timer at the earliest expiry of current.
func (r *Registrar) watchExpiry(account, user string, current []Contact, now time.Time) {
	if r.cfg.OnBindings == nil {
		return
	}
	key := [2]string{account, user}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.expiry[key]; ok {
		t.Stop()
		delete(r.expiry, key)
	}
	if len(current) == 0 || r.closed {
		return
	}
	next := current[0].Expires
	for _, c := range current[1:] {
		if c.Expires.Before(next) {
			next = c.Expires
		}
	}
	// Just past the expiry: Contacts counts a binding until it.
	r.expiry[key] = time.AfterFunc(next.Sub(now)+10*time.Millisecond, func() { r.expired(account, user) })
}

// expired reports the user's devices once one of their bindings lapsed.
func (r *Registrar) expired(account, user string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.StoreTimeout)
	defer cancel()
	now := r.cfg.Now()
	current, err := r.cfg.Contacts.Contacts(ctx, account, user, now)
	if err != nil {
		r.cfg.Logger.Error("registrar: bindings after an expiry", "account", account, "user", user, "error", err)
		return
	}
	r.watchExpiry(account, user, current, now)
	r.cfg.OnBindings(account, user, len(current))
}

// Lookup returns the user's current bindings (the devices to ring).
func (r *Registrar) Lookup(ctx context.Context, account, user string) ([]Contact, error) {
	cs, err := r.cfg.Contacts.Contacts(ctx, account, user, r.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("registrar: lookup %s/%s: %w", account, user, err)
	}
	return cs, nil
}

// regError is a REGISTER answered with an error status.
type regError struct {
	code    int
	reason  string
	headers []sip.Header
}

func (e *regError) Error() string { return fmt.Sprintf("%d %s", e.code, e.reason) }

func badRequest(reason string) *regError {
	return &regError{code: sip.StatusBadRequest, reason: reason}
}

// binding is one Contact of a REGISTER after validation.
type binding struct {
	uri        string
	expires    time.Duration // 0 removes
	instanceID string
}

// HandleRegister is the sipgo handler for REGISTER. It authenticates the
// request, checks that the address of record (To) is the authenticated user,
// then adds, refreshes or removes bindings and answers 200 OK listing the
// user's bindings with their remaining expiry. A REGISTER without Contact is
// a query.
func (r *Registrar) HandleRegister(req *sip.Request, tx sip.ServerTransaction) {
	log := r.cfg.Logger.With("method", "REGISTER", "source", req.Source())
	defer func() {
		if p := recover(); p != nil {
			log.Error("sip register handler panicked", "panic", p, "stack", string(debug.Stack()))
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusInternalServerError, "Server Internal Error", nil))
		}
	}()
	if req.To() == nil || req.From() == nil || req.CallID() == nil || req.CSeq() == nil {
		r.respond(tx, req, badRequest("Missing Mandatory Header"))
		return
	}
	id, ok := r.cfg.Auth.Authenticate(req, tx)
	if !ok {
		return
	}
	log = log.With("account", id.Account, "user", id.User)
	// The address of record must be the authenticated user (by name or
	// extension): alice must not register devices for bob. Unknown and
	// foreign AORs get the same answer.
	to := req.To().Address
	if acc, user, _, ok := r.cfg.Users.LookupUser(id.Realm, to.User); !ok || acc != id.Account || user != id.User {
		log.Info("sip register for another address of record refused", "aor", to.User)
		r.respond(tx, req, &regError{code: sip.StatusForbidden, reason: "Forbidden"})
		return
	}
	bindings, wildcard, rerr := r.parseBindings(req)
	if rerr != nil {
		r.respond(tx, req, rerr)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.StoreTimeout)
	defer cancel()
	now := r.cfg.Now()
	added, err := r.apply(ctx, req, id, bindings, wildcard, now)
	if err != nil {
		var re *regError
		if errors.As(err, &re) {
			r.respond(tx, req, re)
			return
		}
		log.Error("sip register: store failed", "error", err)
		r.respond(tx, req, &regError{code: sip.StatusInternalServerError, reason: "Server Internal Error"})
		return
	}
	current, err := r.cfg.Contacts.Contacts(ctx, id.Account, id.User, now)
	if err != nil {
		log.Error("sip register: store failed", "error", err)
		r.respond(tx, req, &regError{code: sip.StatusInternalServerError, reason: "Server Internal Error"})
		return
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	for _, c := range current {
		secs := int64((c.Expires.Sub(now) + time.Second - 1) / time.Second)
		res.AppendHeader(sip.NewHeader("Contact", "<"+c.URI+">;expires="+strconv.FormatInt(secs, 10)))
	}
	// The Path is echoed for the proxy that added it (RFC 3327 §5.3).
	for _, hop := range pathOf(req) {
		res.AppendHeader(sip.NewHeader("Path", hop))
	}
	// Many phones set their clock from the registrar's Date (RFC 3261 §10.3).
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	if err := tx.Respond(res); err != nil {
		log.Debug("sip register: respond failed", "error", err)
		return
	}
	log.Debug("sip register ok", "bindings", len(current), "added", added)
	if added && r.cfg.OnRegister != nil {
		r.cfg.OnRegister(id.Account, id.User)
	}
	if r.cfg.OnBindings != nil {
		r.watchExpiry(id.Account, id.User, current, now)
		r.cfg.OnBindings(id.Account, id.User, len(current))
	}
}

func (r *Registrar) respond(tx sip.ServerTransaction, req *sip.Request, e *regError) {
	res := sip.NewResponseFromRequest(req, e.code, e.reason, nil)
	for _, h := range e.headers {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		r.cfg.Logger.Debug("sip register: respond failed", "status", e.code, "error", err)
	}
}

// parseBindings validates the Contact and Expires headers as a whole before
// anything changes (RFC 3261 §10.3 steps 6-7): a REGISTER is applied
// entirely or not at all.
func (r *Registrar) parseBindings(req *sip.Request) ([]binding, bool, *regError) {
	headerExpires := r.cfg.DefaultExpires
	var expiresZero bool
	if h := req.GetHeader("Expires"); h != nil {
		var valid bool
		headerExpires, valid = r.parseExpires(h.Value())
		expiresZero = valid && headerExpires == 0
	}
	var contacts []*sip.ContactHeader
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			// Not parsed by sipgo (a request built in-process).
			c = &sip.ContactHeader{}
			if _, err := sip.ParseAddressValue(h.Value(), &c.Address, &c.Params); err != nil {
				return nil, false, badRequest("Bad Contact")
			}
		}
		contacts = append(contacts, c)
	}
	if len(contacts) > 2*r.cfg.MaxContacts {
		return nil, false, &regError{code: sip.StatusForbidden, reason: "Too Many Contacts"}
	}
	for _, c := range contacts {
		if c.Address.Wildcard {
			// "Contact: *" is only valid alone and with Expires: 0.
			if len(contacts) != 1 || !expiresZero {
				return nil, false, badRequest("Invalid Wildcard Contact")
			}
			return nil, true, nil
		}
	}
	var out []binding
	for _, c := range contacts {
		scheme := strings.ToLower(c.Address.Scheme)
		if (scheme != "sip" && scheme != "sips") || c.Address.Host == "" {
			return nil, false, badRequest("Bad Contact URI")
		}
		exp := headerExpires
		if v, ok := paramValue(c.Params, "expires"); ok {
			exp, _ = r.parseExpires(v)
		}
		if exp > 0 && exp < r.cfg.MinExpires {
			return nil, false, &regError{
				code:    sip.StatusIntervalToBrief,
				reason:  "Interval Too Brief",
				headers: []sip.Header{sip.NewHeader("Min-Expires", strconv.Itoa(int(r.cfg.MinExpires/time.Second)))},
			}
		}
		inst, _ := paramValue(c.Params, "+sip.instance")
		inst = strings.Trim(inst, "\"<>")
		out = append(out, binding{uri: c.Address.String(), expires: min(exp, r.cfg.MaxExpires), instanceID: inst})
	}
	return out, false, nil
}

// parseExpires reads a delta-seconds value; a malformed one means the
// default (RFC 3261 §20.19) and valid=false, an overlong one the maximum.
func (r *Registrar) parseExpires(v string) (d time.Duration, valid bool) {
	v = strings.TrimSpace(v)
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return r.cfg.MaxExpires, true
		}
		return r.cfg.DefaultExpires, false
	}
	if n > uint64(r.cfg.MaxExpires/time.Second) {
		return r.cfg.MaxExpires, true
	}
	return time.Duration(n) * time.Second, true
}

// paramValue looks a header parameter up case-insensitively.
func paramValue(p sip.HeaderParams, key string) (string, bool) {
	for _, kv := range p {
		if strings.EqualFold(kv.K, key) {
			return kv.V, true
		}
	}
	return "", false
}

// apply changes the stored bindings and reports whether any was added or
// refreshed.
func (r *Registrar) apply(ctx context.Context, req *sip.Request, id Identity, bindings []binding, wildcard bool, now time.Time) (bool, error) {
	st := r.cfg.Contacts
	existing, err := st.Contacts(ctx, id.Account, id.User, now)
	if err != nil {
		return false, err
	}
	path := pathOf(req)
	if wildcard {
		for _, c := range existing {
			if err := st.DeleteContact(ctx, id.Account, id.User, c.URI); err != nil {
				return false, err
			}
		}
		return false, nil
	}

	// Work out the resulting set, then write the difference.
	keep := make(map[string]Contact, len(existing))
	for _, c := range existing {
		keep[c.URI] = c
	}
	var puts []Contact
	ua := ""
	if h := req.GetHeader("User-Agent"); h != nil {
		ua = h.Value()
	}
	for _, b := range bindings {
		if b.expires == 0 {
			delete(keep, b.uri)
			puts = slices.DeleteFunc(puts, func(c Contact) bool { return c.URI == b.uri })
			continue
		}
		if b.instanceID != "" {
			// The same device (RFC 5626 instance) on a new address
			// replaces its old binding.
			for uri, c := range keep {
				if c.InstanceID == b.instanceID && uri != b.uri {
					delete(keep, uri)
				}
			}
			puts = slices.DeleteFunc(puts, func(c Contact) bool {
				return c.InstanceID == b.instanceID && c.URI != b.uri
			})
		}
		c := Contact{
			Account:    id.Account,
			User:       id.User,
			URI:        b.uri,
			Source:     req.Source(),
			Transport:  req.Transport(),
			UserAgent:  ua,
			InstanceID: b.instanceID,
			Expires:    now.Add(b.expires),
			Path:       path,
			NAT:        detectNAT(b.uri, req.Source(), req.Via()),
			Client:     r.cfg.Auth.source(req).String(),
		}
		keep[c.URI] = c
		puts = slices.DeleteFunc(puts, func(p Contact) bool { return p.URI == c.URI })
		puts = append(puts, c)
	}
	if len(puts) > r.cfg.MaxContacts {
		return false, &regError{code: sip.StatusForbidden, reason: "Too Many Contacts"}
	}
	if len(keep) > r.cfg.MaxContacts {
		// Drop the old bindings closest to expiry to make room.
		fresh := make(map[string]bool, len(puts))
		for _, c := range puts {
			fresh[c.URI] = true
		}
		var old []Contact
		for _, c := range keep {
			if !fresh[c.URI] {
				old = append(old, c)
			}
		}
		slices.SortFunc(old, func(a, b Contact) int { return a.Expires.Compare(b.Expires) })
		for _, c := range old[:len(keep)-r.cfg.MaxContacts] {
			delete(keep, c.URI)
		}
	}
	for _, c := range existing {
		if _, ok := keep[c.URI]; !ok {
			if err := st.DeleteContact(ctx, id.Account, id.User, c.URI); err != nil {
				return false, err
			}
		}
	}
	for _, c := range puts {
		if err := st.PutContact(ctx, c); err != nil {
			return false, err
		}
	}
	return len(puts) > 0, nil
}
