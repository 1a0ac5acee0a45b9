package sipserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/registrar"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// The torture messages of RFC 4475 (testdata/torture/rfc4475, the bytes of
// the RFC's appendix with the Request-URI host replaced by {{SERVER}}) and
// RFC 5118 (testdata/torture/rfc5118, written after its section 4, with
// {{CLIENT}} for the sender's address in the top Via).
//
// A want says what RFC 3261 and the RFC's own notes allow the server to do
// with one message: the final status codes it may answer, and whether it
// may stay silent. A datagram that cannot be parsed is dropped by sipgo (its
// transport answers nothing, RFC 3261 §18.3 leaves a 400 a SHOULD), and a
// stream that cannot be framed is closed, so every unparseable request may
// be met with silence; a parseable one with a broken header gets 400.
type want struct {
	codes  []int  // acceptable final codes (empty: none is acceptable)
	silent bool   // no final response is acceptable
	note   string // where the answer departs from the RFC's advice, and why
}

var (
	anyFinal   = want{codes: finalCodes(200, 499)}      // a valid request: any answer but a server error
	badOrDrop  = want{codes: []int{400}, silent: true}  // an invalid request
	dropOnly   = want{silent: true}                     // a response: a UAS answers none
	challenged = want{codes: []int{400, 401, 403, 404}} // a REGISTER for a domain that is not ours
)

func finalCodes(lo, hi int) []int {
	var out []int
	for c := lo; c <= hi; c++ {
		out = append(out, c)
	}
	return out
}

func codes(c ...int) want { return want{codes: c} }

// rfc4475 is what each torture message of RFC 4475 §3 may get. INVITEs and
// REGISTERs name domains that are not the server's: they are refused
// before anything else is read (403, or the registrar's answer).
var rfc4475 = map[string]want{
	// §3.1.1 valid messages
	"wsinv":      {codes: []int{400, 403}, note: "sipgo does not read ';tag = x' (LWS around '=', RFC 3261 §25.1 EQUAL), so the RFC 2543 transaction key it needs (branch without z9hG4bK) has no From tag: 400"},
	"intmeth":    anyFinal, // an unknown method: 405 (or 501)
	"esc01":      anyFinal,
	"escnull":    challenged,
	"esc02":      anyFinal, // RE%47IST%45R is an unknown method, not REGISTER
	"lwsdisp":    anyFinal,
	"longreq":    anyFinal,
	"dblreq":     challenged,
	"semiuri":    anyFinal,
	"transports": anyFinal,
	"mpart01":    anyFinal,
	"unreason":   dropOnly,
	"noreason":   dropOnly,
	// §3.1.2 invalid messages
	"badinv01":   badOrDrop,
	"clerr":      badOrDrop,
	"ncl":        badOrDrop,
	"scalar02":   badOrDrop,
	"scalarlg":   dropOnly,
	"quotbal":    badOrDrop,
	"ltgtruri":   badOrDrop,
	"lwsruri":    badOrDrop,
	"lwsstart":   badOrDrop,
	"trws":       badOrDrop,
	"escruri":    {codes: []int{400, 403}}, // "could choose to be liberal ... ignore the escaped headers" (§3.1.2.11): refused as an unknown caller
	"baddate":    {codes: []int{400, 403}}, // a B2BUA may read past a bad Date (RFC 4475 §3.1.2.12)
	"regbadct":   {codes: []int{400, 401, 403}, silent: true},
	"badaspec":   {codes: []int{200, 400}, silent: true}, // "may be accepted" (§3.1.2.14)
	"baddn":      {codes: []int{200, 400}, silent: true},
	"badvers":    {codes: []int{400, 505}, silent: true},
	"mismatch01": badOrDrop,
	"mismatch02": {codes: []int{400, 405, 501}, silent: true},
	"bigcode":    dropOnly,
	// §3.2 transaction layer
	"badbranch": anyFinal,
	// §3.3 application layer
	"insuf":    badOrDrop,
	"unkscm":   {codes: []int{400, 416}, silent: true},
	"novelsc":  {codes: []int{400, 416}, silent: true},
	"unksm2":   {codes: []int{400, 401, 403}, silent: true},
	"bext01":   {codes: []int{200, 420}},
	"invut":    {codes: []int{403, 415}},
	"regaut01": challenged,
	"multi01":  badOrDrop,
	"mcl01":    badOrDrop,
	"bcast":    dropOnly,
	"zeromf":   {codes: []int{200, 483}},
	"cparam01": challenged,
	"cparam02": challenged,
	"regescrt": {codes: []int{400, 401, 403}},
	"sdp01":    {codes: []int{403, 415}},
	// §3.4 backward compatibility
	"inv2543": {codes: []int{400, 403}, note: "no Contact: RFC 3261 §8.1.1.8 requires one in an INVITE, and the B2BUA needs it to reach the caller in the dialog: 400"},
}

// perNetwork overrides a want for one transport.
var perNetwork = map[string]want{
	// sipgo writes no UDP message over 1300 bytes (sip.UDPMTUSize-200):
	// the 403 to longreq, which repeats its 3 KB of Via and Route, is
	// never sent. RFC 3261 §18.1.1 moves large requests to TCP; nothing
	// there limits a response.
	"longreq/udp": {silent: true, note: "sipgo refuses to send a UDP response over 1300 bytes"},
	// A datagram test: over TCP the INVITE behind the REGISTER has a
	// short body, the stream cannot be framed and sipgo closes it before
	// the REGISTER's answer is written.
	"dblreq/tcp": {codes: challenged.codes, silent: true},
	// No Content-Length: a stream cannot be framed (RFC 3261 §18.3).
	"inv2543/tcp": dropOnly,
}

// rfc5118 is what each IPv6 message of RFC 5118 §4 may get.
var rfc5118 = map[string]want{
	"ipv6-good":                     challenged,
	"ipv6-bad":                      badOrDrop,
	"port-ambiguous":                challenged,
	"port-unambiguous":              challenged,
	"via-received-param-with-delim": codes(481),
	"via-received-param-no-delim":   anyFinal,
	"ipv6-in-sdp":                   codes(403),
	"mult-ip-in-header":             codes(481),
	"mult-ip-in-sdp":                codes(403),
	"ipv4-mapped-ipv6":              codes(403),
	"ipv6-bug-abnf-3-colons":        {codes: finalCodes(200, 499), silent: true}, // lenient or strict, both allowed
	"ipv6-correct-abnf-2-colons":    anyFinal,
}

// wireMsg is one message to send as it is.
type wireMsg struct {
	name   string
	raw    []byte
	callID string
	via    int // the top Via's port, where a response over UDP goes
}

var callIDLine = regexp.MustCompile(`(?im)^(?:call-id|i)[ \t]*:[ \t]*(\S+)`)

// loadWire reads testdata/torture/dir with the placeholders filled in.
func loadWire(t *testing.T, dir, server, client string) []wireMsg {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "torture", dir, "*.sip"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no torture messages in %s: %v", dir, err)
	}
	var out []wireMsg
	seen := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.ReplaceAll(raw, []byte("{{SERVER}}"), []byte(server))
		raw = bytes.ReplaceAll(raw, []byte("{{CLIENT}}"), []byte(client))
		m := wireMsg{name: strings.TrimSuffix(filepath.Base(f), ".sip"), raw: raw, via: viaPort(raw)}
		if c := callIDLine.FindSubmatch(raw); c != nil {
			m.callID = string(c[1])
		}
		if other, dup := seen[m.callID]; dup {
			t.Fatalf("%s and %s share Call-ID %q: their answers could not be told apart", m.name, other, m.callID)
		}
		seen[m.callID] = m.name
		out = append(out, m)
	}
	return out
}

// viaPort is the port of the top Via as sipgo reads it (5060 when the Via
// has none or cannot be read, 5061 for TLS).
func viaPort(raw []byte) int {
	msg, err := sip.ParseMessage(raw)
	if err != nil {
		return 5060
	}
	v := msg.Via()
	if v == nil || v.Port == 0 {
		if v != nil && strings.EqualFold(v.Transport, "TLS") {
			return 5061
		}
		return 5060
	}
	return v.Port
}

// answer is what came back for one message.
type answer struct {
	code   int
	reason string
}

// collector gathers the final responses that arrive, by Call-ID.
type collector struct {
	mu  sync.Mutex
	got map[string]answer
}

func newCollector() *collector { return &collector{got: map[string]answer{}} }

func (c *collector) add(res *sip.Response) {
	if res.StatusCode < 200 || res.CallID() == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := res.CallID().Value()
	if _, ok := c.got[id]; !ok {
		c.got[id] = answer{res.StatusCode, res.Reason}
	}
}

func (c *collector) lookup(id string) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.got[id]
	return a, ok
}

// sendUDP sends every message from a socket on ip bound to the port of its
// top Via (where the server answers a datagram) and collects the answers
// for up to wait.
func sendUDP(t *testing.T, server string, ip string, msgs []wireMsg, wait time.Duration) *collector {
	t.Helper()
	dst, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	socks := map[int]net.PacketConn{}
	var wg sync.WaitGroup
	for _, m := range msgs {
		if socks[m.via] != nil {
			continue
		}
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(m.via)))
		if err != nil {
			t.Fatalf("bind %s:%d for the answers of %s: %v", ip, m.via, m.name, err)
		}
		socks[m.via] = c
		_ = c.SetReadDeadline(time.Now().Add(wait))
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 65535)
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				if msg, err := sip.ParseMessage(buf[:n]); err == nil {
					if res, ok := msg.(*sip.Response); ok {
						col.add(res)
					}
				}
			}
		}()
	}
	for _, m := range msgs {
		if _, err := socks[m.via].WriteTo(m.raw, dst); err != nil {
			t.Errorf("%s: send: %v", m.name, err)
		}
		time.Sleep(time.Millisecond) // keep the burst inside the socket buffers
	}
	wg.Wait()
	for _, c := range socks {
		c.Close()
	}
	return col
}

// sendTCP sends each message on a connection of its own, all at once, and
// collects the answers for up to wait; a connection the server closes
// counts as silence.
func sendTCP(t *testing.T, server string, ip string, msgs []wireMsg, wait time.Duration) *collector {
	t.Helper()
	col := newCollector()
	var wg sync.WaitGroup
	for _, m := range msgs {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
		conn, err := d.Dial("tcp", server)
		if err != nil {
			t.Fatalf("%s: dial: %v", m.name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(wait))
			if _, err := conn.Write(m.raw); err != nil {
				return
			}
			readStream(conn, col.add)
		}()
	}
	wg.Wait()
	return col
}

// readStream reads SIP responses off a stream until it ends or fails.
func readStream(conn net.Conn, each func(*sip.Response)) {
	par := sip.NewParser().NewSIPStream()
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			perr := par.ParseSIPStream(buf[:n], func(msg sip.Message) {
				if res, ok := msg.(*sip.Response); ok {
					each(res)
				}
			})
			if perr != nil && perr != sip.ErrParseSipPartial {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// judge checks each message's answer against what it may get.
func judge(t *testing.T, network string, msgs []wireMsg, wants map[string]want, col *collector) (answered, silent int) {
	t.Helper()
	for _, m := range msgs {
		w, ok := wants[m.name]
		if o, over := perNetwork[m.name+"/"+network]; over {
			w = o
		}
		if !ok {
			t.Errorf("%s: no expectation written down", m.name)
			continue
		}
		a, got := col.lookup(m.callID)
		switch {
		case !got && !w.silent:
			t.Errorf("%s over %s: no answer; want one of %v", m.name, network, w.codes)
		case got && !slices.Contains(w.codes, a.code):
			t.Errorf("%s over %s: %d %q; want %v (silence allowed: %v)", m.name, network, a.code, a.reason, w.codes, w.silent)
		case got && strings.TrimSpace(a.reason) == "":
			t.Errorf("%s over %s: %d without a reason phrase", m.name, network, a.code)
		}
		if w.note != "" {
			t.Logf("%-30s %s: departs from the RFC's advice: %s", m.name, network, w.note)
		}
		if got {
			answered++
			t.Logf("%-30s %s %d %s", m.name, network, a.code, a.reason)
		} else {
			silent++
			t.Logf("%-30s %s (silence)", m.name, network)
		}
	}
	return answered, silent
}

// loopbackIP is an address of 127/8 of this process's own, so that the
// answers to a Via's fixed port (5060, 5070...) reach this test and no
// other.
func loopbackIP() string {
	pid := os.Getpid()
	return fmt.Sprintf("127.77.%d.%d", 1+(pid>>8)%254, 1+pid%254)
}

// TestTortureRFC4475 sends every torture message of RFC 4475 over UDP and
// over TCP: valid requests are answered without a server error, invalid
// ones get 400 or are dropped, responses are dropped; then the server
// still answers OPTIONS and places a call, with no goroutine or descriptor
// left behind.
func TestTortureRFC4475(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		// A server each: the same message over TCP within Timer J of its
		// UDP copy would match the UDP transaction (RFC 3261 §17.2.3 keys
		// on branch, sent-by and method) and be taken for a retransmission.
		// For the same reason messages of the RFC that share a branch,
		// sent-by and method (cparam01 and cparam02, escnull and
		// regescrt) go to servers of their own.
		t.Run(network, func(t *testing.T) {
			var all []wireMsg
			for i, round := range txRounds(loadWire(t, "rfc4475", "{{SERVER}}", "")) {
				w := newWorld(t)
				alice := w.user("alice", "pa", testphone.Behavior{})
				base := snapshot()
				msgs := loadWire(t, "rfc4475", w.h.addr, "")
				msgs = slices.DeleteFunc(msgs, func(m wireMsg) bool { return !slices.Contains(round, m.name) })
				var col *collector
				if network == "udp" {
					col = sendUDP(t, w.h.addr, loopbackIP(), msgs, 2*time.Second)
				} else {
					col = sendTCP(t, w.h.addr, loopbackIP(), msgs, 2*time.Second)
				}
				answered, silent := judge(t, network, msgs, rfc4475, col)
				t.Logf("RFC 4475 over %s, server %d: %d messages, %d answered, %d dropped", network, i+1, len(msgs), answered, silent)
				stillServes(t, w, alice, base)
				all = append(all, msgs...)
			}
			for name := range rfc4475 {
				if !slices.ContainsFunc(all, func(m wireMsg) bool { return m.name == name }) {
					t.Errorf("%s: expected but not in testdata", name)
				}
			}
		})
	}
}

// txRounds splits messages into rounds in which no two would match the
// same server transaction.
func txRounds(msgs []wireMsg) [][]string {
	var rounds [][]string
	var keys []map[string]bool
	for _, m := range msgs {
		key := m.name
		if msg, err := sip.ParseMessage(m.raw); err == nil {
			if req, ok := msg.(*sip.Request); ok && req.Via() != nil {
				branch, _ := req.Via().Params.Get("branch")
				key = fmt.Sprint(branch, req.Via().Host, req.Via().Port, req.Method)
			}
		}
		i := 0
		for i < len(rounds) && keys[i][key] {
			i++
		}
		if i == len(rounds) {
			rounds, keys = append(rounds, nil), append(keys, map[string]bool{})
		}
		rounds[i], keys[i][key] = append(rounds[i], m.name), true
	}
	return rounds
}

// TestTortureRFC5118 sends the IPv6 messages of RFC 5118 over UDP and TCP
// to a server listening on [::1], which still answers OPTIONS afterwards.
func TestTortureRFC5118(t *testing.T) {
	if c, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no IPv6 loopback on the CI machine: %v", err)
		}
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	addr := startIPv6Server(t)
	for _, network := range []string{"udp", "tcp"} {
		// The sender's address goes in the top Via: over UDP the answer
		// goes to the port written there; over TCP it comes back on the
		// connection whatever the Via says.
		var col *collector
		var msgs []wireMsg
		if network == "udp" {
			client, err := net.ListenPacket("udp", "[::1]:0")
			if err != nil {
				t.Fatal(err)
			}
			port := client.LocalAddr().(*net.UDPAddr).Port
			client.Close()
			msgs = loadWire(t, "rfc5118", addr, net.JoinHostPort("::1", strconv.Itoa(port)))
			for i := range msgs {
				msgs[i].via = port
			}
			col = sendUDP(t, addr, "::1", msgs, 2*time.Second)
		} else {
			msgs = loadWire(t, "rfc5118", addr, "[::1]:5060")
			col = sendTCP(t, addr, "::1", msgs, 2*time.Second)
		}
		answered, silent := judge(t, network, msgs, rfc5118, col)
		t.Logf("RFC 5118 over %s on [::1]: %d messages, %d answered, %d dropped", network, len(msgs), answered, silent)
	}
	for _, network := range []string{"udp", "tcp"} {
		if code := options(t, network, addr); code != 200 {
			t.Errorf("OPTIONS over %s to [::1] after the suite: %d", network, code)
		}
	}
}

// startIPv6Server starts the SIP front alone on [::1] (no accounts), for
// the parser and transaction layers.
func startIPv6Server(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "sb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := accounts.New(accounts.Config{Store: st, Log: log})
	if err := dir.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(Config{Accounts: dir, Contacts: st, Log: log, SIPAddr: "[::1]:0",
		Secret: []byte("test-secret-0123456789"), Guard: registrar.GuardConfig{FloodRequests: -1}})
	if err != nil {
		t.Skipf("listen on [::1]: %v", err)
	}
	alloc, err := media.NewPortAllocator(netip.MustParseAddr("::1"), 29000, 29499)
	if err != nil {
		t.Fatal(err)
	}
	engine := call.New(call.Config{UA: srv.DialogUA(), Media: alloc, MediaIP: netip.MustParseAddr("::1"),
		Devices: srv.Devices(), Records: st, Counters: st, Log: log, Recordings: t.TempDir()})
	srv.Serve(engine)
	t.Cleanup(func() {
		dctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
		defer stop()
		srv.Shutdown(dctx)
	})
	return srv.UDPAddr().String()
}

// options sends one OPTIONS and returns the final status (0: none).
func options(t *testing.T, network, addr string) int {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	id := fmt.Sprintf("alive-%s-%d", network, time.Now().UnixNano())
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK%s\r\n"+
		"From: <sip:probe@%s>;tag=p1\r\nTo: <sip:%s>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", addr, strings.ToUpper(network), local, id, local, addr, id)
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return 0
	}
	code, _, err := readResponse(conn, network)
	if err != nil {
		return 0
	}
	return code
}

// resources is what a leak would grow.
type resources struct{ goroutines, fds int } // fds: sockets

// openFiles lists what the descriptors of the process are.
func openFiles() []string {
	fds, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil {
			out = append(out, fd.Name()+"="+l)
		}
	}
	return out
}

// snapshot counts goroutines and sockets (the SQLite pool opens and keeps
// database handles of its own as the load asks, which are no leak).
func snapshot() resources {
	sockets := 0
	for _, f := range openFiles() {
		if strings.Contains(f, "=socket:") {
			sockets++
		}
	}
	return resources{runtime.NumGoroutine(), sockets}
}

// stillServes checks that the server answers OPTIONS over UDP and TCP and
// places a call from the carrier to alice, and that the goroutines and file
// descriptors come back to where they were at base (sipgo's transactions
// end on their timers, shortened in TestMain).
func stillServes(t *testing.T, w *world, alice *testphone.Phone, base resources) {
	t.Helper()
	for _, network := range []string{"udp", "tcp"} {
		if code := options(t, network, w.h.addr); code != 200 {
			t.Fatalf("OPTIONS over %s after the hostile input: %d", network, code)
		}
	}
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatalf("a normal call after the hostile input: %v", err)
	}
	in := incoming(t, alice)
	hangup(t, c)
	waitEnded(t, in, 5*time.Second)
	const slack = 10 // the call's own goroutines winding down, the runtime's
	deadline := time.Now().Add(15 * time.Second)
	for {
		now := snapshot()
		if now.goroutines <= base.goroutines+slack && now.fds <= base.fds+2 {
			t.Logf("goroutines %d -> %d, sockets %d -> %d", base.goroutines, now.goroutines, base.fds, now.fds)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("leak: goroutines %d -> %d, sockets %d -> %d %v\n%s", base.goroutines, now.goroutines, base.fds, now.fds, openFiles(), buf[:n])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
