package call

// Cause is why a call ended, from the caller's point of view: the call
// record's hangup_cause.
type Cause string

// Hangup causes.
const (
	CauseCallerBye      Cause = "caller_bye"      // the caller hung up after an answer
	CauseCallerCancel   Cause = "caller_cancel"   // the caller hung up before one
	CauseCalleeBye      Cause = "callee_bye"      // the callee hung up
	CauseBusy           Cause = "busy"            // every attempt failed, the last busy
	CauseNoAnswer       Cause = "no_answer"       // ... the last unanswered
	CauseUnavailable    Cause = "unavailable"     // ... nothing to ring, or unavailable
	CauseRejected       Cause = "rejected"        // a rule or the number refused the call
	CauseNotFound       Cause = "not_found"       // nothing answers to what was dialled
	CauseBadRequest     Cause = "bad_request"     // the INVITE was unusable
	CauseMediaError     Cause = "media_error"     // no usable SDP, no port, no bridge
	CauseAbandoned      Cause = "abandoned"       // the caller left the queue
	CauseAckTimeout     Cause = "ack_timeout"     // the caller never acknowledged our 200
	CauseShutdown       Cause = "shutdown"        // the drain timeout ended the call
	CauseRTPTimeout     Cause = "rtp_timeout"     // the media stopped
	CauseTransferFailed Cause = "transfer_failed" // the transfer target did not answer
	CausePromptPlayed   Cause = "prompt_played"   // on_failure prompt:NAME, then hang up
	CauseVoicemailLeft  Cause = "voicemail_left"  // the caller left a message
	CauseVoicemailFull  Cause = "voicemail_full"  // the message reached its length limit
	CauseOrbitEmpty     Cause = "orbit_empty"     // a pickup of a park orbit with no call
	CauseInternalError  Cause = "internal_error"  // a bug: the call's goroutine panicked
)

// cause is the hangup cause of a call in which every attempt failed so.
func (f failClass) cause() Cause {
	switch f {
	case failBusy:
		return CauseBusy
	case failNoAnswer:
		return CauseNoAnswer
	}
	return CauseUnavailable
}
