package testphone

import (
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrClosed is returned by a Phone that has been closed.
	ErrClosed = errors.New("testphone: phone closed")
	// ErrCallEnded is returned by Call methods that need a live call.
	ErrCallEnded = errors.New("testphone: call ended")
	// ErrNotAnswered is returned by Call methods that need an answered call.
	ErrNotAnswered = errors.New("testphone: call not answered")
	// ErrNoTelephoneEvent means the far end did not negotiate RFC 4733
	// telephone-events, so DTMF cannot be sent.
	ErrNoTelephoneEvent = errors.New("testphone: no telephone-event negotiated")
	// ErrWrongDirection is returned by Answer and Reject on an outgoing call.
	ErrWrongDirection = errors.New("testphone: not an incoming call")
)

// StatusError is a SIP request (INVITE, REGISTER, MESSAGE) that got a final
// non-2xx response.
type StatusError struct {
	Method   sip.RequestMethod
	Code     int
	Reason   string
	Response *sip.Response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("testphone: %s failed: %d %s", e.Method, e.Code, e.Reason)
}

// StatusCode returns the SIP status code carried by err (a *StatusError
// anywhere in its chain), or 0 if there is none.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func statusError(method sip.RequestMethod, res *sip.Response) *StatusError {
	return &StatusError{Method: method, Code: res.StatusCode, Reason: res.Reason, Response: res}
}
