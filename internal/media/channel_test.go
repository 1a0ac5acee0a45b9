package media

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// channelRig is a leg on loopback: phone <-> leg, with a Channel on leg.
func channelRig(t testing.TB, codec Codec, eventPT uint8) (phone, leg *Session, ch *Channel) {
	t.Helper()
	phone, leg = pair(t, newAllocator(t))
	ch = NewChannel(leg, codec, codec.PayloadType(), eventPT, nil)
	t.Cleanup(ch.Stop)
	return phone, leg, ch
}

// nextDigit waits up to d for a digit.
func nextDigit(ch *Channel, d time.Duration) (rune, bool) {
	select {
	case r := <-ch.Digits():
		return r, true
	case <-time.After(d):
		return 0, false
	}
}

func TestChannelDigits(t *testing.T) {
	phone, _, ch := channelRig(t, PCMU, 101)
	ctx := timeout(t, 10*time.Second)
	ch.Start(ctx)
	ch.Start(ctx) // no-op
	for _, d := range "1#" {
		if err := SendDTMF(ctx, phone, 101, d, 80*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	var got []rune
	for range 2 {
		d, ok := nextDigit(ch, 2*time.Second)
		if !ok {
			t.Fatalf("digits %q, then nothing", string(got))
		}
		got = append(got, d)
	}
	if string(got) != "1#" {
		t.Errorf("digits %q, want \"1#\"", string(got))
	}
	// Updates and the three end packets of each press are not new digits.
	if d, ok := nextDigit(ch, 200*time.Millisecond); ok {
		t.Errorf("extra digit %q", d)
	}
	if ch.LastActivity().Before(time.Now().Add(-time.Second)) {
		t.Error("LastActivity stale")
	}
}

// Digits signalled outside RTP (SIP INFO) arrive on Digits while the
// Channel reads the session, even on a leg without telephone-events; those
// signalled while nobody reads wait for the next reader.
func TestChannelSignalledDigits(t *testing.T) {
	_, leg, ch := channelRig(t, PCMA, 0)
	ctx := timeout(t, 10*time.Second)
	leg.SignalDTMF('5')
	ch.Start(ctx)
	leg.SignalDTMF('*')
	for _, d := range "5*" {
		if got, ok := nextDigit(ch, time.Second); !ok || got != d {
			t.Errorf("got %q (%v), want %c", got, ok, d)
		}
	}
	ch.Stop()
	leg.SignalDTMF('1')
	if d, ok := nextDigit(ch, 100*time.Millisecond); ok {
		t.Errorf("digit %c delivered after Stop", d)
	}
	ch2 := NewChannel(leg, PCMA, PayloadTypePCMA, 0, nil)
	ch2.Start(ctx)
	defer ch2.Stop()
	if got, ok := nextDigit(ch2, time.Second); !ok || got != '1' {
		t.Errorf("the next reader got %q (%v), want 1", got, ok)
	}
}

func TestChannelPlay(t *testing.T) {
	phone, _, ch := channelRig(t, PCMA, 101)
	ctx := timeout(t, 10*time.Second)
	ch.Start(ctx)
	played := make(chan error, 1)
	go func() { played <- ch.Play(ctx, Limit(Sine(1000), 400*time.Millisecond)) }()
	heard := listen(ctx, t, phone, PCMA, PayloadTypePCMA, 700*time.Millisecond)
	if err := <-played; err != nil {
		t.Fatalf("Play: %v", err)
	}
	if len(heard) < 2400 {
		t.Fatalf("phone heard %d samples", len(heard))
	}
	if f, ok := DominantFrequency(heard[800:2400], toneCandidates); !ok || f != 1000 {
		t.Errorf("phone heard %v Hz (%v), want 1000", f, ok)
	}
}

func TestChannelPlayPreempts(t *testing.T) {
	phone, _, ch := channelRig(t, PCMU, 0)
	ctx := timeout(t, 10*time.Second)

	// Music, then an announcement that cuts it: the music's Play returns
	// ErrInterrupted and the phone hears 425 Hz, then 1000 Hz, in one stream.
	music := make(chan error, 1)
	go func() { music <- ch.Play(ctx, Sine(425)) }()
	announced := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		announced <- ch.Play(ctx, Limit(Sine(1000), 300*time.Millisecond))
	}()
	var heard []int16
	var seqs []uint16
	var p rtp.Packet
	pcm := make([]int16, 1500)
	rctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	for phone.ReadRTP(rctx, &p) == nil {
		n := PCMU.Decode(pcm, p.Payload)
		heard = append(heard, pcm[:n]...)
		seqs = append(seqs, p.SequenceNumber)
	}
	select {
	case err := <-music:
		if !errors.Is(err, ErrInterrupted) {
			t.Errorf("interrupted Play returned %v, want ErrInterrupted", err)
		}
	case <-time.After(time.Second):
		t.Fatal("music still playing after the announcement")
	}
	if err := <-announced; err != nil {
		t.Errorf("announcement: %v", err)
	}
	var seq []float64
	for i := 0; i+800 <= len(heard); i += 800 {
		f, _ := DominantFrequency(heard[i:i+800], toneCandidates)
		if len(seq) == 0 || seq[len(seq)-1] != f {
			seq = append(seq, f)
		}
	}
	if want := []float64{425, 1000}; !containsRun(seq, want) {
		t.Errorf("phone heard %v, want %v in order", seq, want)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence broken at packet %d: %d after %d", i, seqs[i], seqs[i-1])
		}
	}

	// The caller's own cancellation is not an interruption.
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); ccancel() }()
	if err := ch.Play(cctx, Sine(425)); !errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted) {
		t.Errorf("cancelled Play returned %v", err)
	}

	// Stop interrupts a Play promptly; afterwards Play is refused until
	// Start.
	go func() { music <- ch.Play(ctx, Sine(425)) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	ch.Stop()
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Errorf("Stop took %v", el)
	}
	if err := <-music; !errors.Is(err, ErrInterrupted) {
		t.Errorf("Play ended by Stop returned %v", err)
	}
	if err := ch.Play(ctx, Beep()); !errors.Is(err, ErrClosed) {
		t.Errorf("Play after Stop returned %v, want ErrClosed", err)
	}
	ch.Start(ctx)
	if err := ch.Play(ctx, Limit(Silence(), 40*time.Millisecond)); err != nil {
		t.Errorf("Play after restart: %v", err)
	}
}

// TestChannelDTMFFlood sends 1000 key presses nobody reads: the reader must
// neither block nor panic, drop the excess with a count, and still deliver
// digits once they are read again.
func TestChannelDTMFFlood(t *testing.T) {
	phone, leg, ch := channelRig(t, PCMU, 101)
	ctx := timeout(t, 20*time.Second)
	ch.Start(ctx)
	const presses = 1000
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SSRC: 42}, Payload: make([]byte, DTMFEventSize)}
	for i := range presses {
		ev := DTMFEvent{Event: uint8(i % 12), End: true, Volume: 10, Duration: 400}
		if _, err := ev.MarshalTo(pkt.Payload); err != nil {
			t.Fatal(err)
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 800 // a new press each packet
		if err := phone.WriteRTP(&pkt); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // let loopback keep up; losses are fine
		}
	}
	// Wait until the reader has taken everything the socket delivered.
	deadline := time.Now().Add(5 * time.Second)
	for last := uint64(0); ; {
		time.Sleep(100 * time.Millisecond)
		in := leg.Stats().PacketsIn
		if in == last || time.Now().After(deadline) {
			break
		}
		last = in
	}
	in := leg.Stats().PacketsIn
	queued := len(ch.Digits())
	dropped := ch.DroppedDigits()
	t.Logf("%d presses sent, %d packets read, %d digits queued, %d dropped", presses, in, queued, dropped)
	if queued != DigitBuffer || dropped == 0 || uint64(queued)+dropped != in {
		t.Fatalf("queued %d + dropped %d != %d packets read", queued, dropped, in)
	}
	// The first digits were kept in order; drain them and the reader is
	// still there for the next press.
	for i := range queued {
		if d := <-ch.Digits(); d != rune("0123456789*#"[i%12]) {
			t.Fatalf("digit %d is %q", i, d)
		}
	}
	if err := SendDTMF(ctx, phone, 101, '5', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d, ok := nextDigit(ch, 2*time.Second); !ok || d != '5' {
		t.Fatalf("after the flood got %q %v, want '5'", d, ok)
	}
}

func TestChannelTap(t *testing.T) {
	phone, _, ch := channelRig(t, PCMU, 101)
	ctx := timeout(t, 10*time.Second)
	var mu sync.Mutex
	var tapped []int16
	ch.SetTap(func(pcm []int16) {
		mu.Lock()
		tapped = append(tapped, pcm...)
		mu.Unlock()
	})
	ch.Start(ctx)
	// A-law arriving on a µ-law leg is recognised by its static type.
	if err := NewPlayer(phone, PCMA, PayloadTypePCMA).Play(ctx, Limit(Sine(1000), 300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	ch.SetTap(nil)
	mu.Lock()
	defer mu.Unlock()
	if len(tapped) < 10*FrameSamples {
		t.Fatalf("tap saw %d samples", len(tapped))
	}
	if f, ok := DominantFrequency(tapped[FrameSamples:], toneCandidates); !ok || f != 1000 {
		t.Errorf("tap heard %v Hz (%v)", f, ok)
	}
}

// TestChannelHandsOverToBridge: after Stop the session belongs to a Bridge
// (which reads it itself); after the Bridge closes the Channel can resume.
func TestChannelHandsOverToBridge(t *testing.T) {
	al := newAllocator(t)
	phoneA, legA := pair(t, al)
	legB, phoneB := pair(t, al)
	ctx := timeout(t, 15*time.Second)
	before := runtime.NumGoroutine()

	ch := NewChannel(legA, PCMU, PayloadTypePCMU, 101, nil)
	ch.Start(ctx)
	if err := SendDTMF(ctx, phoneA, 101, '1', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d, ok := nextDigit(ch, 2*time.Second); !ok || d != '1' {
		t.Fatalf("channel got %q %v", d, ok)
	}
	ch.Stop()
	ch.Stop() // idempotent

	br, err := NewBridge(Leg{Session: legA, Codec: PCMU, EventPT: 101}, Leg{Session: legB, Codec: PCMA, PayloadType: PayloadTypePCMA, EventPT: 96}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bridged := make(chan rune, 4)
	br.SetDTMFHandler(SideA, func(d rune) { bridged <- d })
	br.Start(ctx)
	go func() {
		_ = NewPlayer(phoneA, PCMU, PayloadTypePCMU).Play(ctx, Limit(Sine(1000), 400*time.Millisecond))
		_ = SendDTMF(ctx, phoneA, 101, '2', 60*time.Millisecond)
	}()
	var heard []int16
	var p rtp.Packet
	pcm := make([]int16, 1500)
	rctx, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel()
	for phoneB.ReadRTP(rctx, &p) == nil {
		if p.PayloadType == PayloadTypePCMA { // the digit goes through as PT 96
			n := PCMA.Decode(pcm, p.Payload)
			heard = append(heard, pcm[:n]...)
		}
	}
	if len(heard) < 2400 {
		t.Fatalf("B heard %d samples through the bridge", len(heard))
	}
	if f, ok := DominantFrequency(heard[800:2400], toneCandidates); !ok || f != 1000 {
		t.Errorf("B heard %v Hz (%v)", f, ok)
	}
	select {
	case d := <-bridged:
		if d != '2' {
			t.Errorf("bridge saw %q", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("bridge saw no digit")
	}
	if d, ok := nextDigit(ch, 100*time.Millisecond); ok {
		t.Errorf("stopped channel still reading: got %q", d)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// Back to the channel (a transfer to an unknown code, say).
	ch.Start(ctx)
	if err := SendDTMF(ctx, phoneA, 101, '3', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d, ok := nextDigit(ch, 2*time.Second); !ok || d != '3' {
		t.Fatalf("restarted channel got %q %v", d, ok)
	}
	ch.Stop()
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines %d > %d before", n, before)
	}
}

func TestChannelEndsWithSession(t *testing.T) {
	_, leg, ch := channelRig(t, PCMU, 101)
	ch.Start(context.Background())
	leg.Close()
	ch.mu.Lock()
	done := ch.done
	ch.mu.Unlock()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("reader did not end when the session closed")
	}
	if err := ch.Play(context.Background(), Beep()); !errors.Is(err, ErrClosed) {
		t.Errorf("Play on a closed session: %v", err)
	}
}

// BenchmarkChannelRead is one packet through real sockets into a Channel
// with a tap: phone -> leg -> Channel reader -> tap.
func BenchmarkChannelRead(b *testing.B) {
	phone, _, ch := channelRig(b, PCMU, 101)
	got := make(chan struct{}, 1)
	ch.SetTap(func([]int16) { got <- struct{}{} })
	ch.Start(timeout(b, time.Minute))
	out := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, FrameSamples)}
	step := func() {
		out.SequenceNumber++
		out.Timestamp += FrameSamples
		if err := phone.WriteRTP(&out); err != nil {
			b.Fatal(err)
		}
		<-got
	}
	for range 10 {
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		step()
	}
}
