package testphone

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/registrar"
)

func TestMain(m *testing.M) {
	// Short SIP timers: Timer B/F (64*T1) is 3.2 s.
	sip.SetTimers(50*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	if os.Getenv("SIPGO_DEBUG") == "" {
		sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}

func testLogger() *slog.Logger {
	if os.Getenv("SIPGO_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// checkGoroutines fails the test if, once every later cleanup (closing the
// phones) has run, more goroutines are left than when it started.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d before, %d after close\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func newPhone(t *testing.T, cfg Config) *Phone {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func nextIncoming(t *testing.T, p *Phone) *Call {
	t.Helper()
	select {
	case c := <-p.Incoming():
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no incoming call", p.Config().Name)
		return nil
	}
}

func waitEnded(t *testing.T, c *Call, want EndReason) {
	t.Helper()
	select {
	case <-c.Ended():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s call %s did not end", c.Direction(), c.CallID())
	}
	if got := c.EndReason(); got != want {
		t.Errorf("%s call ended with %q (status %d, err %v), want %q", c.Direction(), got, c.Status(), c.Err(), want)
	}
}

func TestBusy(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "b"})
	b.SetBehavior(Behavior{Mode: Busy})

	call, err := a.Dial(testCtx(t, 5*time.Second), "sip:b@"+b.Addr().String(), DialOptions{})
	if got := StatusCode(err); got != sip.StatusBusyHere {
		t.Fatalf("Dial: err %v (status %d), want 486", err, got)
	}
	waitEnded(t, call, EndRejected)
	if call.Status() != sip.StatusBusyHere {
		t.Errorf("caller status %d, want 486", call.Status())
	}
	bc := nextIncoming(t, b)
	waitEnded(t, bc, EndRejected)
	if bc.Status() != sip.StatusBusyHere || bc.IsAnswered() {
		t.Errorf("callee status %d answered %v, want 486 unanswered", bc.Status(), bc.IsAnswered())
	}
	if len(a.Calls())+len(b.Calls()) != 0 {
		t.Errorf("calls left: %d + %d", len(a.Calls()), len(b.Calls()))
	}
}

func TestCancelNeverAnswer(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "b"})
	b.SetBehavior(Behavior{Mode: NeverAnswer})

	ctx, cancel := context.WithCancel(testCtx(t, 5*time.Second))
	type result struct {
		c   *Call
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := a.Dial(ctx, "sip:b@"+b.Addr().String(), DialOptions{})
		done <- result{c, err}
	}()
	bc := nextIncoming(t, b)
	select {
	case <-bc.Ringing():
	case <-time.After(5 * time.Second):
		t.Fatal("callee never rang")
	}
	time.Sleep(100 * time.Millisecond) // let the 180 reach the caller
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Dial did not return after cancel")
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Dial: %v, want context.Canceled", r.err)
	}
	waitEnded(t, bc, EndCanceled)
	if r.c == nil {
		t.Fatal("Dial returned no call")
	}
	waitEnded(t, r.c, EndCanceled)
	if r.c.Status() != sip.StatusRequestTerminated {
		t.Errorf("caller status %d, want 487", r.c.Status())
	}
	if got := r.c.Provisionals(); len(got) == 0 || got[0] != sip.StatusRinging {
		t.Errorf("caller provisionals %v, want [180]", got)
	}
}

func TestAnswerToneDTMFHangup(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a", User: "alice"})
	b := newPhone(t, Config{Name: "b", User: "bob"})
	b.SetBehavior(Behavior{AnswerAfter: 200 * time.Millisecond, Play: Tone(1000)})
	ctx := testCtx(t, 10*time.Second)

	start := time.Now()
	call, err := a.Dial(ctx, "sip:b@"+b.Addr().String(), DialOptions{
		FromUser:    "+34600000001",
		FromDisplay: "Jane Doe",
		Headers:     map[string]string{"Privacy": "id", "X-Test": "yes"},
		Play:        media.Sine(425),
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %v, want >= 200ms", d)
	}
	bc := nextIncoming(t, b)
	select {
	case <-bc.Answered():
	case <-time.After(5 * time.Second):
		t.Fatal("callee not answered")
	}

	// The callee sees the INVITE as sent.
	inv := bc.Invite()
	if from := inv.From(); from.DisplayName != "Jane Doe" || from.Address.User != "+34600000001" {
		t.Errorf("From = %s", from.Value())
	}
	if bc.Header("Privacy") != "id" || bc.Header("X-Test") != "yes" {
		t.Errorf("Privacy %q X-Test %q", bc.Header("Privacy"), bc.Header("X-Test"))
	}
	if inv.To().Address.User != "b" {
		t.Errorf("To = %s", inv.To().Value())
	}

	if err := call.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := bc.WaitForTone(ctx, 425, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if call.HeardTone(425, 200*time.Millisecond) || bc.HeardTone(1000, 200*time.Millisecond) {
		t.Error("a phone hears its own frequency")
	}
	cands := []float64{425, 440, 1000}
	if f, ok := call.DominantFrequency(cands, 200*time.Millisecond); !ok || f != 1000 {
		t.Errorf("caller dominant %v %v, want 1000", f, ok)
	}
	if f, ok := bc.DominantFrequency(cands, 200*time.Millisecond); !ok || f != 425 {
		t.Errorf("callee dominant %v %v, want 425", f, ok)
	}

	if err := call.SendDTMF(ctx, "123#"); err != nil {
		t.Fatal(err)
	}
	if err := bc.WaitForDTMF(ctx, "123#"); err != nil {
		t.Fatalf("%v (received %q)", err, bc.DTMFReceived())
	}
	time.Sleep(60 * time.Millisecond) // retransmitted end packets must not add digits
	if got := bc.DTMFReceived(); got != "123#" {
		t.Errorf("callee DTMF %q, want 123#", got)
	}
	if got := call.DTMFReceived(); got != "" {
		t.Errorf("caller DTMF %q, want none", got)
	}

	// Switching the source switches what the other side hears.
	bc.Play(media.Sine(440))
	if err := call.WaitForTone(ctx, 440, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, call, EndHangup)
	waitEnded(t, bc, EndRemoteHangup)
	for _, c := range []*Call{call, bc} {
		if sent, recv := c.RTPStats(); sent < 10 || recv < 10 {
			t.Errorf("%s RTP sent %d received %d", c.Direction(), sent, recv)
		}
	}
	if call.Status() != sip.StatusOK || bc.Status() != sip.StatusOK {
		t.Errorf("status %d / %d, want 200", call.Status(), bc.Status())
	}
	if err := call.SendDTMF(ctx, "1"); !errors.Is(err, ErrCallEnded) {
		t.Errorf("SendDTMF after hangup: %v", err)
	}
}

// TestTCPPCMACalleeHangup: a call over TCP offering only PCMA, answered by
// hand, hung up by the callee.
func TestTCPPCMACalleeHangup(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a", Transport: "tcp"})
	b := newPhone(t, Config{Name: "b"})
	b.SetBehavior(Behavior{Mode: NeverAnswer, Play: Tone(1000)})
	ctx := testCtx(t, 10*time.Second)

	call, err := a.StartCall(ctx, "sip:b@"+b.Addr().String(), DialOptions{Codecs: []media.Codec{media.PCMA}, Play: media.Sine(425)})
	if err != nil {
		t.Fatal(err)
	}
	bc := nextIncoming(t, b)
	if tr := bc.Invite().Transport(); tr != "TCP" {
		t.Errorf("INVITE arrived over %s", tr)
	}
	select {
	case <-call.Ringing():
	case <-time.After(5 * time.Second):
		t.Fatal("caller got no 180")
	}
	if err := bc.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Answered():
	case <-call.Ended():
		t.Fatalf("call ended: %v", call.Err())
	case <-time.After(5 * time.Second):
		t.Fatal("caller not answered")
	}
	if got := call.Response().Body(); !strings.Contains(string(got), "PCMA/8000") || strings.Contains(string(got), "PCMU") {
		t.Errorf("answer SDP:\n%s", got)
	}
	if err := call.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := bc.WaitForTone(ctx, 425, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, bc, EndHangup)
	waitEnded(t, call, EndRemoteHangup)
}

// TestReject: Reject mode, and a ringing inbound call declined by Hangup.
func TestReject(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "b"})
	ctx := testCtx(t, 10*time.Second)

	b.SetBehavior(Behavior{Mode: Reject, Code: sip.StatusTemporarilyUnavailable, AnswerAfter: 50 * time.Millisecond})
	if _, err := a.Dial(ctx, "sip:b@"+b.Addr().String(), DialOptions{}); StatusCode(err) != 480 {
		t.Fatalf("Dial: %v, want 480", err)
	}
	nextIncoming(t, b)

	b.SetBehavior(Behavior{Mode: NeverAnswer})
	call, err := a.StartCall(ctx, "sip:b@"+b.Addr().String(), DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bc := nextIncoming(t, b)
	<-bc.Ringing()
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, call, EndRejected)
	if call.Status() != sip.StatusGlobalDecline {
		t.Errorf("status %d, want 603", call.Status())
	}
}

// TestCloseHangsUp: closing a phone with a call in progress hangs it up.
func TestCloseHangsUp(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "b"})
	ctx := testCtx(t, 10*time.Second)
	call, err := a.Dial(ctx, "sip:b@"+b.Addr().String(), DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bc := nextIncoming(t, b)
	a.Close()
	waitEnded(t, call, EndClosed)
	waitEnded(t, bc, EndRemoteHangup)
	if _, err := a.Dial(ctx, "sip:b@"+b.Addr().String(), DialOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
}

const (
	testDomain  = "acme.test"
	testAccount = "acme"
)

type testUsers struct{}

func (testUsers) LookupUser(domain, username string) (account, user, password string, ok bool) {
	if domain == testDomain && (username == "alice" || username == "101") {
		return testAccount, "alice", "s3cret", true
	}
	return "", "", "", false
}

// startRegistrar runs a sipgo server with internal/registrar on loopback
// UDP: REGISTER, and INVITEs that need digest auth and are answered 486
// with the identity in X-Identity.
func startRegistrar(t *testing.T) (*registrar.Registrar, string) {
	t.Helper()
	log := testLogger()
	auth, err := registrar.NewAuthenticator(registrar.AuthConfig{
		Users:  testUsers{},
		Secret: []byte("0123456789abcdef0123456789abcdef"),
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registrar.New(registrar.Config{Users: testUsers{}, Contacts: registrar.NewMemContacts(), Auth: auth, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("registrar-test"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(reg.HandleRegister)
	srv.OnInvite(auth.Require(func(req *sip.Request, tx sip.ServerTransaction, id registrar.Identity) {
		res := sip.NewResponseFromRequest(req, sip.StatusBusyHere, "Busy Here", nil)
		res.AppendHeader(sip.NewHeader("X-Identity", id.Account+"/"+id.User+"/"+id.Username))
		_ = tx.Respond(res)
	}))
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.ServeUDP(conn) })
	t.Cleanup(func() {
		_ = ua.Close()
		_ = conn.Close()
		wg.Wait()
	})
	return reg, conn.LocalAddr().String()
}

func TestRegister(t *testing.T) {
	checkGoroutines(t)
	reg, addr := startRegistrar(t)
	ctx := testCtx(t, 10*time.Second)
	p := newPhone(t, Config{Name: "alice", User: "alice", Password: "s3cret", Domain: testDomain, Registrar: addr})

	status, err := p.Register(ctx, time.Hour)
	if err != nil || status != sip.StatusOK {
		t.Fatalf("Register: %d %v", status, err)
	}
	cs, err := reg.Lookup(ctx, testAccount, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].URI != p.URI() || cs[0].Source != p.Addr().String() {
		t.Fatalf("contacts %+v, want %s from %s", cs, p.URI(), p.Addr())
	}
	// A refresh keeps one binding.
	if status, err := p.Register(ctx, time.Hour); err != nil || status != sip.StatusOK {
		t.Fatalf("refresh: %d %v", status, err)
	}

	// INVITEs are challenged (407) and answered with the same credentials.
	_, err = p.Dial(ctx, "sip:+34910000000@"+addr, DialOptions{})
	if StatusCode(err) != sip.StatusBusyHere {
		t.Fatalf("Dial: %v, want 486 after auth", err)
	}
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatal("no StatusError")
	}
	if got := se.Response.GetHeader("X-Identity"); got == nil || got.Value() != "acme/alice/alice" {
		t.Errorf("X-Identity = %v", got)
	}

	// Unregister.
	if status, err := p.Register(ctx, 0); err != nil || status != sip.StatusOK {
		t.Fatalf("unregister: %d %v", status, err)
	}
	if cs, _ := reg.Lookup(ctx, testAccount, "alice"); len(cs) != 0 {
		t.Errorf("contacts after unregister: %+v", cs)
	}

	// A wrong password ends in 401.
	bad := newPhone(t, Config{Name: "mallory", User: "alice", Password: "wrong", Domain: testDomain, Registrar: addr})
	status, err = bad.Register(ctx, time.Hour)
	if status != sip.StatusUnauthorized || StatusCode(err) != sip.StatusUnauthorized {
		t.Errorf("wrong password: %d %v, want 401", status, err)
	}
}

func TestMessage(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "b"})
	status, err := a.SendMessage(testCtx(t, 5*time.Second), "sip:b@"+b.Addr().String(), "hello", DialOptions{FromUser: "+34600000001"})
	if err != nil || status != sip.StatusOK {
		t.Fatalf("SendMessage: %d %v", status, err)
	}
	select {
	case m := <-b.Messages():
		if string(m.Body()) != "hello" || m.From().Address.User != "+34600000001" {
			t.Errorf("message %q from %s", m.Body(), m.From().Value())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}

// TestEarlyMedia: a callee sending 183 with SDP is heard before it answers.
func TestEarlyMedia(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "carrier"})
	b.SetBehavior(Behavior{Mode: NeverAnswer, EarlyMedia: true, Play: Tone(425)})
	ctx := testCtx(t, 10*time.Second)

	call, err := a.StartCall(ctx, "sip:+34600000002@"+b.Addr().String(), DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bc := nextIncoming(t, b)
	if err := call.WaitForTone(ctx, 425, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if call.IsAnswered() || !call.EarlyMedia() || !bc.EarlyMedia() {
		t.Errorf("answered %v, early media %v/%v", call.IsAnswered(), call.EarlyMedia(), bc.EarlyMedia())
	}
	if got := call.Provisionals(); len(got) != 1 || got[0] != sip.StatusSessionInProgress {
		t.Errorf("provisionals %v, want [183]", got)
	}
	bc.Play(media.Sine(1000))
	if err := bc.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	<-call.Answered()
	if err := call.WaitForTone(ctx, 1000, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, bc, EndRemoteHangup)
}

// TestHold: re-INVITEs from either side put the other on hold and back.
func TestHold(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "b"})
	b.SetBehavior(Behavior{Play: Tone(1000)})
	ctx := testCtx(t, 10*time.Second)
	call, err := a.Dial(ctx, "sip:b@"+b.Addr().String(), DialOptions{Play: media.Sine(425)})
	if err != nil {
		t.Fatal(err)
	}
	bc := nextIncoming(t, b)
	if err := call.WaitForTone(ctx, 1000, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	silent := func(c *Call) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for len(c.Heard(100*time.Millisecond)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s still hears audio on hold", c.Direction())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The caller holds: the callee stops sending, the caller does not.
	if err := call.Hold(ctx, true); err != nil {
		t.Fatal(err)
	}
	silent(call)
	if err := bc.WaitForTone(ctx, 425, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := call.Hold(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := call.WaitForTone(ctx, 1000, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if bc.ReInvites() != 2 {
		t.Errorf("callee got %d re-INVITEs, want 2", bc.ReInvites())
	}

	// The callee holds (a UAS re-INVITE).
	if err := bc.Hold(ctx, true); err != nil {
		t.Fatal(err)
	}
	silent(bc)
	if err := bc.Hold(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := bc.WaitForTone(ctx, 425, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	// In-dialog requests reach the far end (which does not do REFER).
	if code, err := call.Refer(ctx, "102"); code != sip.StatusMethodNotAllowed || StatusCode(err) != code {
		t.Errorf("Refer: %d %v, want 405", code, err)
	}
	if err := bc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, call, EndRemoteHangup)
}

type stallWriter struct {
	w     media.RTPWriter
	n     int
	stall map[int]time.Duration // before the nth packet (1-based)
}

func (w *stallWriter) WriteRTP(p *rtp.Packet) error {
	w.n++
	time.Sleep(w.stall[w.n])
	return w.w.WriteRTP(p)
}

// TestDTMFSenderStall: a digit whose packets are held up for more than
// 200 ms (which makes media.Session re-stamp them) is still one digit.
func TestDTMFSenderStall(t *testing.T) {
	checkGoroutines(t)
	a := newPhone(t, Config{Name: "a"})
	b := newPhone(t, Config{Name: "b"})
	ctx := testCtx(t, 10*time.Second)
	call, err := a.Dial(ctx, "sip:b@"+b.Addr().String(), DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bc := nextIncoming(t, b)
	st, pt := call.media(), call.media().telephoneEventPT()
	for _, stall := range []map[int]time.Duration{
		{2: 250 * time.Millisecond}, // between start and update
		{4: 250 * time.Millisecond}, // between end packets
	} {
		if err := media.SendDTMF(ctx, &stallWriter{w: st.sess, stall: stall}, pt, '5', 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A real second press of the same key still counts.
	if err := call.SendDTMF(ctx, "55"); err != nil {
		t.Fatal(err)
	}
	if err := bc.WaitForDTMF(ctx, "5555"); err != nil {
		t.Fatalf("%v (received %q)", err, bc.DTMFReceived())
	}
	time.Sleep(100 * time.Millisecond)
	if got := bc.DTMFReceived(); got != "5555" {
		t.Errorf("received %q, want 5555", got)
	}
}
