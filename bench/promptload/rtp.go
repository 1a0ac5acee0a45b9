package main

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard/switchboard/internal/media"
)

// frame is the RTP packetisation interval Switchboard's Player keeps.
const frame = 20 * time.Millisecond

// arrival is one RTP packet received from Switchboard: its sequence
// number, marker bit and the kernel's receive time (SO_TIMESTAMPNS, Unix
// nanoseconds), so that the tool's own scheduling delays do not count.
type arrival struct {
	t      int64
	seq    uint16
	marker bool
}

// leg is one phone's RTP end: a UDP socket of its own, whose packets from
// Switchboard are timestamped by the kernel and kept until stop.
type leg struct {
	conn   *net.UDPConn
	port   int
	remote atomic.Pointer[netip.AddrPort] // Switchboard's RTP address, from its SDP
	slot   int                            // which 2 ms slot of the 20 ms cycle it sends in
	codec  media.Codec                    // negotiated; set before the leg is added to the sender
	pt     uint8

	// Sender state, owned by the sender goroutine.
	ssrc uint32
	seq  uint16
	ts   uint32

	stopAt atomic.Int64 // Unix ns; packets received after it are not kept
	done   chan struct{}
	// Receiver state: written by the reader goroutine, read after done.
	got       []arrival
	foreign   int // packets not from remote, or not RTP
	clockless int // packets without a kernel timestamp (time.Now used)
}

// newLeg binds a socket on 127.0.0.1 and starts reading it. capacity is
// the number of packets expected, to allocate once.
func newLeg(capacity int) (*leg, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	l := &leg{
		conn: c,
		port: c.LocalAddr().(*net.UDPAddr).Port,
		slot: rand.IntN(int(frame / (2 * time.Millisecond))),
		ssrc: rand.Uint32(),
		seq:  uint16(rand.Uint32()),
		ts:   rand.Uint32(),
		done: make(chan struct{}),
		got:  make([]arrival, 0, capacity),
	}
	l.stopAt.Store(1<<63 - 1)
	go l.read()
	return l, nil
}

func (l *leg) setRemote(a netip.AddrPort) { l.remote.Store(&a) }

// read keeps every RTP packet until stopAt or until the socket is closed.
func (l *leg) read() {
	defer close(l.done)
	buf := make([]byte, 1500)
	oob := make([]byte, 64)
	for {
		n, oobn, _, from, err := l.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		t, ok := kernelTime(oob[:oobn])
		if !ok {
			t = time.Now().UnixNano()
			l.clockless++
		}
		if t > l.stopAt.Load() {
			continue
		}
		// Before the SDP is read (Switchboard may send as soon as it
		// answers), any RTP packet counts.
		r := l.remote.Load()
		if n < 12 || buf[0]>>6 != 2 || (r != nil && from != *r) {
			l.foreign++
			continue
		}
		l.got = append(l.got, arrival{t: t, seq: binary.BigEndian.Uint16(buf[2:4]), marker: buf[1]&0x80 != 0})
	}
}

// kernelTime reads the SCM_TIMESTAMPNS control message (a struct timespec;
// Linux, 64-bit).
func kernelTime(oob []byte) (int64, bool) {
	for len(oob) >= syscall.CmsgSpace(0) {
		ln := int(binary.NativeEndian.Uint64(oob[0:8]))
		level := int32(binary.NativeEndian.Uint32(oob[8:12]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:16]))
		if ln < 16 || ln > len(oob) {
			return 0, false
		}
		if level == syscall.SOL_SOCKET && typ == syscall.SO_TIMESTAMPNS && ln >= 32 {
			sec := int64(binary.NativeEndian.Uint64(oob[16:24]))
			nsec := int64(binary.NativeEndian.Uint64(oob[24:32]))
			return sec*1e9 + nsec, true
		}
		next := (ln + 7) &^ 7
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return 0, false
}

// stop ends the measured window now; later packets are not kept.
func (l *leg) stop() { l.stopAt.CompareAndSwap(1<<63-1, time.Now().UnixNano()) }

// close closes the socket and waits for the reader.
func (l *leg) close() {
	l.stop()
	l.conn.Close()
	<-l.done
}

// sender sends every registered leg's audio, one 20 ms PCMA packet per leg
// every 20 ms. A leg sends in one of ten 2 ms slots of the cycle, so that
// Switchboard sees packets spread over time as from independent phones,
// not one burst of every call at once.
type sender struct {
	mu      sync.Mutex
	legs    atomic.Pointer[[]*leg] // copy on write
	pkt     []byte
	payload map[media.Codec][]byte // 20 ms of audio in each codec
	sent    atomic.Uint64
	errs    atomic.Uint64
	stopped chan struct{}
	quit    chan struct{}
}

func newSender() *sender {
	s := &sender{pkt: make([]byte, 12+media.FrameSamples), payload: map[media.Codec][]byte{},
		quit: make(chan struct{}), stopped: make(chan struct{})}
	// A quiet 400 Hz tone, so that the recordings are not silent.
	pcm := make([]int16, media.FrameSamples)
	_, _ = media.Sine(400).ReadFrame(pcm)
	for i := range pcm {
		pcm[i] /= 4
	}
	for _, c := range []media.Codec{media.PCMU, media.PCMA} {
		s.payload[c] = make([]byte, media.FrameSamples)
		c.Encode(s.payload[c], pcm)
	}
	empty := []*leg{}
	s.legs.Store(&empty)
	go s.run()
	return s
}

func (s *sender) add(l *leg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := append(slices.Clone(*s.legs.Load()), l)
	s.legs.Store(&next)
}

func (s *sender) remove(l *leg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(*s.legs.Load()), func(x *leg) bool { return x == l })
	s.legs.Store(&next)
}

func (s *sender) close() {
	close(s.quit)
	<-s.stopped
}

func (s *sender) run() {
	defer close(s.stopped)
	const slotLen = 2 * time.Millisecond
	const slots = int(frame / slotLen)
	t := time.NewTicker(slotLen)
	defer t.Stop()
	start := time.Now()
	next := 0 // the next slot number (since start) to send
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			cur := int(now.Sub(start) / slotLen)
			if cur-next > slots {
				next = cur - slots // more than a cycle behind: skip, do not burst
			}
			legs := *s.legs.Load()
			for ; next <= cur; next++ {
				slot := next % slots
				for _, l := range legs {
					if l.slot == slot {
						s.send(l)
					}
				}
			}
		}
	}
}

func (s *sender) send(l *leg) {
	r := l.remote.Load()
	if r == nil {
		return
	}
	p := s.pkt
	p[0], p[1] = 0x80, l.pt
	copy(p[12:], s.payload[l.codec])
	binary.BigEndian.PutUint16(p[2:4], l.seq)
	binary.BigEndian.PutUint32(p[4:8], l.ts)
	binary.BigEndian.PutUint32(p[8:12], l.ssrc)
	l.seq++
	l.ts += media.FrameSamples
	if _, err := l.conn.WriteToUDPAddrPort(p, *r); err != nil {
		s.errs.Add(1)
		return
	}
	s.sent.Add(1)
}

// streamStats is what one leg received, split into talk spurts at the
// marker bit (a receiver re-synchronises its playout there: Switchboard sets
// it when a new source starts, such as the recording notice after
// ringback).
type streamStats struct {
	packets  int
	spurts   int   // streams started by a marker bit
	lost     int   // sequence numbers missing in a spurt
	dups     int   // duplicates and reordered packets
	late     int   // packets later than lateBy behind their schedule
	maxLate  int64 // ns
	maxGap   int64 // ns, between consecutive arrivals within a spurt
	gapsOver int   // inter-arrival gaps over 2 frames
	lateHist [5]int
}

// lateBounds are the histogram bounds of lateness (ns): <=5, <=10, <=20,
// <=40 ms and more.
var lateBounds = [4]int64{5e6, 10e6, 20e6, 40e6}

// analyse splits l's packets into spurts and measures each against its own
// 20 ms schedule. Within a spurt, packet k (by extended sequence number
// from the spurt's first) is due at anchor + k*20 ms, where the anchor is
// chosen as early as any packet allows: anchor = min over the spurt of
// (arrival_k - k*20 ms). A packet's lateness is arrival_k - k*20 ms -
// anchor (>= 0); the packets that left on time set the schedule, and a
// packet is late when it arrives more than lateBy after it. A sender that
// loses a tick and never catches up makes every later packet 20 ms late,
// so drift counts too.
func analyse(got []arrival, lateBy time.Duration) streamStats {
	var st streamStats
	st.packets = len(got)
	for start := 0; start < len(got); {
		end := start + 1
		for end < len(got) && !got[end].marker {
			end++
		}
		if got[start].marker {
			st.spurts++
		}
		measureSpurt(got[start:end], lateBy, &st)
		start = end
	}
	return st
}

func measureSpurt(sp []arrival, lateBy time.Duration, st *streamStats) {
	ks := make([]int64, len(sp))
	ext := int64(0)
	minK, maxK := int64(0), int64(0)
	seen := map[int64]bool{}
	for i, a := range sp {
		if i > 0 {
			ext += int64(int16(a.seq - sp[i-1].seq))
		}
		ks[i] = ext
		minK, maxK = min(minK, ext), max(maxK, ext)
		if seen[ext] || (i > 0 && ext <= ks[i-1]) {
			st.dups++
		}
		seen[ext] = true
		if i > 0 {
			gap := a.t - sp[i-1].t
			st.maxGap = max(st.maxGap, gap)
			if gap > int64(2*frame) {
				st.gapsOver++
			}
		}
	}
	st.lost += int(maxK-minK+1) - len(seen)
	anchor := int64(1<<63 - 1)
	for i, a := range sp {
		anchor = min(anchor, a.t-ks[i]*int64(frame))
	}
	for i, a := range sp {
		late := a.t - ks[i]*int64(frame) - anchor
		st.maxLate = max(st.maxLate, late)
		if late > int64(lateBy) {
			st.late++
		}
		b := 0
		for b < len(lateBounds) && late > lateBounds[b] {
			b++
		}
		st.lateHist[b]++
	}
}

func (st *streamStats) add(o streamStats) {
	st.packets += o.packets
	st.spurts += o.spurts
	st.lost += o.lost
	st.dups += o.dups
	st.late += o.late
	st.maxLate = max(st.maxLate, o.maxLate)
	st.maxGap = max(st.maxGap, o.maxGap)
	st.gapsOver += o.gapsOver
	for i := range st.lateHist {
		st.lateHist[i] += o.lateHist[i]
	}
}
