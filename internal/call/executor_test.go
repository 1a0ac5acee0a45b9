package call

// Unit tests of the call executor (SPEC §3 "Extensions"): a real Engine runs
// each call, but its outbound legs are fakes (Engine.dial) and the caller is
// a recorded server transaction, so no SIP peer is needed and every case
// takes milliseconds. They cover the paths on which the caller is never
// answered; answered calls (bridge, queue, voicemail, prompts) need a real
// caller that ACKs our 200 and are left to the loopback SIP tests.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// executorDoc is the account the executor tests route on: one number per
// case, groups with a short attempt timeout. dave has no registered device.
const executorDoc = `
account: acme
domain: acme.example.com
defaults:
  trunk: carrier
  service_number: "+34910000000"
trunks:
  carrier: { address: "sip:127.0.0.1:5070", inbound_from: ["127.0.0.1/32"] }
users:
  alice: { extension: "101", password: pw, blocklist: ["+1900*"] }
  bob:   { extension: "102", password: pw }
  carol: { extension: "103", password: pw }
  dave:  { extension: "104", password: pw }
prompts:
  closed: { say: "We are closed." }
extensions:
  seq:
    type: group
    members: ["user:alice", "user:bob", "user:carol"]
    distribution: sequential
    timeout: 100ms
  rota:
    type: group
    members: ["user:alice", "user:bob", "user:carol"]
    distribution: rotating
    timeout: 100ms
  multi:
    type: group
    members: ["user:alice", "user:bob", "user:carol"]
    distribution: multi-ring
    max_parallel: 2
    timeout: 100ms
  fallback:
    type: group
    members: ["user:alice", "user:bob"]
    timeout: 100ms
    on_failure: "+34600000003"
  tones:
    type: group
    members: ["user:alice", "user:dave", "user:bob"]
    timeout: 100ms
    on_failure: tones
  front: { type: individual, destination: "user:alice", timeout: 100ms }
  closed: { type: individual, destination: "prompt:closed" }
numbers:
  "+34910000001":
    extension: seq
    rules:
      - { prefix: "+44*", weight: 10, action: reject-busy, tags: [uk] }
  "+34910000002": { extension: rota }
  "+34910000003": { extension: multi }
  "+34910000004": { extension: fallback }
  "+34910000005": { extension: tones }
  "+34910000006": { extension: front }
  "+34910000007": { extension: closed }
`

const (
	executorRingTimeout = 300 * time.Millisecond
	// callBound bounds one call of these tests: the longest one rings two
	// 100 ms waves or 300 ms of on_failure tones.
	callBound = 5 * time.Second
)

// executorPorts is the RTP port range of these tests, shared by every
// engine of the package so that two never bind the same pair.
var executorPorts = sync.OnceValues(func() (*media.PortAllocator, error) {
	return media.NewPortAllocator(netip.MustParseAddr("127.0.0.1"), 45000, 45999)
})

// legScript is how a fake outbound leg behaves.
type legScript struct {
	ring  bool      // the leg rings (a 180) before its final outcome
	class failClass // busy, unavailable, or no answer: rings until the attempt times out
	why   string    // what the leg reports, for the trace
	// hangUp: once the leg rings, the caller hangs up (CANCEL).
	hangUp bool
}

// dialled is one outbound leg the executor placed.
type dialled struct {
	member string
	uri    sip.Uri
	addr   string
	trunk  bool
	wave   int // attempts dialled in the same ring() share its context: one wave
	// together is how many legs of its wave had been placed when this one
	// ended; for a leg that rings until the timeout, the size of the wave
	// if they were all placed at once.
	together int
	// cause is why the leg's context ended when it gave up ringing: the
	// attempt timeout (errNoAnswer) or the caller leaving.
	cause error
}

// fakeDialer replaces (*call).dial.
type fakeDialer struct {
	events *eventLog
	script map[string]legScript
	hangUp func() // the caller of the call in progress hangs up

	mu      sync.Mutex
	legs    []dialled
	waves   map[context.Context]int
	arrived map[context.Context]int
}

func (f *fakeDialer) dial(c *call, ctx context.Context, d dest, mode string, ringing chan<- string) attempt {
	f.mu.Lock()
	wave, ok := f.waves[ctx]
	if !ok {
		wave = len(f.waves)
		f.waves[ctx] = wave
	}
	f.arrived[ctx]++
	i := len(f.legs)
	f.legs = append(f.legs, dialled{member: d.member, uri: d.uri, addr: d.addr, trunk: d.trunk != nil, wave: wave})
	s, scripted := f.script[d.member]
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.legs[i].together = f.arrived[ctx]
		f.mu.Unlock()
	}()
	if !scripted {
		return attempt{class: failUnavailable, who: d.member, why: "not scripted"}
	}
	if s.ring {
		ringing <- d.member
		// A real leg's final response comes well after its 180: let the
		// call take the ringing in before this leg ends.
		f.events.wait(ctx, c.rec.ID, EventRinging, d.member)
	}
	if s.hangUp {
		f.mu.Lock()
		hangUp := f.hangUp
		f.mu.Unlock()
		hangUp()
	}
	if s.class == failNoAnswer {
		<-ctx.Done()
		f.mu.Lock()
		f.legs[i].cause = context.Cause(ctx)
		f.mu.Unlock()
		return attempt{class: failNoAnswer, who: d.member}
	}
	return attempt{class: s.class, who: d.member, why: s.why}
}

// dialledWaves returns the members dialled, wave by wave; within a wave in list
// (alphabetical) order, as its legs are placed concurrently.
func (f *fakeDialer) dialledWaves() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, l := range f.legs {
		for len(out) <= l.wave {
			out = append(out, nil)
		}
		out[l.wave] = append(out[l.wave], l.member)
	}
	for _, w := range out {
		slices.Sort(w)
	}
	return out
}

func (f *fakeDialer) placed() []dialled {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.legs)
}

// eventLog collects call events; waiters are woken on every event.
type eventLog struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

func (l *eventLog) add(ev Event) {
	ev.Record = nil // observers must not keep it past the call
	l.mu.Lock()
	l.events = append(l.events, ev)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// wait returns once call emitted an event of kind for leg, ctx ended or a
// second passed. (A call's id is set before its legs are placed.)
func (l *eventLog) wait(ctx context.Context, call string, kind EventKind, leg string) bool {
	limit := time.NewTimer(time.Second)
	defer limit.Stop()
	for {
		l.mu.Lock()
		seen := slices.ContainsFunc(l.events, func(e Event) bool { return e.Call == call && e.Kind == kind && e.Leg == leg })
		changed := l.changed
		l.mu.Unlock()
		if seen {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		case <-limit.C:
			return false
		}
	}
}

// of renders the events of one call: "started", "ringing user:bob",
// "ended busy".
func (l *eventLog) of(callID string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e.Call != callID {
			continue
		}
		s := e.Kind.String()
		switch e.Kind {
		case EventEnded:
			s += " " + string(e.Cause)
		case EventStarted:
		default:
			s += " " + e.Leg
		}
		out = append(out, s)
	}
	return out
}

type recordLog struct {
	mu   sync.Mutex
	recs []store.CallRecord
}

func (r *recordLog) StartCall(ctx context.Context, rec *store.CallRecord) error {
	return r.InsertCall(ctx, rec)
}

func (r *recordLog) InsertCall(_ context.Context, rec *store.CallRecord) error {
	cp := *rec
	cp.Tags = slices.Clone(rec.Tags)
	cp.Trace = slices.Clone(rec.Trace)
	r.mu.Lock()
	defer r.mu.Unlock()
	// Written at the start and again at the end: the last write wins, as
	// in the store.
	if i := slices.IndexFunc(r.recs, func(x store.CallRecord) bool { return x.ID == cp.ID }); i >= 0 {
		r.recs[i] = cp
		return nil
	}
	r.recs = append(r.recs, cp)
	return nil
}

func (r *recordLog) all() []store.CallRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// fakeCounters hands out rotation counters from next on, per extension.
type fakeCounters struct {
	mu    sync.Mutex
	next  uint64
	calls map[string]uint64
}

func (f *fakeCounters) NextRotation(_ context.Context, account, extension string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := account + "/" + extension
	n := f.next + f.calls[key]
	f.calls[key]++
	return n, nil
}

// fakeDevices registers one device per user, except the users in none.
type fakeDevices struct{ none []string }

func (f fakeDevices) Devices(_ context.Context, account, user string) ([]Device, error) {
	if account != "acme" || slices.Contains(f.none, user) {
		return nil, nil
	}
	return []Device{{URI: "sip:" + user + "@127.0.0.1:5099", Addr: "127.0.0.1:5099", Transport: "UDP"}}, nil
}

var (
	_ Locator               = fakeDevices{}
	_ Records               = (*recordLog)(nil)
	_ Counters              = (*fakeCounters)(nil)
	_ sip.ServerTransaction = (*callerTx)(nil)
)

// callerTx is the caller's INVITE transaction: it records our responses
// and, like a caller, ACKs every non-2xx final response (the dialog waits
// for that ACK, or for Timer H, before the call can end).
type callerTx struct {
	*siptest.ServerTxRecorder
	req      *sip.Request
	rang     chan struct{} // closed once we sent 180
	rangOnce sync.Once
}

func newCallerTx(req *sip.Request) *callerTx {
	return &callerTx{ServerTxRecorder: siptest.NewServerTxRecorder(req), req: req, rang: make(chan struct{})}
}

func (tx *callerTx) Respond(res *sip.Response) error {
	if err := tx.ServerTxRecorder.Respond(res); err != nil {
		return err
	}
	if res.StatusCode == 180 {
		tx.rangOnce.Do(func() { close(tx.rang) })
	}
	if res.StatusCode >= 300 {
		ack := sip.NewRequest(sip.ACK, tx.req.Recipient)
		ack.AppendHeader(sip.HeaderClone(tx.req.Via()))
		ack.AppendHeader(sip.HeaderClone(tx.req.From()))
		ack.AppendHeader(sip.HeaderClone(res.To()))
		ack.AppendHeader(sip.HeaderClone(tx.req.CallID()))
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: tx.req.CSeq().SeqNo, MethodName: sip.ACK})
		go func() { _ = tx.Receive(ack) }()
	}
	return nil
}

// cancel is the caller hanging up before an answer, once it heard ringing
// (or after a second): a CANCEL, which the transaction answers with 487
// itself, and the caller's ACK of that 487.
func (tx *callerTx) cancel() {
	select {
	case <-tx.rang:
	case <-time.After(time.Second):
	}
	c := sip.NewRequest(sip.CANCEL, tx.req.Recipient)
	c.AppendHeader(sip.HeaderClone(tx.req.Via()))
	c.AppendHeader(sip.HeaderClone(tx.req.From()))
	c.AppendHeader(sip.HeaderClone(tx.req.To()))
	c.AppendHeader(sip.HeaderClone(tx.req.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: tx.req.CSeq().SeqNo, MethodName: sip.CANCEL})
	_ = tx.Receive(c)
	ack := sip.NewRequest(sip.ACK, tx.req.Recipient)
	ack.AppendHeader(sip.HeaderClone(tx.req.Via()))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: tx.req.CSeq().SeqNo, MethodName: sip.ACK})
	_ = tx.Receive(ack)
}

// codes are the status codes of our responses to the caller, in order.
func (tx *callerTx) codes() []int {
	var out []int
	for _, r := range tx.Result() {
		out = append(out, r.StatusCode)
	}
	return out
}

type executorEnv struct {
	t       *testing.T
	e       *Engine
	snap    *routing.Snapshot
	dialer  *fakeDialer
	events  *eventLog
	records *recordLog
	counter *fakeCounters
	ports   *media.PortAllocator
}

func newExecutorEnv(t *testing.T, script map[string]legScript) *executorEnv {
	t.Helper()
	doc, err := config.Parse([]byte(executorDoc), "executor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	snap, err := routing.Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := executorPorts()
	if err != nil {
		t.Fatal(err)
	}
	env := &executorEnv{
		t: t, snap: snap, ports: ports,
		events:  newEventLog(),
		records: &recordLog{},
		counter: &fakeCounters{calls: map[string]uint64{}},
	}
	env.dialer = &fakeDialer{events: env.events, script: script,
		waves: map[context.Context]int{}, arrived: map[context.Context]int{}}
	env.e = New(Config{
		UA:          &sipgo.DialogUA{},
		Media:       ports,
		MediaIP:     netip.MustParseAddr("127.0.0.1"),
		Devices:     fakeDevices{none: []string{"dave"}},
		Records:     env.records,
		Counters:    env.counter,
		Events:      env.events.add,
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		RingTimeout: executorRingTimeout,
		Recordings:  t.TempDir(),
	})
	env.e.dial = env.dialer.dial
	t.Cleanup(func() {
		// Legs left ringing when their wave ended are cancelled in the
		// background: wait for them, then check nothing is left over.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		env.e.Drain(ctx)
		if ctx.Err() != nil {
			t.Error("the engine did not drain within 2s")
		}
		if n := env.e.Active(); n != 0 {
			t.Errorf("%d calls still active", n)
		}
		if n := ports.InUse(); n != 0 {
			t.Errorf("%d RTP port pairs still in use after the calls ended", n)
		}
	})
	return env
}

// placedCall is what one call left behind.
type placedCall struct {
	tx      *callerTx
	rec     store.CallRecord
	events  []string
	elapsed time.Duration
	rtp     int // RTP packets the caller received (early media)
}

// call places one call from caller to number on the trunk side and returns
// once the engine is done with it.
func (env *executorEnv) call(number, caller string) placedCall {
	t := env.t
	t.Helper()
	rtp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var packets int
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := rtp.ReadFromUDP(buf); err != nil {
				return
			}
			packets++
		}
	})
	offer, err := media.LocalSDP{IP: netip.MustParseAddr("127.0.0.1"), Port: rtp.LocalAddr().(*net.UDPAddr).Port,
		SessionID: 1, Codecs: []media.Codec{media.PCMU}}.Offer()
	if err != nil {
		t.Fatal(err)
	}
	req := newTrunkInvite(number, caller, offer)
	tx := newCallerTx(req)
	env.dialer.mu.Lock()
	env.dialer.hangUp = tx.cancel
	env.dialer.mu.Unlock()
	in := Inbound{
		Req: req, Tx: tx, Snap: env.snap,
		Route: &routing.Request{Number: number, Caller: caller, CallerName: "Jane Doe"},
		Trace: []string{"inbound: trunk carrier"},
	}
	before := len(env.records.all())
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.e.Handle(context.Background(), in)
	}()
	select {
	case <-done:
	case <-time.After(callBound):
		t.Fatalf("call to %s from %s: Handle did not return within %s; responses %v", number, caller, callBound, tx.codes())
	}
	elapsed := time.Since(start)
	// Legs still ringing when their wave ended are cancelled in the
	// background: let them finish before looking at what they saw.
	select {
	case <-waitGroupDone(&env.e.cleanup):
	case <-time.After(2 * time.Second):
		t.Fatalf("call to %s: legs still ringing 2s after the call ended", number)
	}
	_ = rtp.Close()
	wg.Wait()
	recs := env.records.all()
	if len(recs) != before+1 {
		t.Fatalf("call to %s: %d call records written, want 1", number, len(recs)-before)
	}
	rec := recs[len(recs)-1]
	return placedCall{tx: tx, rec: rec, events: env.events.of(rec.ID), elapsed: elapsed, rtp: packets}
}

// newTrunkInvite is an INVITE from the trunk to number, over TCP so that our
// final responses are not retransmitted into the recording.
func newTrunkInvite(number, caller string, offer []byte) *sip.Request {
	ruri := sip.Uri{Scheme: "sip", User: number, Host: "127.0.0.1", Port: 5060}
	req := sip.NewRequest(sip.INVITE, ruri)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TCP",
		Host: "127.0.0.1", Port: 5070, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	req.AppendHeader(via)
	from := &sip.FromHeader{DisplayName: "Jane Doe", Address: sip.Uri{Scheme: "sip", User: caller, Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: number, Host: "127.0.0.1"}, Params: sip.NewParams()})
	callID := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: caller, Host: "127.0.0.1", Port: 5070}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	req.SetTransport("TCP")
	return req
}

// check compares what a call did with what it should have done.
type want struct {
	waves   [][]string // members dialled, wave by wave (nil: none)
	codes   []int      // our responses to the caller, in order
	outcome routing.Outcome
	cause   Cause
	events  []string
	trace   []string // lines the record's trace must contain, in this order
}

func (env *executorEnv) check(pc placedCall, w want) {
	t := env.t
	t.Helper()
	if got := env.dialer.dialledWaves(); !slices.EqualFunc(got, w.waves, slices.Equal) {
		t.Errorf("dialled waves %v, want %v", got, w.waves)
	}
	if got := pc.tx.codes(); !slices.Equal(got, w.codes) {
		t.Errorf("responses to the caller %v, want %v", got, w.codes)
	}
	if pc.rec.Outcome != string(w.outcome) {
		t.Errorf("outcome %q, want %q", pc.rec.Outcome, w.outcome)
	}
	if pc.rec.HangupCause != string(w.cause) {
		t.Errorf("hangup_cause %q, want %q", pc.rec.HangupCause, w.cause)
	}
	if pc.rec.CallerName != "Jane Doe" || pc.rec.Account != "acme" {
		t.Errorf("record of account %q, caller name %q; want acme, Jane Doe", pc.rec.Account, pc.rec.CallerName)
	}
	if !pc.rec.Answer.IsZero() || pc.rec.AnsweredBy != "" {
		t.Errorf("the call was answered (at %v by %q)", pc.rec.Answer, pc.rec.AnsweredBy)
	}
	if !slices.Equal(pc.events, w.events) {
		t.Errorf("events %q, want %q", pc.events, w.events)
	}
	checkTrace(t, pc.rec.Trace, append([]string{"inbound: trunk carrier"}, w.trace...))
}

// checkTrace checks that trace holds every line of want, in that order
// (other lines may come between).
func checkTrace(t *testing.T, trace, want []string) {
	t.Helper()
	i := 0
	for _, line := range trace {
		if i < len(want) && line == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("trace lacks %q (in order); trace:\n  %s", want[i], strings.Join(trace, "\n  "))
	}
}

// TestExecutorSequentialAllBusy: a sequential group rings its members one
// per wave in list order; when every one is busy the caller gets 486. The
// second wave starts Switchboard's ringback (183), after which a leg's
// ringing no longer sends a 180.
func TestExecutorSequentialAllBusy(t *testing.T) {
	env := newExecutorEnv(t, map[string]legScript{
		"user:alice": {class: failBusy},
		"user:bob":   {ring: true, class: failBusy},
		"user:carol": {class: failBusy},
	})
	pc := env.call("+34910000001", "+34600111222")
	env.check(pc, want{
		waves:   [][]string{{"user:alice"}, {"user:bob"}, {"user:carol"}},
		codes:   []int{100, 183, 486},
		outcome: routing.OutcomeRouted,
		cause:   CauseBusy,
		events:  []string{"started", "ringing user:bob", "ended busy"},
		trace: []string{
			"number +34910000001: found",
			"attempts: seq is a sequential group",
			"attempts: user:alice -> user:bob -> user:carol",
			"attempt 1 [user:alice]: busy",
			"early media: 183 with Switchboard's ringing sound",
			"attempt 2 [user:bob]: busy",
			"attempt 3 [user:carol]: busy",
			"all attempts failed: busy",
		},
	})
	for _, l := range env.dialer.placed() {
		user := strings.TrimPrefix(l.member, "user:")
		if l.uri.String() != "sip:"+user+"@127.0.0.1:5099" || l.addr != "127.0.0.1:5099" || l.trunk {
			t.Errorf("%s dialled at %s via %q (trunk %v), want its registered device", l.member, l.uri.String(), l.addr, l.trunk)
		}
	}
}

// TestExecutorRotating: a rotating group starts where the shared counter
// says, one member further on each call, and wraps around the list.
func TestExecutorRotating(t *testing.T) {
	all := map[string]legScript{
		"user:alice": {class: failBusy},
		"user:bob":   {class: failBusy},
		"user:carol": {class: failBusy},
	}
	for _, tc := range []struct {
		counter uint64
		waves   [][]string
		note    string
	}{
		{4, [][]string{{"user:bob"}, {"user:carol"}, {"user:alice"}}, "attempts: rota is a rotating group; counter 4 starts at member 1 (user:bob)"},
		{5, [][]string{{"user:carol"}, {"user:alice"}, {"user:bob"}}, "attempts: rota is a rotating group; counter 5 starts at member 2 (user:carol)"},
		{6, [][]string{{"user:alice"}, {"user:bob"}, {"user:carol"}}, "attempts: rota is a rotating group; counter 6 starts at member 0 (user:alice)"},
	} {
		t.Run(fmt.Sprint("counter ", tc.counter), func(t *testing.T) {
			env := newExecutorEnv(t, all)
			env.counter.next = tc.counter
			pc := env.call("+34910000002", "+34600111222")
			env.check(pc, want{
				waves: tc.waves, codes: []int{100, 183, 486},
				outcome: routing.OutcomeRouted, cause: CauseBusy,
				events: []string{"started", "ended busy"},
				trace:  []string{tc.note, "all attempts failed: busy"},
			})
		})
	}

	// Two calls on one engine: the second starts one member further.
	env := newExecutorEnv(t, all)
	first := env.call("+34910000002", "+34600111222")
	second := env.call("+34910000002", "+34600111222")
	checkTrace(t, first.rec.Trace, []string{"attempts: rota is a rotating group; counter 0 starts at member 0 (user:alice)"})
	checkTrace(t, second.rec.Trace, []string{"attempts: rota is a rotating group; counter 1 starts at member 1 (user:bob)"})
	want := [][]string{{"user:alice"}, {"user:bob"}, {"user:carol"}, {"user:bob"}, {"user:carol"}, {"user:alice"}}
	if got := env.dialer.dialledWaves(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("two calls dialled %v, want %v", got, want)
	}
	if n := env.counter.calls["acme/rota"]; n != 2 {
		t.Errorf("the rotation counter was read %d times in two calls, want 2", n)
	}
}

// TestExecutorMultiRing: max_parallel 2 of 3 members rings two waves, the
// members of a wave at once; busy anywhere in a wave is the wave's outcome.
func TestExecutorMultiRing(t *testing.T) {
	env := newExecutorEnv(t, map[string]legScript{
		"user:alice": {class: failNoAnswer},
		"user:bob":   {ring: true, class: failNoAnswer},
		"user:carol": {class: failBusy},
	})
	pc := env.call("+34910000003", "+34600111222")
	env.check(pc, want{
		waves:   [][]string{{"user:alice", "user:bob"}, {"user:carol"}},
		codes:   []int{100, 180, 183, 486},
		outcome: routing.OutcomeRouted,
		cause:   CauseBusy,
		events:  []string{"started", "ringing user:bob", "ended busy"},
		trace: []string{
			"attempts: multi is a multi-ring group, 2 at a time",
			"attempts: user:alice + user:bob -> user:carol",
			"attempt 1 [user:alice user:bob]: no_answer",
			"attempt 2 [user:carol]: busy",
			"all attempts failed: busy",
		},
	})
	for _, l := range env.dialer.placed() {
		if l.wave == 0 && l.together != 2 {
			t.Errorf("%s rang with %d leg(s) of its wave placed, want both at once", l.member, l.together)
		}
		if l.wave == 0 && !errors.Is(l.cause, errNoAnswer) {
			t.Errorf("%s stopped ringing because of %v, want the attempt timeout", l.member, l.cause)
		}
	}
	if pc.elapsed < 100*time.Millisecond {
		t.Errorf("the call took %s: the first wave did not wait for its 100ms timeout", pc.elapsed)
	}

	// One busy leg makes the wave busy even when the other is unavailable.
	env = newExecutorEnv(t, map[string]legScript{
		"user:alice": {class: failUnavailable, why: "480 Temporarily Unavailable"},
		"user:bob":   {class: failBusy},
		"user:carol": {class: failUnavailable, why: "503 Service Unavailable"},
	})
	pc = env.call("+34910000003", "+34600111222")
	checkTrace(t, pc.rec.Trace, []string{"attempt 1 [user:alice user:bob]: busy", "attempt 2 [user:carol]: unavailable", "all attempts failed: unavailable"})
	if pc.rec.HangupCause != string(CauseUnavailable) {
		t.Errorf("hangup_cause %q, want unavailable (the last wave's)", pc.rec.HangupCause)
	}
}

// TestExecutorBlocklist: a member whose user's blocklist matches the caller
// is skipped without an INVITE; the others ring as usual.
func TestExecutorBlocklist(t *testing.T) {
	script := map[string]legScript{
		"user:alice": {class: failBusy},
		"user:bob":   {class: failBusy},
		"user:carol": {class: failBusy},
	}
	for _, tc := range []struct {
		name, caller string
		waves        [][]string
		trace        []string
	}{
		{"blocked", "+19005551234", [][]string{{"user:bob"}, {"user:carol"}},
			[]string{"attempts: member user:alice skipped: alice's blocklist +1900* matches +19005551234", "attempts: user:bob -> user:carol"}},
		{"not blocked", "+12125550100", [][]string{{"user:alice"}, {"user:bob"}, {"user:carol"}},
			[]string{"attempts: user:alice -> user:bob -> user:carol"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newExecutorEnv(t, script)
			pc := env.call("+34910000001", tc.caller)
			env.check(pc, want{
				waves: tc.waves, codes: []int{100, 183, 486},
				outcome: routing.OutcomeRouted, cause: CauseBusy,
				events: []string{"started", "ended busy"},
				trace:  tc.trace,
			})
		})
	}
}

// TestExecutorOnFailureTarget: when every member failed, on_failure sends
// the call on to an external number, dialled through the default trunk.
func TestExecutorOnFailureTarget(t *testing.T) {
	env := newExecutorEnv(t, map[string]legScript{
		"user:alice":   {ring: true, class: failNoAnswer},
		"user:bob":     {class: failNoAnswer},
		"+34600000003": {class: failBusy},
	})
	pc := env.call("+34910000004", "+34600111222")
	env.check(pc, want{
		waves:   [][]string{{"user:alice"}, {"user:bob"}, {"+34600000003"}},
		codes:   []int{100, 180, 183, 486},
		outcome: routing.OutcomeRouted,
		cause:   CauseBusy,
		events:  []string{"started", "ringing user:alice", "ended busy"},
		trace: []string{
			"attempt 1 [user:alice]: no_answer",
			"attempt 2 [user:bob]: no_answer",
			"on_failure of fallback: continuing to +34600000003",
			"attempt 1 [+34600000003]: busy",
			"all attempts failed: busy",
		},
	})
	legs := env.dialer.placed()
	if len(legs) != 3 {
		t.Fatalf("%d legs placed, want 3", len(legs))
	}
	l := legs[2]
	if l.uri.User != "+34600000003" || l.uri.Host != "127.0.0.1" || l.uri.Port != 5070 || !l.trunk || l.addr != "" {
		t.Errorf("on_failure leg to %s (trunk %v, addr %q), want sip:+34600000003@127.0.0.1:5070 through the trunk",
			l.uri.String(), l.trunk, l.addr)
	}
}

// TestExecutorOnFailureTones: every member unavailable (one has no device
// at all) and on_failure tones: the caller, who heard a 180 from the first
// leg, hears ringback until RingTimeout and then gets 480.
func TestExecutorOnFailureTones(t *testing.T) {
	env := newExecutorEnv(t, map[string]legScript{
		"user:alice": {ring: true, class: failUnavailable, why: "480 Temporarily Unavailable"},
		"user:bob":   {class: failUnavailable, why: "404 Not Found"},
		"user:dave":  {class: failBusy}, // never dialled: no registered device
	})
	pc := env.call("+34910000005", "+34600111222")
	env.check(pc, want{
		waves:   [][]string{{"user:alice"}, {"user:bob"}},
		codes:   []int{100, 180, 183, 480},
		outcome: routing.OutcomeRouted,
		cause:   CauseUnavailable,
		events:  []string{"started", "ringing user:alice", "ended unavailable"},
		trace: []string{
			"user:alice: 480 Temporarily Unavailable",
			"attempt 1 [user:alice]: unavailable",
			"user:dave: no registered device",
			"attempt 2 [user:dave]: unavailable (nothing to ring)",
			"user:bob: 404 Not Found",
			"attempt 3 [user:bob]: unavailable",
			"all attempts failed: unavailable",
			"on_failure tones: until the caller hangs up (at most 300ms)",
		},
	})
	if pc.elapsed < executorRingTimeout {
		t.Errorf("the call took %s: ringback did not last RingTimeout (%s)", pc.elapsed, executorRingTimeout)
	}
	if pc.rtp == 0 {
		t.Error("the caller received no ringback RTP")
	}
}

// TestExecutorCallerCancel: the caller hangs up while the first member
// rings: that leg is cancelled at once (not at its timeout), nobody else is
// dialled, on_failure does not run and no final response of ours follows
// the transaction's 487.
func TestExecutorCallerCancel(t *testing.T) {
	env := newExecutorEnv(t, map[string]legScript{
		"user:alice": {ring: true, class: failNoAnswer, hangUp: true},
		"user:bob":   {class: failBusy},
	})
	pc := env.call("+34910000004", "+34600111222")
	env.check(pc, want{
		waves:   [][]string{{"user:alice"}},
		codes:   []int{100, 180, 487},
		outcome: routing.OutcomeRouted,
		cause:   CauseCallerCancel,
		events:  []string{"started", "ringing user:alice", "ended caller_cancel"},
		trace:   []string{"attempt 1 [user:alice]: cancelled by the caller", "caller hung up before an answer"},
	})
	if l := env.dialer.placed()[0]; l.cause == nil || errors.Is(l.cause, errNoAnswer) {
		t.Errorf("alice's leg ended because of %v, want the caller's CANCEL", l.cause)
	}
	for _, line := range pc.rec.Trace {
		if strings.HasPrefix(line, "on_failure") || strings.HasPrefix(line, "all attempts failed") {
			t.Errorf("trace %q: on_failure ran after the caller left", line)
		}
	}
}

// TestExecutorRefused: a rule or an unknown number refuses the call before
// anything is dialled.
func TestExecutorRefused(t *testing.T) {
	for _, tc := range []struct {
		name, number, caller string
		w                    want
		tags                 []string
	}{
		{"reject-busy rule", "+34910000001", "+447700900123", want{
			codes: []int{100, 486}, outcome: routing.OutcomeRejected, cause: CauseRejected,
			events: []string{"started", "ended rejected"},
			trace:  []string{"number +34910000001: found"},
		}, []string{"uk"}},
		{"unknown number", "+34999999999", "+34600111222", want{
			codes: []int{100, 404}, outcome: routing.OutcomeNotFound, cause: CauseNotFound,
			events: []string{"started", "ended not_found"},
			trace:  []string{"number +34999999999: not found -> 404"},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newExecutorEnv(t, map[string]legScript{"user:alice": {class: failBusy}})
			pc := env.call(tc.number, tc.caller)
			env.check(pc, tc.w)
			if pc.rec.Number != tc.number {
				t.Errorf("record number %q, want %q", pc.rec.Number, tc.number)
			}
			if !slices.Equal(pc.rec.Tags, tc.tags) {
				t.Errorf("record tags %q, want %q", pc.rec.Tags, tc.tags)
			}
		})
	}
	// The rule's line names its action.
	env := newExecutorEnv(t, nil)
	pc := env.call("+34910000001", "+447700900123")
	if !slices.ContainsFunc(pc.rec.Trace, func(l string) bool { return strings.Contains(l, "+44*") && strings.Contains(l, "reject-busy") }) {
		t.Errorf("no trace line for the reject-busy rule:\n  %s", strings.Join(pc.rec.Trace, "\n  "))
	}
}

// TestExecutorIndividual: an individual extension rings its destination
// when that can be rung; a prompt behind one is not dialled but takes the
// call itself. With no prompts loaded the prompt cannot be played, so the
// caller gets 480 without being answered. (voicemail:USER answers the call,
// which needs a caller that ACKs our 200: left to the SIP tests.)
func TestExecutorIndividual(t *testing.T) {
	for _, tc := range []struct {
		name, number string
		w            want
	}{
		{"ringable", "+34910000006", want{
			waves: [][]string{{"user:alice"}}, codes: []int{100, 180, 486},
			outcome: routing.OutcomeRouted, cause: CauseBusy,
			events: []string{"started", "ringing user:alice", "ended busy"},
			trace:  []string{"attempts: front is an individual extension -> user:alice", "attempt 1 [user:alice]: busy"},
		}},
		{"prompt", "+34910000007", want{
			codes: []int{100, 480}, outcome: routing.OutcomeRouted, cause: CauseUnavailable,
			events: []string{"started", "ended unavailable"},
			trace: []string{"closed is an individual extension -> prompt:closed",
				"prompt:closed: no prompts are loaded for this account"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newExecutorEnv(t, map[string]legScript{"user:alice": {ring: true, class: failBusy}})
			env.check(env.call(tc.number, "+34600111222"), tc.w)
		})
	}
}
