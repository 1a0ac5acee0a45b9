package cluster

// The load of the node-loss and rolling-restart tests: a carrier that
// places a steady rate of short calls through Kamailio (a sipgo UAC on
// carrierIP, no RTP: signalling is what moves between nodes), each from a
// caller number of its own so its call record can be found, and a sipp
// callee on farEndIP that the number's extension dials through the trunk.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// loadCall is what the carrier saw of one call.
type loadCall struct {
	n        int
	caller   string
	start    time.Time // INVITE sent
	answered time.Time // 200 received (zero: never)
	node     string    // the node that answered: the Contact of its 200
	byeSent  time.Time
	end      time.Time // BYE answered, or the call given up
	status   int       // final response to the INVITE
	byeCode  int       // response to the BYE
	err      error
}

func (c *loadCall) ok() bool { return c.err == nil }

// carrier places the calls.
type carrier struct {
	t      *testing.T
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	conn   net.PacketConn
	dialog *sipgo.DialogUA
	addr   string
	proxy  string // where the INVITEs go (Kamailio)
	number string // the number called
	hold   time.Duration

	mu    sync.Mutex
	calls []*loadCall
	wg    sync.WaitGroup
	stop  chan struct{}
	done  chan struct{}
}

// newCarrier starts the carrier's SIP stack on carrierIP.
func newCarrier(t *testing.T, proxy, number string, hold time.Duration) *carrier {
	t.Helper()
	conn, err := net.ListenPacket("udp", net.JoinHostPort(carrierIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().String()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("cluster-carrier"), sipgo.WithUserAgentHostname(carrierIP))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(carrierIP), sipgo.WithClientPort(p), sipgo.WithClientConnectionAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	// A node never hangs up these calls; if one does, it is answered.
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	go func() { _ = srv.ServeUDP(conn) }()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil {
			c.TryClose()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("carrier: udp listener not ready")
		}
		time.Sleep(time.Millisecond)
	}
	c := &carrier{t: t, ua: ua, srv: srv, conn: conn, addr: addr, proxy: proxy, number: number, hold: hold,
		dialog: &sipgo.DialogUA{Client: cli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "carrier", Host: carrierIP, Port: p}}}}
	t.Cleanup(func() {
		c.halt()
		ua.Close()
		conn.Close()
	})
	return c
}

// run places rate calls a second until halt.
func (c *carrier) run(rate int) {
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			lc := &loadCall{n: n, caller: fmt.Sprintf("+3461%07d", n)}
			c.mu.Lock()
			c.calls = append(c.calls, lc)
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.place(lc)
			}()
		}
	}()
}

// halt stops placing calls and waits (bounded) for those under way.
func (c *carrier) halt() {
	if c.stop == nil {
		return
	}
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	ch := make(chan struct{})
	go func() { c.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(frInvTimer + 15*time.Second):
		c.t.Errorf("carrier: calls still under way %v after the load stopped", frInvTimer+15*time.Second)
	}
}

// snapshot returns the calls placed so far (their fields are final once
// halt has returned).
func (c *carrier) snapshot() []*loadCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*loadCall, len(c.calls))
	for i, lc := range c.calls {
		cp := *lc
		out[i] = &cp
	}
	return out
}

// set changes a call's fields under the carrier's lock (snapshot reads
// them while the calls go on).
func (c *carrier) set(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
}

const offerSDP = "v=0\r\no=carrier 1 1 IN IP4 " + carrierIP + "\r\ns=-\r\nc=IN IP4 " + carrierIP + "\r\nt=0 0\r\n" +
	"m=audio 9 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"

// place makes one call: INVITE through the proxy, ACK, hold, BYE.
func (c *carrier) place(lc *loadCall) {
	fail := func(err error) {
		c.set(func() { lc.err, lc.end = err, time.Now() })
	}
	host, port, _ := net.SplitHostPort(c.proxy)
	uri := sip.Uri{Scheme: "sip", User: c.number, Host: host}
	uri.Port, _ = strconv.Atoi(port)
	req := sip.NewRequest(sip.INVITE, uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: lc.caller, Host: carrierIP}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(12))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: c.number, Host: host}, Params: sip.NewParams()})
	callID := sip.CallIDHeader(fmt.Sprintf("load-%d-%d@%s", lc.n, time.Now().UnixNano(), carrierIP))
	req.AppendHeader(&callID)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(offerSDP))

	c.set(func() { lc.start = time.Now() })
	ctx, cancel := context.WithTimeout(context.Background(), frInvTimer+5*time.Second)
	defer cancel()
	d, err := c.dialog.WriteInvite(ctx, req)
	if err != nil {
		fail(fmt.Errorf("invite: %w", err))
		return
	}
	defer d.Close()
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{})
	status := 0
	if res := d.InviteResponse; res != nil {
		status = res.StatusCode
	}
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		status = de.Res.StatusCode
	}
	c.set(func() { lc.status = status })
	if err != nil {
		fail(fmt.Errorf("invite: %w", err))
		return
	}
	nodeAddr := ""
	if ct := d.InviteResponse.Contact(); ct != nil {
		nodeAddr = net.JoinHostPort(ct.Address.Host, strconv.Itoa(ct.Address.Port))
	}
	c.set(func() { lc.answered, lc.node = time.Now(), nodeAddr })
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	if err := d.Ack(actx); err != nil {
		fail(fmt.Errorf("ack: %w", err))
		return
	}
	select {
	case <-time.After(c.hold):
	case <-c.stop: // the load is over: hang up the call still held
	}
	c.set(func() { lc.byeSent = time.Now() })
	bctx, bcancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer bcancel()
	if err := d.Bye(bctx); err != nil {
		var de sipgo.ErrDialogResponse
		code := 0
		if errors.As(err, &de) && de.Res != nil {
			code = de.Res.StatusCode
		}
		c.set(func() { lc.byeCode = code })
		fail(fmt.Errorf("bye: %w", err))
		return
	}
	c.set(func() { lc.byeCode, lc.end = 200, time.Now() })
}

// summary counts a list of calls for the test's log.
func summary(calls []*loadCall) string {
	var ok, failed int
	byNode := map[string]int{}
	for _, c := range calls {
		if c.ok() {
			ok++
		} else {
			failed++
		}
		if c.node != "" {
			byNode[c.node]++
		}
	}
	var nodes []string
	for n, k := range byNode {
		nodes = append(nodes, fmt.Sprintf("%s:%d", n, k))
	}
	sort.Strings(nodes)
	return fmt.Sprintf("%d calls, %d ok, %d failed; answered by %s", len(calls), ok, failed, strings.Join(nodes, " "))
}

// farEnd is the trunk's far end: a sipp callee that answers every call and
// waits for its BYE.
type farEnd struct {
	addr string
	p    *proc
}

func startFarEnd(t *testing.T, dir string) *farEnd {
	t.Helper()
	tools(t)
	port := freePort(t, farEndIP)
	cp := freePort(t, farEndIP)
	mp := freePort(t, farEndIP)
	p := startProc(t, "sipp-uas", filepath.Join(dir, "sipp-uas.log"), sippBin,
		"-sf", filepath.Join(repo, "bench", "sipp", "uas.xml"), "-i", farEndIP, "-p", strconv.Itoa(port),
		"-cp", strconv.Itoa(cp), "-mp", strconv.Itoa(mp), "-key", "sdp_port", "9",
		"-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "sipp-uas.err"))
	t.Cleanup(func() { p.stop(3 * time.Second) })
	f := &farEnd{addr: net.JoinHostPort(farEndIP, strconv.Itoa(port)), p: p}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p.exited() {
			t.Fatalf("sipp callee exited: %v\n%s", p.err, tail(p.log, 20))
		}
		// Bound means listening: the port is no longer free.
		if c, err := net.ListenPacket("udp", f.addr); err != nil {
			break
		} else {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("sipp callee not listening after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f
}
