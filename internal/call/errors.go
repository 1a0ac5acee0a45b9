package call

import (
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// SIPError is a failure that a SIP final response reports: every refusal
// of the SIP front and of a call is one, and Response turns it (or any
// other error) into the response.
type SIPError struct {
	Code   int
	Reason string // the reason phrase; empty: ReasonPhrase(Code)
	// Err, when set, is the detail sent in a Warning header (399).
	Err error
	// Header is an extra header of the response (e.g. Accept with a 415).
	Header sip.Header
}

func (e *SIPError) Error() string {
	msg := fmt.Sprintf("%d %s", e.Code, e.reason())
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *SIPError) Unwrap() error { return e.Err }

// Is matches another SIPError of the same code, so that errors.Is(err,
// ErrForbidden) holds for any 403.
func (e *SIPError) Is(target error) bool {
	t, ok := target.(*SIPError)
	return ok && t.Code == e.Code && t.Err == nil
}

func (e *SIPError) reason() string {
	if e.Reason != "" {
		return e.Reason
	}
	return ReasonPhrase(e.Code)
}

// Refusals shared by the SIP front and the calls.
var (
	ErrBadRequest  = &SIPError{Code: 400}
	ErrForbidden   = &SIPError{Code: 403}
	ErrNotFound    = &SIPError{Code: 404}
	ErrUnavailable = &SIPError{Code: 503} // draining, no resources
	// ErrNoDialog is returned for in-dialog requests that match no call.
	ErrNoDialog = &SIPError{Code: 481}
	errPending  = &SIPError{Code: 491} // a re-INVITE or REFER while one is in progress
)

// Response builds the response to req that reports err: a SIPError's code,
// reason and Warning; any other error is a 500 with no detail (internal
// errors are not the peer's business).
func Response(req *sip.Request, err error) *sip.Response {
	se := sipError(err)
	res := sip.NewResponseFromRequest(req, se.Code, se.reason(), nil)
	for _, h := range se.headers() {
		res.AppendHeader(h)
	}
	return res
}

// Respond answers a server transaction with Response(req, err).
func Respond(tx sip.ServerTransaction, req *sip.Request, err error) error {
	return tx.Respond(Response(req, err))
}

// headers returns the headers Response adds for err.
func (e *SIPError) headers() []sip.Header {
	var hs []sip.Header
	if e.Err != nil {
		hs = append(hs, warning(e.Err))
	}
	if e.Header != nil {
		hs = append(hs, e.Header)
	}
	return hs
}

// sipError is err as a SIPError: itself, or a 500 for any other error.
func sipError(err error) *SIPError {
	var se *SIPError
	if !errors.As(err, &se) {
		se = &SIPError{Code: 500}
	}
	return se
}

func warning(err error) sip.Header {
	return sip.NewHeader("Warning", fmt.Sprintf("399 switchboard %q", err.Error()))
}

// ReasonPhrase is the standard reason phrase of a SIP status code.
func ReasonPhrase(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	switch code / 100 {
	case 2:
		return "OK"
	case 4:
		return "Request Failure"
	case 5:
		return "Server Failure"
	case 6:
		return "Global Failure"
	}
	return "Unknown"
}
