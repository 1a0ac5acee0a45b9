package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// SessionConfig configures a Session. The zero value is usable.
type SessionConfig struct {
	Logger       *slog.Logger  // default slog.Default()
	RTCPInterval time.Duration // 0: 5 s; negative: no reports sent
	CNAME        string        // RTCP SDES CNAME; default "switchboard@<local ip>"
}

const (
	defaultRTCPInterval = 5 * time.Second
	maxPacketSize       = 1500
	// A source that wrote nothing for this long is re-anchored on the
	// outgoing timeline when it resumes (see WriteRTP).
	sourceIdle = 200 * time.Millisecond
)

// Session is one RTP stream on a UDP port pair: RTP on an even port, RTCP on
// the next. It does symmetric RTP: the remote address is latched to the
// source of the first packet received (which may differ from the SDP address
// behind NAT) and packets from any other source are then dropped, until
// SetRemote is called again. It sends RTCP sender/receiver reports every 5 s
// (the first after 2.5 s) and measures the round trip from the far end's.
//
// ReadRTP must be called from one goroutine at a time; WriteRTP, SetRemote,
// Stats and Close are safe for concurrent use.
type Session struct {
	log      *slog.Logger
	alloc    *PortAllocator
	port     int
	rtpConn  *net.UDPConn
	rtcpConn *net.UDPConn
	local    netip.AddrPort
	cname    string
	interval time.Duration
	epoch    time.Time

	mu          sync.Mutex // remote addresses and latching
	remote      netip.AddrPort
	remoteRTCP  netip.AddrPort
	latched     bool
	rtcpLatched bool

	// Reader state, owned by the goroutine in ReadRTP.
	rbuf         []byte
	readWatched  bool
	readDone     <-chan struct{}
	readDeadline time.Time
	readStop     func() bool

	statsMu sync.Mutex // reception statistics for RTCP, and round trips
	recv    recvStats
	rtt     time.Duration // the latest round trip measured
	rttSum  time.Duration
	rttN    int64 // round trips measured

	wmu     sync.Mutex // outgoing stream
	ssrc    uint32
	seq     uint16
	sources [4]outSource
	refTS   uint32 // newest timestamp sent, at refTime
	refTime time.Time
	srPkts  uint32
	srBytes uint32

	pktsIn, bytesIn, pktsOut, bytesOut atomic.Uint64
	dropped, rtcpIn, rtcpOut           atomic.Uint64
	lastIn, lastOut                    atomic.Int64 // unix nanoseconds

	// Key presses signalled outside RTP (SIP INFO) go to digitSink, whoever
	// reads the session now (a Channel or a Bridge); while nobody does they
	// wait in pendingDigits, as RTP waits in the socket.
	digitMu       sync.Mutex
	digitSink     func(rune)
	pendingDigits []rune

	closed    atomic.Bool
	closeOnce sync.Once

	rtcpMu    sync.Mutex // one RTCP tick at a time, and none after Close
	rtcpTimer *time.Timer
	rtcpOOB   []byte // control messages of a received RTCP packet (its arrival time)
}

// outSource maps one writer's timestamps onto the session's outgoing timeline.
type outSource struct {
	ssrc   uint32
	offset uint32
	ts     uint32 // the writer's last timestamp
	last   time.Time
	used   bool
}

// SessionStats is a snapshot of a Session's counters. Bytes count RTP
// payload octets, as RTCP does.
type SessionStats struct {
	PacketsIn, BytesIn   uint64
	PacketsOut, BytesOut uint64
	Dropped              uint64 // from a foreign source, or not RTP
	RTCPIn, RTCPOut      uint64
	LastIn, LastOut      time.Time // zero until the first packet
	Remote               netip.AddrPort
	Latched              bool   // Remote is the source of received packets
	RemoteSSRC           uint32 // of the stream received
	Lost                 int64  // packets lost in the stream received (RFC 3550)
	Jitter               time.Duration
	// RTT is the latest round-trip time measured from the far end's
	// reception reports about our stream (RFC 3550 §6.4.1), RTTMean the
	// mean of every one measured; RTTKnown is false (and both 0) until a
	// report came back with the time of an SR of ours: that takes a peer
	// that sends RTCP, and our first SR (at 2.5 s) reaching one of its
	// reports (every 5 s), so up to about 7.5 s.
	RTT, RTTMean time.Duration
	RTTKnown     bool
}

// NewSession binds the next free port pair and starts RTCP.
func (a *PortAllocator) NewSession(cfg SessionConfig) (*Session, error) {
	rc, cc, port, err := a.allocate()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Session{
		log:      log.With("rtp_port", port),
		alloc:    a,
		port:     port,
		rtpConn:  rc,
		rtcpConn: cc,
		local:    netip.AddrPortFrom(a.ip, uint16(port)),
		cname:    cfg.CNAME,
		interval: cfg.RTCPInterval,
		epoch:    time.Now(),
		rbuf:     make([]byte, maxPacketSize),
		ssrc:     randUint32(),
		seq:      uint16(randUint32()),
		refTS:    randUint32(),
	}
	s.refTime = s.epoch
	if s.cname == "" {
		s.cname = "switchboard@" + a.ip.String()
	}
	if s.interval == 0 {
		s.interval = defaultRTCPInterval
	}
	enableArrivalTimes(s.rtcpConn)
	s.rtcpMu.Lock()
	// The first report goes after half an interval (RFC 3550 §6.3.1: Tmin
	// is halved until a participant has sent one), so that a round trip is
	// known after about 7.5 s of a call rather than 10.
	s.rtcpTimer = time.AfterFunc(s.rtcpPeriod()/2, s.rtcpTick)
	s.rtcpMu.Unlock()
	return s, nil
}

// LocalAddr is the local RTP address (the IP is unspecified if the allocator
// listens on every interface: advertise the right one in SDP).
func (s *Session) LocalAddr() netip.AddrPort { return s.local }

// Port is the local RTP port.
func (s *Session) Port() int { return s.port }

// SSRC is the synchronisation source of every packet this session sends.
func (s *Session) SSRC() uint32 { return s.ssrc }

// SetRemote sets where to send RTP (RTCP goes to port+1) from the remote SDP,
// and re-arms latching: the next packet received latches the remote again.
func (s *Session) SetRemote(addr netip.AddrPort) {
	addr = unmap(addr)
	s.mu.Lock()
	s.remote = addr
	s.remoteRTCP = netip.AddrPortFrom(addr.Addr(), addr.Port()+1)
	s.latched, s.rtcpLatched = false, false
	s.mu.Unlock()
}

// SetRemoteRTCP overrides the RTCP destination (SDP a=rtcp, RFC 3605).
func (s *Session) SetRemoteRTCP(addr netip.AddrPort) {
	s.mu.Lock()
	s.remoteRTCP = unmap(addr)
	s.mu.Unlock()
}

// Remote returns the current RTP destination, invalid if unknown.
func (s *Session) Remote() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// LastActivity returns when the last RTP packet was received, or when the
// session was created if none was: the call layer ends a call when this is
// older than its RTP timeout.
func (s *Session) LastActivity() time.Time {
	if ns := s.lastIn.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return s.epoch
}

// Stats returns a snapshot of the counters.
func (s *Session) Stats() SessionStats {
	st := SessionStats{
		PacketsIn:  s.pktsIn.Load(),
		BytesIn:    s.bytesIn.Load(),
		PacketsOut: s.pktsOut.Load(),
		BytesOut:   s.bytesOut.Load(),
		Dropped:    s.dropped.Load(),
		RTCPIn:     s.rtcpIn.Load(),
		RTCPOut:    s.rtcpOut.Load(),
		LastIn:     unixNano(s.lastIn.Load()),
		LastOut:    unixNano(s.lastOut.Load()),
	}
	s.mu.Lock()
	st.Remote, st.Latched = s.remote, s.latched
	s.mu.Unlock()
	s.statsMu.Lock()
	st.RemoteSSRC = s.recv.ssrc
	st.Lost = s.recv.lost()
	st.Jitter = time.Duration(s.recv.jitter / SampleRate * float64(time.Second))
	if s.rttN > 0 {
		st.RTT, st.RTTMean, st.RTTKnown = s.rtt, s.rttSum/time.Duration(s.rttN), true
	}
	s.statsMu.Unlock()
	return st
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// ReadRTP waits for the next RTP packet from the remote and parses it into
// pkt. pkt.Payload points into the session's buffer and is valid until the
// next ReadRTP. It returns ctx's error when ctx ends and ErrClosed after
// Close. Packets from a source other than the latched remote, and anything
// that is not RTP version 2, are dropped and counted in Stats().Dropped.
// Repeated calls with the same ctx do not allocate.
func (s *Session) ReadRTP(ctx context.Context, pkt *rtp.Packet) error {
	if err := s.watch(ctx); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, from, err := s.rtpConn.ReadFromUDPAddrPort(s.rbuf)
		if err != nil {
			switch {
			case errors.Is(err, net.ErrClosed):
				return ErrClosed
			case errors.Is(err, os.ErrDeadlineExceeded):
				// ctx ended (checked at the top of the loop), its deadline
				// passed, or a stale interrupt from an earlier ctx: re-arm.
				dl, ok := ctx.Deadline()
				if ok && !time.Now().Before(dl) {
					return context.DeadlineExceeded
				}
				if err := s.rtpConn.SetReadDeadline(dl); err != nil {
					return ErrClosed
				}
				continue
			}
			return fmt.Errorf("media: read rtp: %w", err)
		}
		now := time.Now()
		if !s.acceptFrom(unmap(from)) || !isRTP(s.rbuf[:n]) || pkt.Unmarshal(s.rbuf[:n]) != nil {
			s.dropped.Add(1)
			continue
		}
		s.pktsIn.Add(1)
		s.bytesIn.Add(uint64(len(pkt.Payload)))
		s.lastIn.Store(now.UnixNano())
		s.statsMu.Lock()
		s.recv.update(&pkt.Header, s.arrival(now))
		s.statsMu.Unlock()
		return nil
	}
}

// watch arranges for a blocked read to return when ctx ends. The
// registration is kept while contexts with the same Done channel and
// deadline are passed (comparing those, not the possibly non-comparable
// ctx values), so the steady state does not allocate.
func (s *Session) watch(ctx context.Context) error {
	done := ctx.Done()
	dl, _ := ctx.Deadline()
	if s.readWatched && done == s.readDone && dl.Equal(s.readDeadline) {
		return nil
	}
	if s.readStop != nil {
		s.readStop()
		s.readStop = nil
	}
	s.readWatched, s.readDone, s.readDeadline = true, done, dl
	if done != nil {
		s.readStop = context.AfterFunc(ctx, s.interrupt)
	}
	if err := s.rtpConn.SetReadDeadline(dl); err != nil {
		return ErrClosed
	}
	return nil
}

// interrupt makes a blocked ReadRTP return to check its context.
func (s *Session) interrupt() { _ = s.rtpConn.SetReadDeadline(time.Unix(1, 0)) }

// isRTP rejects what pion would parse but is not RTP for us: other
// versions, and RTCP multiplexed on the RTP port (RFC 5761 types 192-223).
func isRTP(b []byte) bool {
	return len(b) >= 12 && b[0]>>6 == 2 && (b[1] < 192 || b[1] > 223)
}

// acceptFrom latches the remote to the first source heard and then accepts
// only that source.
func (s *Session) acceptFrom(from netip.AddrPort) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latched {
		return from == s.remote
	}
	if from != s.remote {
		s.log.Debug("rtp latched to source", "sdp", s.remote, "source", from)
	}
	s.remote, s.latched = from, true
	if !s.rtcpLatched {
		s.remoteRTCP = netip.AddrPortFrom(from.Addr(), from.Port()+1)
	}
	return true
}

// arrival is now in RTP clock units since the session started.
func (s *Session) arrival(now time.Time) uint32 {
	return uint32(int64(now.Sub(s.epoch)) * SampleRate / int64(time.Second))
}

// writeBufs are WriteRTP's packet buffers: a packet is built and sent in
// one call, so a few shared buffers do instead of one per session.
var writeBufs = sync.Pool{New: func() any { return new([maxPacketSize]byte) }}

// WriteRTP sends pkt to the remote. The session rewrites the header into
// its own outgoing stream: its SSRC, a continuous sequence number, and a
// timestamp on one timeline. Each writer is told apart by pkt.SSRC; a writer
// new or idle for 200 ms is anchored where the timeline stands now (wall
// clock since the last packet) and its first packet gets the marker bit,
// after which its own timestamp deltas pass through unchanged. So a relayed
// stream, a Player and DTMF can take turns, or interleave, and the far end
// sees one well-formed stream. CSRCs, extensions and padding are not sent.
// It returns ErrNoRemote while the remote is unknown.
func (s *Session) WriteRTP(pkt *rtp.Packet) error {
	s.mu.Lock()
	dst := s.remote
	s.mu.Unlock()
	if !dst.IsValid() {
		return ErrNoRemote
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	now := time.Now()
	ts, fresh := s.mapSource(pkt.SSRC, pkt.Timestamp, now)
	h := rtp.Header{
		Version:        2,
		Marker:         pkt.Marker || fresh,
		PayloadType:    pkt.PayloadType,
		SequenceNumber: s.seq,
		Timestamp:      ts,
		SSRC:           s.ssrc,
	}
	bp := writeBufs.Get().(*[maxPacketSize]byte)
	defer writeBufs.Put(bp)
	wbuf := bp[:]
	n, err := h.MarshalTo(wbuf)
	if err != nil {
		return fmt.Errorf("media: marshal rtp: %w", err)
	}
	if len(pkt.Payload) > len(wbuf)-n {
		return fmt.Errorf("media: rtp payload of %d bytes too large", len(pkt.Payload))
	}
	n += copy(wbuf[n:], pkt.Payload)
	if _, err := s.rtpConn.WriteToUDPAddrPort(wbuf[:n], dst); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("media: write rtp: %w", err)
	}
	s.seq++
	if int32(ts-s.refTS) > 0 {
		s.refTS, s.refTime = ts, now
	}
	s.srPkts++
	s.srBytes += uint32(len(pkt.Payload))
	s.pktsOut.Add(1)
	s.bytesOut.Add(uint64(len(pkt.Payload)))
	s.lastOut.Store(now.UnixNano())
	return nil
}

// readEach reads packets into pkt and calls handle after each until ctx
// ends, the session is closed or handle returns false. A read error is
// logged at Debug and, when errors persist, reading is paced at one frame
// so that a broken socket does not spin a CPU. Bridges and Channels share
// it: one reader per session at a time.
func (s *Session) readEach(ctx context.Context, pkt *rtp.Packet, log *slog.Logger, handle func() bool) {
	failures := 0
	for {
		if err := s.ReadRTP(ctx, pkt); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			failures++
			log.Debug("rtp read", "err", err)
			if d := readErrorPause(failures); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			continue
		}
		failures = 0
		if !handle() {
			return
		}
	}
}

// readErrorPause is how long a read loop waits after its failures-th read
// error in a row: nothing for the first ten, then a frame each, so that a
// broken socket does not spin a CPU.
func readErrorPause(failures int) time.Duration {
	if failures > 10 {
		return FrameDuration
	}
	return 0
}

// mapSource returns the outgoing timestamp for a writer's timestamp.
func (s *Session) mapSource(ssrc, ts uint32, now time.Time) (uint32, bool) {
	var slot *outSource
	for i := range s.sources {
		src := &s.sources[i]
		if src.used && src.ssrc == ssrc {
			// A packet that repeats the writer's last timestamp continues
			// the same event (an RFC 4733 key press whose sender stalled):
			// re-anchoring it would make the far end count a second press.
			if now.Sub(src.last) <= sourceIdle || ts == src.ts {
				src.last, src.ts = now, ts
				return ts + src.offset, false
			}
			slot = src
			break
		}
		if slot == nil || !src.used || (slot.used && src.last.Before(slot.last)) {
			slot = src
		}
	}
	out := s.timelineAt(now)
	*slot = outSource{ssrc: ssrc, offset: out - ts, ts: ts, last: now, used: true}
	return out, true
}

// timelineAt extrapolates the outgoing timestamp to now. Caller holds wmu.
func (s *Session) timelineAt(now time.Time) uint32 {
	return s.refTS + uint32(int64(now.Sub(s.refTime))*SampleRate/int64(time.Second))
}

// SignalDTMF hands a key press that arrived outside RTP (a SIP INFO
// application/dtmf-relay) to the session's current reader, as if it had
// come as a telephone-event. While nobody reads the session, up to
// DigitBuffer presses wait for the next reader; later ones are dropped.
func (s *Session) SignalDTMF(d rune) {
	s.digitMu.Lock()
	defer s.digitMu.Unlock()
	if s.digitSink != nil {
		s.digitSink(d)
	} else if len(s.pendingDigits) < DigitBuffer {
		s.pendingDigits = append(s.pendingDigits, d)
	}
}

// setDigitSink makes fn the receiver of SignalDTMF (nil: none) and hands it
// the presses that were waiting.
func (s *Session) setDigitSink(fn func(rune)) {
	s.digitMu.Lock()
	defer s.digitMu.Unlock()
	s.digitSink = fn
	if fn == nil {
		return
	}
	for _, d := range s.pendingDigits {
		fn(d)
	}
	s.pendingDigits = s.pendingDigits[:0]
}

// Close stops the session, sends an RTCP BYE and releases its ports. It is
// idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.wmu.Lock()
		s.closed.Store(true)
		s.wmu.Unlock()
		s.rtcpMu.Lock()
		s.rtcpTimer.Stop()
		s.readQueuedRTCP() // it may latch where the BYE goes
		s.sendRTCP(true)
		s.rtcpMu.Unlock()
		s.rtpConn.Close()
		s.rtcpConn.Close()
		s.alloc.release(s.port)
	})
	return nil
}

// recvStats are the RFC 3550 A.1/A.8 reception statistics of one source.
type recvStats struct {
	started       bool
	ssrc          uint32
	baseSeq       uint32
	maxSeq        uint16
	cycles        uint32
	received      uint32
	expectedPrior uint32
	receivedPrior uint32
	transit       int32
	jitter        float64 // in RTP clock units
	lastSR        uint32  // middle 32 bits of the last SR's NTP time
	lastSRAt      time.Time
}

func (r *recvStats) update(h *rtp.Header, arrival uint32) {
	transit := int32(arrival - h.Timestamp)
	if !r.started || h.SSRC != r.ssrc {
		*r = recvStats{started: true, ssrc: h.SSRC, baseSeq: uint32(h.SequenceNumber), maxSeq: h.SequenceNumber, received: 1, transit: transit}
		return
	}
	if d := h.SequenceNumber - r.maxSeq; d != 0 && d < 0x8000 {
		if h.SequenceNumber < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = h.SequenceNumber
	}
	r.received++
	d := float64(transit - r.transit)
	if d < 0 {
		d = -d
	}
	r.transit = transit
	r.jitter += (d - r.jitter) / 16
}

func (r *recvStats) extMax() uint32 { return r.cycles + uint32(r.maxSeq) }

func (r *recvStats) lost() int64 {
	if !r.started {
		return 0
	}
	return int64(r.extMax()) - int64(r.baseSeq) + 1 - int64(r.received)
}

// report fills r's reception report block and rolls the interval counters.
func (rs *recvStats) report(now time.Time, r *rtcpReport) {
	expected := rs.extMax() - rs.baseSeq + 1
	expInt := expected - rs.expectedPrior
	recvInt := rs.received - rs.receivedPrior
	rs.expectedPrior, rs.receivedPrior = expected, rs.received
	r.fraction = 0
	if lostInt := int64(expInt) - int64(recvInt); expInt > 0 && lostInt > 0 {
		r.fraction = uint8(lostInt << 8 / int64(expInt))
	}
	r.block = true
	r.source = rs.ssrc
	r.lost = uint32(min(max(rs.lost(), 0), 0x7FFFFF))
	r.extSeq = rs.extMax()
	r.jitter = uint32(rs.jitter)
	r.lsr, r.dlsr = rs.lastSR, 0
	if !rs.lastSRAt.IsZero() {
		r.dlsr = uint32(now.Sub(rs.lastSRAt).Seconds() * 65536)
	}
}

// RTCP needs no goroutine of its own. Every interval a timer reads the
// RTCP packets queued on the socket since the last tick (latching the RTCP
// remote and noting sender reports for the LSR/DLSR fields of ours, with
// the kernel's arrival time where the OS gives it) and then sends our
// report, so a report always goes where the packets read so far say. A
// reader goroutine and a sender goroutine per session used to do this:
// two stacks per session for a packet every few seconds.

// rtcpPeriod is how often queued RTCP is read: the report interval, or the
// default when reports are off.
func (s *Session) rtcpPeriod() time.Duration {
	if s.interval > 0 {
		return s.interval
	}
	return defaultRTCPInterval
}

func (s *Session) rtcpTick() {
	s.rtcpMu.Lock()
	defer s.rtcpMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.readQueuedRTCP()
	if s.interval > 0 {
		s.sendRTCP(false)
	}
	s.rtcpTimer.Reset(s.rtcpPeriod())
}

// PollRTCP handles the RTCP that arrived since the last report interval
// without sending a report, so that Stats is current: the call layer polls
// before it takes a leg's quality at hangup.
func (s *Session) PollRTCP() {
	s.rtcpMu.Lock()
	defer s.rtcpMu.Unlock()
	if s.closed.Load() {
		return // Close read the last of it
	}
	s.readQueuedRTCP()
}

// rtcpBufs are the buffers RTCP is read into, only while a tick runs.
var rtcpBufs = sync.Pool{New: func() any { return new([maxPacketSize]byte) }}

// readQueuedRTCP handles every RTCP packet waiting on the socket, without
// blocking. Caller holds rtcpMu.
func (s *Session) readQueuedRTCP() {
	bp := rtcpBufs.Get().(*[maxPacketSize]byte)
	defer rtcpBufs.Put(bp)
	for {
		n, from, at, ok := s.readRTCPNow(bp[:])
		if !ok {
			return
		}
		if !from.IsValid() {
			s.dropped.Add(1)
			continue
		}
		s.handleRTCP(bp[:n], unmap(from), at)
	}
}

// handleRTCP latches the RTCP remote, notes sender reports and measures
// the round trip from reception reports about our stream.
func (s *Session) handleRTCP(b []byte, from netip.AddrPort, at time.Time) {
	s.mu.Lock()
	ok := !s.rtcpLatched || from == s.remoteRTCP
	if ok && !s.rtcpLatched {
		s.remoteRTCP, s.rtcpLatched = from, true
	}
	s.mu.Unlock()
	if !ok {
		s.dropped.Add(1)
		return
	}
	ntp, hasSR, err := readRTCP(b)
	if err != nil {
		s.dropped.Add(1)
		return
	}
	s.rtcpIn.Add(1)
	lsr, dlsr, hasRR := reportAbout(b, s.ssrc)
	if !hasSR && !hasRR {
		return
	}
	s.statsMu.Lock()
	if hasSR {
		s.recv.lastSR = uint32(ntp >> 16)
		s.recv.lastSRAt = at
	}
	if hasRR {
		s.noteRTT(at, lsr, dlsr)
	}
	s.statsMu.Unlock()
}

// noteRTT takes a round trip from a reception report about our stream that
// arrived at at (RFC 3550 §6.4.1): RTT = A - LSR - DLSR, where A is the
// arrival, LSR when the SR of ours that it answers left and DLSR how long
// the peer held it, all in the middle 32 bits of the NTP time (1/65536 s).
// A report whose LSR is older than the session or after its arrival is not
// about an SR we sent and is ignored. Caller holds statsMu.
func (s *Session) noteRTT(at time.Time, lsr, dlsr uint32) {
	since := uint32(ntpTime(at)>>16) - lsr // since our SR left
	if int32(since) < 0 || time.Duration(since)*time.Second>>16 > at.Sub(s.epoch)+time.Second {
		return
	}
	// A path shorter than DLSR's rounding (loopback) comes out negative.
	rtt := time.Duration(max(int64(since)-int64(dlsr), 0)) * time.Second >> 16
	s.rtt = rtt
	s.rttSum += rtt
	s.rttN++
}

// sendRTCP sends our compound report: SR or RR, SDES, and BYE when bye.
func (s *Session) sendRTCP(bye bool) {
	s.mu.Lock()
	dst := s.remoteRTCP
	s.mu.Unlock()
	if !dst.IsValid() || dst.Port() == 0 {
		return
	}
	now := time.Now()
	r := rtcpReport{ssrc: s.ssrc, cname: s.cname, bye: bye}
	s.statsMu.Lock()
	if s.recv.started {
		s.recv.report(now, &r)
	}
	s.statsMu.Unlock()
	s.wmu.Lock()
	if s.srPkts > 0 {
		r.sender = true
		r.ntp, r.rtpTime = ntpTime(now), s.timelineAt(now)
		r.packets, r.octets = s.srPkts, s.srBytes
	}
	s.wmu.Unlock()
	bp := writeBufs.Get().(*[maxPacketSize]byte)
	defer writeBufs.Put(bp)
	if _, err := s.rtcpConn.WriteToUDPAddrPort(r.appendTo(bp[:0]), dst); err == nil {
		s.rtcpOut.Add(1)
	}
}

// ntpTime is t in the 64-bit NTP format (seconds since 1900, 32.32).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}
