package media

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// PortAllocator hands out RTP/RTCP port pairs (RTP on an even port p, RTCP on
// p+1) from a range on one local IP. Pairs are handed out round-robin from a
// random start, so a pair just released is not reused at once (late packets
// of the previous call then land nowhere). It is safe for concurrent use.
type PortAllocator struct {
	ip       netip.Addr
	min, max int // even RTP ports min..max inclusive

	mu   sync.Mutex
	next int
	used map[int]bool
}

// NewPortAllocator returns an allocator for ports minPort..maxPort (both RTP
// and RTCP must lie inside; minPort is rounded up to even) on ip, which may
// be unspecified (0.0.0.0 or ::) to listen on every interface.
func NewPortAllocator(ip netip.Addr, minPort, maxPort int) (*PortAllocator, error) {
	if !ip.IsValid() {
		return nil, fmt.Errorf("media: port allocator: invalid ip")
	}
	if minPort%2 == 1 {
		minPort++
	}
	lastRTP := maxPort - 1
	if lastRTP%2 == 1 {
		lastRTP--
	}
	if minPort < 1024 || maxPort > 65535 || lastRTP < minPort {
		return nil, fmt.Errorf("media: port range %d-%d holds no even/odd pair within 1024-65535", minPort, maxPort)
	}
	a := &PortAllocator{ip: ip.Unmap(), min: minPort, max: lastRTP, used: map[int]bool{}}
	a.next = a.min + 2*int(randUint32()%uint32(a.pairs()))
	return a, nil
}

func (a *PortAllocator) pairs() int { return (a.max-a.min)/2 + 1 }

// InUse returns how many pairs are allocated.
func (a *PortAllocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.used)
}

// allocate binds the next free pair. Ports another process holds are skipped.
func (a *PortAllocator) allocate() (rtpConn, rtcpConn *net.UDPConn, port int, err error) {
	network := "udp4"
	if a.ip.Is6() {
		network = "udp6"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for range a.pairs() {
		p := a.next
		a.next += 2
		if a.next > a.max {
			a.next = a.min
		}
		if a.used[p] {
			continue
		}
		rc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, uint16(p))))
		if err != nil {
			continue
		}
		cc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.ip, uint16(p+1))))
		if err != nil {
			rc.Close()
			continue
		}
		a.used[p] = true
		return rc, cc, p, nil
	}
	return nil, nil, 0, fmt.Errorf("%w in %d-%d on %s (%d in use)", ErrNoPorts, a.min, a.max+1, a.ip, len(a.used))
}

func (a *PortAllocator) release(port int) {
	a.mu.Lock()
	delete(a.used, port)
	a.mu.Unlock()
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
