package registrar

import "errors"

// Sentinel errors returned by [Authenticator.Verify]. Unknown users and wrong
// passwords both give [ErrInvalidCredentials] on purpose: callers must not be
// able to tell them apart (no extension enumeration).
var (
	// ErrNoCredentials means the request carries no credentials for the realm.
	ErrNoCredentials = errors.New("registrar: no credentials for realm")
	// ErrMalformedCredentials means the Authorization header could not be
	// parsed or lacks a field that qop=auth requires (cnonce, nc, ...).
	ErrMalformedCredentials = errors.New("registrar: malformed credentials")
	// ErrInvalidNonce means the nonce was not issued by a node sharing our
	// secret (or for another realm); the client gets a fresh challenge.
	ErrInvalidNonce = errors.New("registrar: invalid nonce")
	// ErrStaleNonce means the response was right but the nonce has expired
	// (or was forgotten); the client is challenged again with stale=true.
	ErrStaleNonce = errors.New("registrar: stale nonce")
	// ErrNonceReplay means a correct response reused a nonce count (nc) that
	// was already seen for that nonce.
	ErrNonceReplay = errors.New("registrar: nonce count replayed")
	// ErrInvalidCredentials means a wrong password or an unknown user.
	ErrInvalidCredentials = errors.New("registrar: invalid credentials")
)
