package media

import "errors"

// Sentinel errors. Functions wrap them with detail; test with errors.Is.
var (
	// ErrClosed is returned by a Session or Bridge that has been closed.
	ErrClosed = errors.New("media: closed")
	// ErrNoPorts means the PortAllocator found no free RTP/RTCP port pair.
	ErrNoPorts = errors.New("media: no free rtp port pair")
	// ErrNoRemote means a packet was written before the remote address was
	// known (no SetRemote and nothing received yet).
	ErrNoRemote = errors.New("media: remote address unknown")

	// ErrShortPayload means an RFC 4733 payload is shorter than 4 bytes.
	ErrShortPayload = errors.New("media: telephone-event payload shorter than 4 bytes")

	// ErrNotWAV means the data is not a RIFF/WAVE file.
	ErrNotWAV = errors.New("wav: not a RIFF/WAVE file")
	// ErrTruncatedWAV means the file ends inside a header or chunk.
	ErrTruncatedWAV = errors.New("wav: truncated")
	// ErrInvalidWAV means a header field is inconsistent or absurd.
	ErrInvalidWAV = errors.New("wav: invalid")
	// ErrWAVTooLarge is returned by WAVWriter.WriteFrame when the data would
	// no longer fit a 32-bit RIFF size (about 37 hours of stereo 8 kHz).
	ErrWAVTooLarge = errors.New("wav: recording exceeds 4 GiB")
	// ErrUnsupportedWAV means a well-formed file in an encoding we do not read.
	ErrUnsupportedWAV = errors.New("wav: unsupported")

	// ErrMalformedSDP means the SDP could not be parsed.
	ErrMalformedSDP = errors.New("sdp: malformed")
	// ErrNoAudio means the SDP has no usable audio stream.
	ErrNoAudio = errors.New("sdp: no audio stream")
	// ErrNoCommonCodec means none of the offered codecs is PCMU or PCMA
	// (the SIP layer answers 488 Not Acceptable Here).
	ErrNoCommonCodec = errors.New("sdp: no common codec")
)
