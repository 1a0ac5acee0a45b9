//go:build !linux

package media

import (
	"net"
	"net/netip"
	"time"
)

// enableArrivalTimes does nothing here: arrival times are taken when RTCP is
// read, up to one report interval late.
func enableArrivalTimes(*net.UDPConn) {}

// readRTCPNow reads one datagram already queued on the RTCP socket; ok is
// false when none is. A read deadline just ahead makes the read return
// at once when the queue is empty.
func (s *Session) readRTCPNow(buf []byte) (n int, from netip.AddrPort, at time.Time, ok bool) {
	if err := s.rtcpConn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return 0, from, at, false
	}
	n, from, err := s.rtcpConn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return 0, from, at, false
	}
	return n, from, time.Now(), true
}
