package media

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// callRig is a bridged call on loopback:
//
//	phoneA <-> legA ==Bridge== legB <-> phoneB
type callRig struct {
	phoneA, legA, legB, phoneB *Session
	bridge                     *Bridge
}

func newCallRig(t testing.TB, a, b Leg) *callRig {
	t.Helper()
	al := newAllocator(t)
	r := &callRig{}
	r.phoneA, r.legA = pair(t, al)
	r.legB, r.phoneB = pair(t, al)
	a.Session, b.Session = r.legA, r.legB
	br, err := NewBridge(a, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.bridge = br
	t.Cleanup(func() { br.Close() })
	return r
}

// listen decodes audio arriving at s for d (or until ctx ends), checking
// that every packet has payload type pt. It returns the linear samples.
func listen(ctx context.Context, t *testing.T, s *Session, codec Codec, pt uint8, d time.Duration) []int16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var out []int16
	var p rtp.Packet
	pcm := make([]int16, 1500)
	for {
		if err := s.ReadRTP(ctx, &p); err != nil {
			return out
		}
		if p.PayloadType != pt {
			t.Errorf("payload type %d, want %d", p.PayloadType, pt)
			continue
		}
		n := codec.Decode(pcm, p.Payload)
		out = append(out, pcm[:n]...)
	}
}

func TestBridgeTranscodes(t *testing.T) {
	r := newCallRig(t,
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU, EventPT: 101},
		Leg{Codec: PCMA, PayloadType: PayloadTypePCMA, EventPT: 96})
	ctx := timeout(t, 10*time.Second)
	r.bridge.Start(ctx)

	// A speaks µ-law at 1000 Hz, B speaks A-law at 425 Hz, at once.
	playCtx, stop := context.WithCancel(ctx)
	defer stop()
	go NewPlayer(r.phoneA, PCMU, PayloadTypePCMU).Play(playCtx, Sine(1000))
	go NewPlayer(r.phoneB, PCMA, PayloadTypePCMA).Play(playCtx, Sine(425))

	var heardA, heardB []int16
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		heardB = listen(ctx, t, r.phoneB, PCMA, PayloadTypePCMA, 500*time.Millisecond)
	}()
	go func() {
		defer wg.Done()
		heardA = listen(ctx, t, r.phoneA, PCMU, PayloadTypePCMU, 500*time.Millisecond)
	}()
	wg.Wait()
	stop()

	for _, c := range []struct {
		who   string
		heard []int16
		want  float64
	}{{"B", heardB, 1000}, {"A", heardA, 425}} {
		if len(c.heard) < 1600 {
			t.Fatalf("%s heard only %d samples", c.who, len(c.heard))
		}
		block := c.heard[len(c.heard)-1600:]
		if f, ok := DominantFrequency(block, toneCandidates); !ok || f != c.want {
			t.Errorf("%s heard %v Hz (%v), want %v", c.who, f, ok, c.want)
		}
		if share := DetectTone(block, c.want); share < 0.9 {
			t.Errorf("%s: %v Hz share %.2f", c.who, c.want, share)
		}
	}
	if r.bridge.LastActivity().Before(time.Now().Add(-time.Second)) {
		t.Error("LastActivity stale")
	}
}

func TestBridgeDTMFAndTaps(t *testing.T) {
	r := newCallRig(t,
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU, EventPT: 101},
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU, EventPT: 96})
	ctx := timeout(t, 10*time.Second)
	digits := make(chan rune, 10)
	r.bridge.SetDTMFHandler(SideA, func(d rune) { digits <- d })
	var tapped atomic.Int64
	r.bridge.SetTap(SideA, func(pcm []int16) { tapped.Add(int64(len(pcm))) })
	r.bridge.Start(ctx)

	go func() {
		for _, d := range "#7" {
			if err := SendDTMF(ctx, r.phoneA, 101, d, 60*time.Millisecond); err != nil {
				t.Error(err)
			}
		}
		_ = NewPlayer(r.phoneA, PCMU, 0).Play(ctx, Limit(Sine(1000), 100*time.Millisecond))
	}()

	var recv DTMFReceiver
	var atB []rune
	var p rtp.Packet
	audio := 0
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for audio < 5 {
		if err := r.phoneB.ReadRTP(rctx, &p); err != nil {
			t.Fatalf("phone B: %v (digits %q, audio %d)", err, string(atB), audio)
		}
		switch p.PayloadType {
		case 96:
			if d, ok := recv.Receive(&p); ok {
				atB = append(atB, d)
			}
		case 0:
			audio++
		default:
			t.Errorf("payload type %d reached B", p.PayloadType)
		}
	}
	if string(atB) != "#7" {
		t.Errorf("B received digits %q", string(atB))
	}
	var handled []rune
	for len(handled) < 2 {
		select {
		case d := <-digits:
			handled = append(handled, d)
		case <-time.After(time.Second):
			t.Fatalf("handler saw %q", string(handled))
		}
	}
	if string(handled) != "#7" {
		t.Errorf("handler saw %q", string(handled))
	}
	if tapped.Load() < 5*FrameSamples {
		t.Errorf("tap saw %d samples", tapped.Load())
	}
	r.bridge.SetTap(SideA, nil)
	r.bridge.SetDTMFHandler(SideA, nil)
}

// A key press signalled outside RTP (SIP INFO) reaches the DTMF handler and
// goes on to the other leg as telephone-events; after Close nobody gets it.
func TestBridgeSignalledDTMF(t *testing.T) {
	r := newCallRig(t,
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU},
		Leg{Codec: PCMA, PayloadType: PayloadTypePCMA, EventPT: 96})
	ctx := timeout(t, 10*time.Second)
	digits := make(chan rune, 10)
	r.bridge.SetDTMFHandler(SideA, func(d rune) { digits <- d })
	r.legA.SignalDTMF('0') // before the bridge starts: waits for it
	r.bridge.Start(ctx)
	for i, d := range "05" {
		if i > 0 {
			r.legA.SignalDTMF(d)
		}
		var recv DTMFReceiver
		var p rtp.Packet
		got := rune(0)
		for got == 0 {
			if err := r.phoneB.ReadRTP(ctx, &p); err != nil {
				t.Fatalf("phone B: %v", err)
			}
			if p.PayloadType != 96 {
				t.Fatalf("payload type %d reached B", p.PayloadType)
			}
			got, _ = recv.Receive(&p)
		}
		if got != d {
			t.Errorf("B received %c, want %c", got, d)
		}
		if h := <-digits; h != d {
			t.Errorf("handler saw %c, want %c", h, d)
		}
	}
	// B negotiated no events on A's side: its INFO digits reach the handler only.
	r.bridge.SetDTMFHandler(SideB, func(d rune) { digits <- d })
	r.legB.SignalDTMF('9')
	if h := <-digits; h != '9' {
		t.Errorf("handler B saw %c", h)
	}
	r.bridge.Close()
	r.legA.SignalDTMF('2')
	select {
	case d := <-digits:
		t.Errorf("handler saw %c after Close", d)
	case <-time.After(100 * time.Millisecond):
	}
}

// TakeDTMF hands the presses to the handler and keeps them from the other
// leg, RFC 4733 and signalled alike; audio still flows.
func TestBridgeTakeDTMF(t *testing.T) {
	r := newCallRig(t,
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU, EventPT: 101},
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU, EventPT: 101})
	ctx := timeout(t, 10*time.Second)
	digits := make(chan rune, 10)
	r.bridge.TakeDTMF(SideB, func(d rune) { digits <- d })
	r.bridge.Start(ctx)
	if err := SendDTMF(ctx, r.phoneB, 101, '0', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.legB.SignalDTMF('7')
	_ = NewPlayer(r.phoneB, PCMU, 0).Play(ctx, Limit(Sine(1000), 200*time.Millisecond))
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var p rtp.Packet
	audio := 0
	for audio < 5 {
		if err := r.phoneA.ReadRTP(rctx, &p); err != nil {
			t.Fatalf("phone A: %v (audio %d)", err, audio)
		}
		if p.PayloadType != 0 {
			t.Fatalf("payload type %d reached A: taken presses must not pass", p.PayloadType)
		}
		audio++
	}
	for _, want := range "07" {
		select {
		case d := <-digits:
			if d != want {
				t.Errorf("handler saw %c, want %c", d, want)
			}
		case <-time.After(time.Second):
			t.Fatalf("handler did not see %c", want)
		}
	}
}

func TestBridgeDropsEventsWithoutPT(t *testing.T) {
	r := newCallRig(t,
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU, EventPT: 101},
		Leg{Codec: PCMA, PayloadType: PayloadTypePCMA})
	ctx := timeout(t, 5*time.Second)
	r.bridge.Start(ctx)
	ev := rtp.Packet{Header: rtp.Header{PayloadType: 101, SSRC: 5}, Payload: []byte{1, 10, 0, 160}}
	cn := rtp.Packet{Header: rtp.Header{PayloadType: 13, SSRC: 5}, Payload: []byte{40}}
	// B did not negotiate telephone-event, and nobody negotiated CN: both
	// are dropped. A sends PCMA (PT 8) although it negotiated PCMU: it is
	// recognised and reaches B as PCMA.
	pcma := rtp.Packet{Header: rtp.Header{PayloadType: 8, SSRC: 5}, Payload: []byte{0xD5, 0xD5}}
	for _, p := range []*rtp.Packet{&ev, &cn, &pcma} {
		if err := r.phoneA.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
	}
	var p rtp.Packet
	if err := r.phoneB.ReadRTP(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if p.PayloadType != 8 || len(p.Payload) != 2 || p.Payload[0] != 0xD5 {
		t.Errorf("B got PT %d % x, want only the audio", p.PayloadType, p.Payload)
	}
}

func TestBridgePlay(t *testing.T) {
	r := newCallRig(t,
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU},
		Leg{Codec: PCMA, PayloadType: PayloadTypePCMA})
	ctx := timeout(t, 10*time.Second)
	r.bridge.Start(ctx)
	playCtx, stop := context.WithCancel(ctx)
	defer stop()
	go NewPlayer(r.phoneA, PCMU, 0).Play(playCtx, Sine(1000))

	// While B hears A's 1000 Hz, play 425 Hz into B for 400 ms.
	played := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		played <- r.bridge.Play(ctx, SideB, Limit(Sine(425), 400*time.Millisecond))
	}()
	type hdr struct {
		ssrc uint32
		seq  uint16
	}
	var heard []int16
	var hdrs []hdr
	var p rtp.Packet
	pcm := make([]int16, 1500)
	rctx, cancel := context.WithTimeout(ctx, 1200*time.Millisecond)
	defer cancel()
	for r.phoneB.ReadRTP(rctx, &p) == nil {
		n := PCMA.Decode(pcm, p.Payload)
		heard = append(heard, pcm[:n]...)
		hdrs = append(hdrs, hdr{p.SSRC, p.SequenceNumber})
	}
	if err := <-played; err != nil {
		t.Fatal(err)
	}
	// Classify 100 ms blocks: 1000 Hz, then 425 Hz, then 1000 Hz again.
	var seq []float64
	for i := 0; i+800 <= len(heard); i += 800 {
		f, _ := DominantFrequency(heard[i:i+800], toneCandidates)
		if len(seq) == 0 || seq[len(seq)-1] != f {
			seq = append(seq, f)
		}
	}
	want := []float64{1000, 425, 1000}
	if !containsRun(seq, want) {
		t.Errorf("B heard %v, want %v in order", seq, want)
	}
	// B saw one well-formed stream throughout.
	for i := 1; i < len(hdrs); i++ {
		if hdrs[i].ssrc != hdrs[0].ssrc || hdrs[i].seq != hdrs[i-1].seq+1 {
			t.Fatalf("stream broken at packet %d: %+v after %+v", i, hdrs[i], hdrs[i-1])
		}
	}
}

// containsRun reports whether want appears in got in order, allowing
// transition blocks (mixed or silent) in between.
func containsRun(got, want []float64) bool {
	i := 0
	for _, f := range got {
		if i < len(want) && f == want[i] {
			i++
		}
	}
	return i == len(want)
}

// PlayBoth plays into both legs from one goroutine, each leg its own
// source (of its own length), then the relay resumes both ways.
func TestBridgePlayBoth(t *testing.T) {
	r := newCallRig(t,
		Leg{Codec: PCMU, PayloadType: PayloadTypePCMU},
		Leg{Codec: PCMA, PayloadType: PayloadTypePCMA})
	ctx := timeout(t, 10*time.Second)
	r.bridge.Start(ctx)
	before := runtime.NumGoroutine()
	if err := r.bridge.PlayBoth(ctx, Limit(Sine(425), 300*time.Millisecond), Limit(Sine(1500), 500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines %d -> %d", before, after)
	}
	heard := func(s *Session, codec Codec, pt uint8, n int) []int16 {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var out []int16
		var p rtp.Packet
		pcm := make([]int16, 1500)
		for len(out) < n {
			if err := s.ReadRTP(rctx, &p); err != nil {
				t.Fatalf("read: %v after %d samples", err, len(out))
			}
			if p.PayloadType != pt {
				t.Fatalf("payload type %d", p.PayloadType)
			}
			k := codec.Decode(pcm, p.Payload)
			out = append(out, pcm[:k]...)
		}
		return out
	}
	a := heard(r.phoneA, PCMU, 0, 300*8)
	b := heard(r.phoneB, PCMA, 8, 500*8)
	if f, _ := DominantFrequency(a, toneCandidates); f != 425 {
		t.Errorf("A heard %v Hz", f)
	}
	if f, _ := DominantFrequency(b, []float64{425, 1000, 1500}); f != 1500 {
		t.Errorf("B heard %v Hz", f)
	}
	// The relay runs again towards both legs.
	go func() { _ = NewPlayer(r.phoneA, PCMU, 0).Play(ctx, Limit(Sine(1000), 300*time.Millisecond)) }()
	if f, _ := DominantFrequency(heard(r.phoneB, PCMA, 8, 1600), toneCandidates); f != 1000 {
		t.Errorf("after PlayBoth B heard %v Hz, want A's 1000", f)
	}
}

func TestBridgeStops(t *testing.T) {
	r := newCallRig(t, Leg{Codec: PCMU}, Leg{Codec: PCMU})
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	r.bridge.Start(ctx)
	r.bridge.Start(ctx) // no-op
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case <-r.bridge.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("bridge did not stop on ctx cancel")
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("stop took %v", el)
	}
	if err := r.bridge.Close(); err != nil {
		t.Fatal(err)
	}
	// The legs are free to use again.
	if err := r.phoneA.WriteRTP(&rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	var p rtp.Packet
	if err := r.legA.ReadRTP(timeout(t, 2*time.Second), &p); err != nil || p.Payload[0] != 1 {
		t.Fatalf("leg reuse: %v", err)
	}
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines %d > %d before start", n, before)
	}

	// Close without Start, Close twice, and a closed session ending a bridge.
	r2 := newCallRig(t, Leg{Codec: PCMU}, Leg{Codec: PCMA})
	r2.bridge.Close()
	r2.bridge.Close()
	r2.bridge.Start(context.Background())
	<-r2.bridge.Done()

	r3 := newCallRig(t, Leg{Codec: PCMU}, Leg{Codec: PCMA})
	r3.bridge.Start(context.Background())
	r3.legA.Close()
	r3.legB.Close()
	select {
	case <-r3.bridge.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("bridge did not stop when its sessions closed")
	}
}

func TestNewBridgeErrors(t *testing.T) {
	al := newAllocator(t)
	s1, s2 := pair(t, al)
	tests := []struct {
		name string
		a, b Leg
	}{
		{"nil session", Leg{Codec: PCMU}, Leg{Session: s2, Codec: PCMU}},
		{"no codec", Leg{Session: s1}, Leg{Session: s2, Codec: PCMU}},
		{"same session", Leg{Session: s1, Codec: PCMU}, Leg{Session: s1, Codec: PCMU}},
	}
	for _, tt := range tests {
		if _, err := NewBridge(tt.a, tt.b, nil); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestPlayerPacing(t *testing.T) {
	var w packetRecorder
	p := NewPlayer(&w, PCMA, 8)
	ctx := timeout(t, 5*time.Second)
	start := time.Now()
	if err := p.Play(ctx, Limit(Sine(1000), 210*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if len(w.pkts) != 11 || el < 190*time.Millisecond || el > time.Second {
		t.Fatalf("%d packets in %v", len(w.pkts), el)
	}
	for i, pk := range w.pkts {
		if pk.Marker != (i == 0) || pk.PayloadType != 8 || len(pk.Payload) != FrameSamples {
			t.Errorf("packet %d: %+v len %d", i, pk.Header, len(pk.Payload))
		}
		if i > 0 && (pk.Timestamp != w.pkts[i-1].Timestamp+160 || pk.SequenceNumber != w.pkts[i-1].SequenceNumber+1) {
			t.Errorf("packet %d not consecutive", i)
		}
	}
	// The last frame is padded with silence.
	if last := w.pkts[10].Payload; last[FrameSamples-1] != EncodeALaw(0) {
		t.Error("padding not silent")
	}
	// A second Play continues the stream, timestamps advanced by the gap.
	time.Sleep(100 * time.Millisecond)
	_ = p.Play(ctx, Limit(Silence(), 20*time.Millisecond))
	next := w.pkts[11]
	if d := next.Timestamp - w.pkts[10].Timestamp; !next.Marker || d < 800 || d > 2400 {
		t.Errorf("second play: marker %v, ts +%d", next.Marker, d)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if err := p.Play(cctx, Ringback()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled play: %v", err)
	}
}

// BenchmarkRelayProcess measures the relay's per-packet work without
// sockets: DTMF/tap dispatch and transcoding.
func BenchmarkRelayProcess(b *testing.B) {
	al := newAllocator(b)
	s1, s2 := pair(b, al)
	for _, bc := range []struct {
		name string
		to   Codec
		tap  bool
	}{{"same-codec", PCMU, false}, {"transcode", PCMA, false}, {"transcode+tap", PCMA, true}} {
		b.Run(bc.name, func(b *testing.B) {
			br, err := NewBridge(Leg{Session: s1, Codec: PCMU, EventPT: 101}, Leg{Session: s2, Codec: bc.to, PayloadType: bc.to.PayloadType(), EventPT: 96}, nil)
			if err != nil {
				b.Fatal(err)
			}
			if bc.tap {
				br.SetTap(SideA, func([]int16) {})
			}
			r := br.newRelay(SideA)
			in := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0}, Payload: make([]byte, FrameSamples)}
			b.ReportAllocs()
			for b.Loop() {
				if !r.process(&in) {
					b.Fatal("dropped")
				}
			}
		})
	}
}

// BenchmarkBridgeLoopback is one packet's round through real sockets:
// phoneA -> legA -> Bridge (µ-law to A-law) -> legB -> phoneB.
func BenchmarkBridgeLoopback(b *testing.B) {
	al := newAllocator(b)
	phoneA, legA := pair(b, al)
	legB, phoneB := pair(b, al)
	br, err := NewBridge(Leg{Session: legA, Codec: PCMU}, Leg{Session: legB, Codec: PCMA, PayloadType: 8}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := timeout(b, time.Minute)
	br.Start(ctx)
	defer br.Close()
	out := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, FrameSamples)}
	var in rtp.Packet
	step := func() {
		out.SequenceNumber++
		out.Timestamp += FrameSamples
		if err := phoneA.WriteRTP(&out); err != nil {
			b.Fatal(err)
		}
		if err := phoneB.ReadRTP(ctx, &in); err != nil {
			b.Fatal(err)
		}
	}
	for range 10 { // warm up: latch, grow buffers
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		step()
	}
}
