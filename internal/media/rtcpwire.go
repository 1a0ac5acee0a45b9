package media

import (
	"encoding/binary"
	"errors"
)

// Our RTCP is written and read here by hand (RFC 3550 §6): a session sends
// a report every few seconds for the whole call, and building it as
// pion/rtcp packets allocated about 540 bytes each time, garbage that
// piled up in the heap of every long call between collections.

// RTCP packet types (RFC 3550 §12.1).
const (
	rtcpSR   = 200
	rtcpRR   = 201
	rtcpSDES = 202
	rtcpBYE  = 203

	sdesCNAME = 1
)

// rtcpReport is what one compound report of ours says.
type rtcpReport struct {
	ssrc  uint32
	cname string
	// sender: an SR with the fields below, else an RR.
	sender          bool
	ntp             uint64
	rtpTime         uint32
	packets, octets uint32
	// block: a reception report block about the stream we receive.
	block    bool
	source   uint32
	fraction uint8
	lost     uint32 // cumulative, 24 bits
	extSeq   uint32 // extended highest sequence number received
	jitter   uint32
	lsr      uint32 // middle 32 bits of the last SR's NTP time
	dlsr     uint32 // delay since that SR, 1/65536 s
	bye      bool
}

// appendRTCPHeader appends a packet header: version 2, no padding, count
// (reports or chunks), type and the length in 32-bit words minus one.
func appendRTCPHeader(b []byte, count int, typ uint8, words int) []byte {
	return append(b, 2<<6|uint8(count), typ, uint8((words-1)>>8), uint8(words-1))
}

// appendTo appends r as a compound packet: SR or RR, SDES with the CNAME,
// and BYE when r.bye.
func (r *rtcpReport) appendTo(b []byte) []byte {
	blocks := 0
	if r.block {
		blocks = 1
	}
	if r.sender {
		b = appendRTCPHeader(b, blocks, rtcpSR, 7+6*blocks)
		b = binary.BigEndian.AppendUint32(b, r.ssrc)
		b = binary.BigEndian.AppendUint64(b, r.ntp)
		b = binary.BigEndian.AppendUint32(b, r.rtpTime)
		b = binary.BigEndian.AppendUint32(b, r.packets)
		b = binary.BigEndian.AppendUint32(b, r.octets)
	} else {
		b = appendRTCPHeader(b, blocks, rtcpRR, 2+6*blocks)
		b = binary.BigEndian.AppendUint32(b, r.ssrc)
	}
	if r.block {
		b = binary.BigEndian.AppendUint32(b, r.source)
		b = binary.BigEndian.AppendUint32(b, uint32(r.fraction)<<24|r.lost&0xFFFFFF)
		b = binary.BigEndian.AppendUint32(b, r.extSeq)
		b = binary.BigEndian.AppendUint32(b, r.jitter)
		b = binary.BigEndian.AppendUint32(b, r.lsr)
		b = binary.BigEndian.AppendUint32(b, r.dlsr)
	}
	// SDES: one chunk, our SSRC and CNAME, then a null item ending the
	// list, padded with nulls to a 32-bit boundary.
	cname := r.cname[:min(len(r.cname), 255)]
	chunk := 4 + 2 + len(cname) + 1
	chunk += (4 - chunk%4) % 4
	b = appendRTCPHeader(b, 1, rtcpSDES, 1+chunk/4)
	b = binary.BigEndian.AppendUint32(b, r.ssrc)
	b = append(b, sdesCNAME, uint8(len(cname)))
	b = append(b, cname...)
	for range chunk - 4 - 2 - len(cname) {
		b = append(b, 0)
	}
	if r.bye {
		b = appendRTCPHeader(b, 1, rtcpBYE, 2)
		b = binary.BigEndian.AppendUint32(b, r.ssrc)
	}
	return b
}

var errBadRTCP = errors.New("not an RTCP compound packet")

// readRTCP checks that b is a compound RTCP packet (every packet version 2
// and within b; RFC 3550 §6.1) and returns the NTP time of the last sender
// report in it (hasSR false when there is none).
func readRTCP(b []byte) (ntp uint64, hasSR bool, err error) {
	if len(b) < 4 {
		return 0, false, errBadRTCP
	}
	for len(b) > 0 {
		if len(b) < 4 || b[0]>>6 != 2 {
			return 0, false, errBadRTCP
		}
		n := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if n > len(b) {
			return 0, false, errBadRTCP
		}
		if b[1] == rtcpSR {
			if n < 28 {
				return 0, false, errBadRTCP
			}
			ntp, hasSR = binary.BigEndian.Uint64(b[8:16]), true
		}
		b = b[n:]
	}
	return ntp, hasSR, nil
}

// reportAbout returns the LSR and DLSR of the reception report block about
// ssrc in the SRs and RRs of b, a compound packet that readRTCP accepted;
// ok is false when there is none, or when its LSR is 0: the reporter has
// not received an SR of ours yet.
func reportAbout(b []byte, ssrc uint32) (lsr, dlsr uint32, ok bool) {
	for len(b) >= 4 {
		n := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if n > len(b) {
			return 0, 0, false
		}
		var blocks []byte
		switch {
		case b[1] == rtcpSR && n >= 28:
			blocks = b[28:n]
		case b[1] == rtcpRR && n >= 8:
			blocks = b[8:n]
		}
		for rc := int(b[0] & 0x1F); rc > 0 && len(blocks) >= 24; rc-- {
			if binary.BigEndian.Uint32(blocks[0:4]) == ssrc {
				lsr, dlsr = binary.BigEndian.Uint32(blocks[16:20]), binary.BigEndian.Uint32(blocks[20:24])
				return lsr, dlsr, lsr != 0
			}
			blocks = blocks[24:]
		}
		b = b[n:]
	}
	return 0, 0, false
}
