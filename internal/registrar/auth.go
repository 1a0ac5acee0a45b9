package registrar

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/switchboard/switchboard/internal/security"
)

// AuthConfig configures an [Authenticator].
type AuthConfig struct {
	// Users resolves usernames and passwords (required).
	Users Users
	// Secret signs nonces; every node that shares it accepts the others'
	// nonces. At least 16 bytes; if empty a random one is made, which only
	// suits a single node.
	Secret []byte
	// NonceTTL is how long a nonce is good for (default 5m); after that a
	// correct response gets a stale=true challenge.
	NonceTTL time.Duration
	// MaxTrackedNonces bounds the nonce-count replay table (default 100000).
	MaxTrackedNonces int
	// Guard, if set, is told about failed authentications and its lockout
	// is enforced (403) even where its middleware is not installed.
	Guard *Guard
	// Source extracts the address failures are accounted to (default
	// [SourceAddr]); keep it the same as the Guard's.
	Source func(*sip.Request) netip.Addr
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Authenticator does SIP digest authentication (RFC 2617/7616, MD5,
// qop=auth) of users' requests: 401/WWW-Authenticate for REGISTER and
// 407/Proxy-Authenticate for everything else (INVITE, MESSAGE, ...). The
// realm is the account's SIP domain as the request names it: the To host of
// a REGISTER, the From host otherwise.
//
// Unknown users are answered exactly as wrong passwords are, after the same
// hashing against a dummy password, so scanners cannot enumerate extensions.
// It is safe for concurrent use.
type Authenticator struct {
	users  Users
	nonces nonceSigner
	nc     *ncTracker
	ttl    time.Duration
	dummy  string
	guard  *Guard
	source func(*sip.Request) netip.Addr
	now    func() time.Time
	log    *slog.Logger
}

// Identity is who a request was authenticated as.
type Identity struct {
	Account string
	// User is the user's name in the account (not the extension).
	User string
	// Username is the name the device authenticated with (user name or
	// extension number).
	Username string
	// Realm is the SIP domain the user authenticated in.
	Realm string
}

// NewAuthenticator checks cfg and fills in its defaults.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if cfg.Users == nil {
		return nil, errors.New("registrar: AuthConfig.Users is required")
	}
	secret := cfg.Secret
	switch {
	case len(secret) == 0:
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	case len(secret) < 16:
		return nil, errors.New("registrar: nonce secret shorter than 16 bytes")
	}
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = 5 * time.Minute
	}
	if cfg.MaxTrackedNonces <= 0 {
		cfg.MaxTrackedNonces = 100000
	}
	if cfg.Source == nil {
		cfg.Source = SourceAddr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dummy := make([]byte, 16)
	_, _ = rand.Read(dummy)
	return &Authenticator{
		users:  cfg.Users,
		nonces: nonceSigner{key: append([]byte(nil), secret...)},
		nc:     newNCTracker(cfg.MaxTrackedNonces),
		ttl:    cfg.NonceTTL,
		dummy:  hex.EncodeToString(dummy),
		guard:  cfg.Guard,
		source: cfg.Source,
		now:    cfg.Now,
		log:    cfg.Logger,
	}, nil
}

// RealmOf returns the realm a request authenticates in, lower-cased: the To
// host of a REGISTER (the address of record's domain), the From host of any
// other request. It is "" when the header is missing.
func RealmOf(req *sip.Request) string {
	if req.Method == sip.REGISTER {
		if to := req.To(); to != nil {
			return strings.ToLower(to.Address.Host)
		}
		return ""
	}
	if from := req.From(); from != nil {
		return strings.ToLower(from.Address.Host)
	}
	return ""
}

// challengeHeaders returns the header a challenge goes in and the one the
// answer comes back in, for req's method.
func challengeHeaders(req *sip.Request) (challenge string, answers []string) {
	if req.Method == sip.REGISTER {
		return "WWW-Authenticate", []string{"Authorization"}
	}
	// Some UAs answer a 407 with Authorization; accept it too.
	return "Proxy-Authenticate", []string{"Proxy-Authorization", "Authorization"}
}

// Challenge builds the challenge response to req with a fresh nonce for
// realm: 401 with WWW-Authenticate for REGISTER, 407 with Proxy-Authenticate
// otherwise. stale=true tells the client its password was right and only the
// nonce needs renewing.
func (a *Authenticator) Challenge(req *sip.Request, realm string, stale bool) *sip.Response {
	code, reason := sip.StatusProxyAuthRequired, "Proxy Authentication Required"
	if req.Method == sip.REGISTER {
		code, reason = sip.StatusUnauthorized, "Unauthorized"
	}
	chal := digest.Challenge{
		Realm:     realm,
		Nonce:     a.nonces.issue(realm, a.now()),
		Stale:     stale,
		Algorithm: "MD5",
		QOP:       []string{"auth"},
	}
	hdr, _ := challengeHeaders(req)
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader(hdr, chal.String()))
	return res
}

// Verify checks req's credentials for realm and returns who sent it. Errors:
// [ErrNoCredentials], [ErrMalformedCredentials], [ErrInvalidNonce],
// [ErrStaleNonce], [ErrNonceReplay], [ErrInvalidCredentials] (wrong password
// and unknown user alike), each possibly wrapped. A successful Verify uses up
// the request's nonce count.
func (a *Authenticator) Verify(req *sip.Request, realm string) (Identity, error) {
	_, names := challengeHeaders(req)
	var values []string
	for _, n := range names {
		for _, h := range req.GetHeaders(n) {
			values = append(values, h.Value())
		}
	}
	if len(values) == 0 {
		return Identity{}, ErrNoCredentials
	}
	if len(values) > 8 {
		return Identity{}, fmt.Errorf("%w: %d credentials headers", ErrMalformedCredentials, len(values))
	}
	var (
		cred     credentials
		found    bool
		parseErr error
	)
	for _, v := range values {
		c, err := parseCredentials(v)
		if err != nil {
			parseErr = err
			continue
		}
		if strings.EqualFold(c.Realm, realm) {
			cred, found = c, true
			break
		}
	}
	if !found {
		if parseErr != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrMalformedCredentials, parseErr)
		}
		// Credentials for another realm are not for us (RFC 3261 §22.3).
		return Identity{}, ErrNoCredentials
	}
	nc, err := cred.check()
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrMalformedCredentials, err)
	}
	now := a.now()
	issued, nonceErr := a.nonces.check(cred.Nonce, realm, now, a.ttl)
	if errors.Is(nonceErr, ErrInvalidNonce) {
		return Identity{}, nonceErr
	}

	// From here on, unknown users and wrong passwords take the same path.
	account, user, password, ok := a.users.LookupUser(realm, cred.Username)
	if !ok {
		password = a.dummy
	}
	want := cred.expectedResponse(string(req.Method), password)
	match := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cred.Response))) == 1
	if !ok || !match {
		return Identity{}, ErrInvalidCredentials
	}
	if nonceErr != nil {
		return Identity{}, nonceErr // stale, and the password was right
	}
	if err := a.nc.use(cred.Nonce, issued, nc, now, a.ttl); err != nil {
		return Identity{}, err
	}
	return Identity{Account: account, User: user, Username: cred.Username, Realm: realm}, nil
}

// Authenticate runs the whole exchange for a request that needs a user:
// 403 if the source is locked out, a challenge when credentials are missing,
// wrong, stale or replayed (failures count towards the lockout), 400 when
// the request has no realm. It returns ok=false when it has answered the
// request, in which case the caller must not respond.
func (a *Authenticator) Authenticate(req *sip.Request, tx sip.ServerTransaction) (Identity, bool) {
	if tx == nil {
		return Identity{}, false
	}
	ip := a.source(req)
	if a.guard != nil && a.guard.Locked(ip) {
		a.respond(tx, sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", nil))
		return Identity{}, false
	}
	realm := RealmOf(req)
	if realm == "" {
		a.respond(tx, sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
		return Identity{}, false
	}
	id, err := a.Verify(req, realm)
	switch {
	case err == nil:
		return id, true
	case errors.Is(err, ErrNoCredentials), errors.Is(err, ErrInvalidNonce):
		a.respond(tx, a.Challenge(req, realm, false))
	case errors.Is(err, ErrStaleNonce), errors.Is(err, ErrNonceReplay):
		a.log.Debug("sip auth: renewing nonce", "source", ip, "realm", realm, "error", err)
		a.respond(tx, a.Challenge(req, realm, true))
	default: // invalid or malformed credentials
		security.Log(a.log, security.AuthFailure, ip, "method", req.Method, "realm", realm, "error", err.Error())
		if a.guard != nil {
			// The ledger may be the database: bounded, so that a slow one
			// delays the answer to a guess, never a transaction's life.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			a.guard.Fail(ctx, ip)
			cancel()
		}
		a.respond(tx, a.Challenge(req, realm, false))
	}
	return Identity{}, false
}

func (a *Authenticator) respond(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		a.log.Debug("sip auth: respond failed", "status", res.StatusCode, "error", err)
	}
}

// AuthenticatedHandler handles a request whose sender has been authenticated.
type AuthenticatedHandler func(req *sip.Request, tx sip.ServerTransaction, id Identity)

// Require wraps next so that it only runs for authenticated requests; the
// others are answered by [Authenticator.Authenticate]. Use it for INVITE,
// MESSAGE and other requests from users, not for ACK or CANCEL.
func (a *Authenticator) Require(next AuthenticatedHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		id, ok := a.Authenticate(req, tx)
		if !ok {
			return
		}
		next(req, tx, id)
	}
}
