package events

import "errors"

// Errors of Verify.
var (
	ErrNoSignature       = errors.New("no valid signature header")
	ErrSignatureMismatch = errors.New("the signature matches no secret")
	ErrSignatureExpired  = errors.New("the signature's timestamp is outside the tolerance")
)

// ErrForbiddenAddress is returned (wrapped) for a webhook address that is
// loopback, private or otherwise internal while private addresses are not
// allowed (--webhook-allow-private).
var ErrForbiddenAddress = errors.New("address not allowed for webhooks")

// ErrNoWebhook is the reason given to the queued events of an account that
// has no webhook URL any more.
var ErrNoWebhook = errors.New("the account has no webhook URL")
