package media

import (
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"
)

// enableArrivalTimes asks the kernel to stamp every datagram received on
// c with its arrival time (SO_TIMESTAMPNS): RTCP is read in batches, after
// the fact, and DLSR must count from the arrival of the sender report.
func enableArrivalTimes(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
}

// readRTCPNow reads one datagram already queued on the RTCP socket, without
// waiting; ok is false when none is (or the socket is closed). at is its
// arrival time.
func (s *Session) readRTCPNow(buf []byte) (n int, from netip.AddrPort, at time.Time, ok bool) {
	rc, err := s.rtcpConn.SyscallConn()
	if err != nil {
		return 0, from, at, false
	}
	if s.rtcpOOB == nil {
		s.rtcpOOB = make([]byte, syscall.CmsgSpace(int(unsafe.Sizeof(syscall.Timespec{}))))
	}
	var (
		oobn int
		sa   syscall.Sockaddr
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, sa, rerr = syscall.Recvmsg(int(fd), buf, s.rtcpOOB, syscall.MSG_DONTWAIT)
		return true // never wait
	})
	if err != nil || rerr != nil {
		return 0, from, at, false
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		from = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *syscall.SockaddrInet6:
		from = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	default:
		return 0, netip.AddrPort{}, at, true // not from an IP peer: dropped
	}
	at = arrivalTime(s.rtcpOOB[:oobn])
	return n, from, at, true
}

// arrivalTime is the SCM_TIMESTAMPNS in a datagram's control messages, or
// now when there is none.
func arrivalTime(oob []byte) time.Time {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS &&
				len(m.Data) >= int(unsafe.Sizeof(syscall.Timespec{})) {
				ts := (*syscall.Timespec)(unsafe.Pointer(&m.Data[0]))
				return time.Unix(ts.Unix())
			}
		}
	}
	return time.Now()
}
