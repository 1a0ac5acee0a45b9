package sipserver

// Interop tests: SIPp (a SIP implementation that is not sipgo) plays the
// carrier's caller, the carrier or SIP address that Switchboard dials, and a
// registering phone. Each test starts its own server (harness_test.go) and
// its own sipp processes on loopback ports chosen free at run time, and
// checks three views of every call: sipp's exit code (0 = every call of the
// scenario went as written), the call record the server stored, and what
// each sipp side saw on the wire (its -trace_msg message file).
//
// sipp must be installed: apt-get install sip-tester (SIPp 3.6); CI installs
// it. The scenarios are in testdata/sipp at the top of the repository.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// g711aPCAP is the audio the callers play; it ships with the Debian package.
const g711aPCAP = "/usr/share/sip-tester/g711a.pcap"

// sippTimeout bounds one sipp run (sipp's own -timeout is a little shorter).
const sippTimeout = 25 * time.Second

// sippBinary returns the sipp executable, failing the test (not skipping
// it) when it is not installed.
func sippBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp is required by the interop tests and is not installed: "+
			"apt-get install sip-tester (SIPp 3.6 or later): %v", err)
	}
	return p
}

// sippScenario returns the absolute path of a scenario in testdata/sipp
// (or name itself if it is an absolute path).
func sippScenario(t *testing.T, name string) string {
	t.Helper()
	if filepath.IsAbs(name) {
		return name
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "sipp", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	return p
}

var sippPorts struct {
	sync.Mutex
	given map[int]bool
}

// harnessRTPMax is the top of every harness server's RTP range
// (harness_test.go: 20000 + (port%200)*100, 100 ports): sipp's ports are
// taken above it where possible, so that a server allocating RTP ports for
// a call cannot take one that sipp is about to bind.
const harnessRTPMax = 20000 + 200*100

// freeLoopbackPorts returns the first of n consecutive loopback ports that
// are free for UDP and TCP right now and were not handed out before in this
// process (the parallel tests must not pick the same ones).
func freeLoopbackPorts(t *testing.T, n int) int {
	t.Helper()
	sippPorts.Lock()
	defer sippPorts.Unlock()
	if sippPorts.given == nil {
		sippPorts.given = map[int]bool{}
	}
	for try := range 300 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if base+n > 65535 || (base < harnessRTPMax && try < 200) {
			continue
		}
		ok := true
		var held []interface{ Close() error }
		for p := base; p < base+n && ok; p++ {
			if sippPorts.given[p] {
				ok = false
				break
			}
			u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			held = append(held, u)
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		for _, h := range held {
			h.Close()
		}
		if ok {
			for p := base; p < base+n; p++ {
				sippPorts.given[p] = true
			}
			return base
		}
	}
	t.Fatalf("no %d free consecutive loopback ports", n)
	return 0
}

// sippOptions describe one sipp process.
type sippOptions struct {
	scenario  string            // file name in testdata/sipp
	remote    string            // host:port a UAC sends to; "" for a UAS
	ip        string            // -i: the local address (default 127.0.0.1)
	service   string            // -s: the Request-URI user a UAC calls
	keys      map[string]string // -key NAME VALUE: custom [NAME] keywords
	transport string            // -t: u1 (default) or t1
	rtpEcho   bool              // -rtp_echo: send received RTP back
	args      []string          // anything else
}

// sipp is one running sipp process with its logs in a temporary directory.
type sipp struct {
	t         *testing.T
	name      string
	cmd       *exec.Cmd
	port      int // SIP port (-p)
	mediaPort int // RTP port (-mp); the video stream takes mediaPort+2
	transport string
	dir       string
	stdout    bytes.Buffer
	done      chan struct{}
	exit      int    // valid once done is closed; -1 if sipp did not exit by itself
	msgFile   string // -trace_msg: every message sent and received
	errFile   string // -trace_err: unexpected messages, aborted calls
}

// startSipp starts sipp on free loopback ports. A UAS (no remote) is
// listening when startSipp returns. Its logs are printed if the test fails.
func startSipp(ctx context.Context, t *testing.T, name string, o sippOptions) *sipp {
	t.Helper()
	bin := sippBinary(t)
	if o.transport == "" {
		o.transport = "u1"
	}
	if o.ip == "" {
		o.ip = "127.0.0.1"
	}
	s := &sipp{
		t:         t,
		name:      name,
		port:      freeLoopbackPorts(t, 1),
		mediaPort: freeLoopbackPorts(t, 4), // audio RTP/RTCP, video RTP/RTCP
		transport: o.transport,
		dir:       t.TempDir(),
		done:      make(chan struct{}),
	}
	s.msgFile = filepath.Join(s.dir, name+"_messages.log")
	s.errFile = filepath.Join(s.dir, name+"_errors.log")
	args := []string{
		"-sf", sippScenario(t, o.scenario),
		"-i", o.ip,
		"-p", strconv.Itoa(s.port),
		"-mp", strconv.Itoa(s.mediaPort),
		// sipp also opens a UDP control socket on every interface (8888
		// by default); give each process its own so that parallel runs
		// and other sipp users on the machine do not collide.
		"-cp", strconv.Itoa(freeLoopbackPorts(t, 1)),
		"-t", o.transport,
		"-m", "1",
		"-nostdin",
		"-timeout", strconv.Itoa(int((sippTimeout-5*time.Second)/time.Second)) + "s", "-timeout_error",
		"-recv_timeout", "10000",
		"-trace_msg", "-message_file", s.msgFile,
		"-trace_err", "-error_file", s.errFile,
	}
	if o.rtpEcho {
		args = append(args, "-rtp_echo")
	}
	if o.service != "" {
		args = append(args, "-s", o.service)
	}
	for _, k := range slices.Sorted(maps.Keys(o.keys)) {
		args = append(args, "-key", k, o.keys[k])
	}
	args = append(args, o.args...)
	if o.remote != "" {
		args = append(args, o.remote)
	}
	s.cmd = exec.CommandContext(ctx, bin, args...)
	s.cmd.Dir = s.dir // sipp writes stray files into its working directory
	s.cmd.Stdout = &s.stdout
	s.cmd.Stderr = &s.stdout
	s.cmd.WaitDelay = 3 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sipp %s: %v", name, err)
	}
	go func() {
		defer close(s.done)
		err := s.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			s.exit = 0
		case errors.As(err, &ee) && ee.Exited():
			s.exit = ee.ExitCode()
		default:
			s.exit = -1
		}
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			s.dump()
		}
	})
	if o.remote == "" {
		s.waitListening()
	}
	t.Logf("sipp %s: %s", name, strings.Join(s.cmd.Args[1:], " "))
	return s
}

// waitListening waits until sipp has bound its SIP port (read from
// /proc/net; elsewhere a short sleep stands in).
func (s *sipp) waitListening() {
	s.t.Helper()
	table, state := "/proc/net/udp", ""
	if s.transport[0] == 't' {
		table, state = "/proc/net/tcp", "0A" // LISTEN
	}
	if _, err := os.Stat(table); err != nil {
		time.Sleep(500 * time.Millisecond)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := procNetSocket(table, s.port, state); ok {
			return
		}
		select {
		case <-s.done:
			s.t.Fatalf("sipp %s exited (code %d) before listening on %d", s.name, s.exit, s.port)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sipp %s is not listening on %d after 5s", s.name, s.port)
		}
	}
}

// procNetSocket finds the 127.0.0.1 socket bound to port in a /proc/net
// table (in state, if not empty) and returns its receive queue in bytes.
func procNetSocket(table string, port int, state string) (rxQueue int, ok bool) {
	f, err := os.Open(table)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	local := fmt.Sprintf("0100007F:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[1] != local || (state != "" && fields[3] != state) {
			continue
		}
		queues := strings.Split(fields[4], ":") // tx_queue:rx_queue
		if len(queues) == 2 {
			n, _ := strconv.ParseUint(queues[1], 16, 64)
			rxQueue = int(n)
		}
		return rxQueue, true
	}
	return 0, false
}

// wait waits for sipp to exit and returns its exit code.
func (s *sipp) wait() int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(sippTimeout + 5*time.Second):
		s.t.Fatalf("sipp %s did not exit", s.name)
	}
	return s.exit
}

// expectSuccess waits for sipp and fails the test unless every call of its
// scenario succeeded (exit code 0).
func (s *sipp) expectSuccess() {
	s.t.Helper()
	if code := s.wait(); code != 0 {
		s.t.Errorf("sipp %s exited with code %d, want 0 (every call successful)", s.name, code)
	}
}

// dump prints sipp's output and log files.
func (s *sipp) dump() {
	s.t.Logf("=== sipp %s (exit %d): %s", s.name, s.exit, strings.Join(s.cmd.Args, " "))
	s.t.Logf("--- stdout/stderr (with its final screens):\n%s", sippTail(s.stdout.String(), 4000))
	for _, f := range []string{s.errFile, s.msgFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			s.t.Logf("--- %s: %v", filepath.Base(f), err)
			continue
		}
		s.t.Logf("--- %s:\n%s", filepath.Base(f), sippTail(string(b), 12000))
	}
}

func sippTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// sippMessage is one SIP message in a sipp message file.
type sippMessage struct {
	at   time.Time
	sent bool   // sent by sipp (else received)
	text string // the whole message
}

// line returns the start line: "INVITE sip:... SIP/2.0", "SIP/2.0 200 OK".
func (m sippMessage) line() string {
	first, _, _ := strings.Cut(strings.TrimLeft(m.text, "\r\n"), "\n")
	return strings.TrimSpace(first)
}

// header returns the value of the first header called name.
func (m sippMessage) header(name string) string {
	for _, l := range strings.Split(m.text, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

var sippMessageStart = regexp.MustCompile(`(?m)^-{40,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)\r?\n(UDP|TCP) message (received|sent)[^\n]*\n`)

// messages parses sipp's message file (after sipp has exited).
func (s *sipp) messages() []sippMessage {
	s.t.Helper()
	b, err := os.ReadFile(s.msgFile)
	if err != nil {
		s.t.Fatalf("sipp %s message file: %v", s.name, err)
	}
	text := string(b)
	idx := sippMessageStart.FindAllStringSubmatchIndex(text, -1)
	var out []sippMessage
	for i, m := range idx {
		end := len(text)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		ts := strings.Replace(text[m[2]:m[3]], "\t", " ", 1)
		at, _ := time.ParseInLocation("2006-01-02 15:04:05.999999", ts, time.Local)
		out = append(out, sippMessage{
			at:   at,
			sent: text[m[6]:m[7]] == "sent",
			text: strings.TrimLeft(text[m[1]:end], "\r\n"),
		})
	}
	return out
}

// received returns the messages sipp received whose start line begins with
// prefix ("CANCEL ", "SIP/2.0 487").
func (s *sipp) received(prefix string) []sippMessage {
	s.t.Helper()
	var out []sippMessage
	for _, m := range s.messages() {
		if !m.sent && strings.HasPrefix(m.line(), prefix) {
			out = append(out, m)
		}
	}
	return out
}

// sent returns the messages sipp sent whose start line begins with prefix.
func (s *sipp) sent(prefix string) []sippMessage {
	s.t.Helper()
	var out []sippMessage
	for _, m := range s.messages() {
		if m.sent && strings.HasPrefix(m.line(), prefix) {
			out = append(out, m)
		}
	}
	return out
}

// mustReceive returns the first received message starting with prefix.
func (s *sipp) mustReceive(prefix string) sippMessage {
	s.t.Helper()
	ms := s.received(prefix)
	if len(ms) == 0 {
		s.t.Fatalf("sipp %s received no %q", s.name, prefix)
	}
	return ms[0]
}

// uasAddr is the host:port of a UAS, to put in the configuration.
func (s *sipp) uasAddr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// sippContext bounds a whole test's sipp runs.
func sippContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sippTimeout+10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sippOneCall returns the only call record of acme.
func sippOneCall(h *harness) store.CallRecord {
	h.t.Helper()
	recs := h.waitCalls("acme", 1)
	for _, r := range recs {
		h.t.Logf("call record: outcome=%s answered_by=%q cause=%s tags=%q trace:\n\t%s",
			r.Outcome, r.AnsweredBy, r.HangupCause, r.Tags, strings.Join(r.Trace, "\n\t"))
	}
	if len(recs) != 1 {
		h.t.Fatalf("want 1 call record, have %d: %+v", len(recs), recs)
	}
	return recs[0]
}

// sippTraceHas reports whether one line of the record's trace has all parts.
func sippTraceHas(rec store.CallRecord, parts ...string) bool {
	return slices.ContainsFunc(rec.Trace, func(line string) bool {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				return false
			}
		}
		return true
	})
}

// sippCaller are the keywords of the caller scenarios (uac_*.xml).
func sippCaller(number, name string) map[string]string {
	return map[string]string{"caller": number, "caller_name": name}
}

// sippTrunkDoc is an account whose trunk "carrier" accepts calls from sipp on
// 127.0.0.1 and dials out to a sipp UAS at carrierAddr; +34910000000 goes to
// the extension "mobile" (+34600000003 through that trunk); trunkExtra
// and numberExtra are YAML lines added to the trunk and to the number.
func sippTrunkDoc(carrierAddr, trunkExtra, numberExtra string) string {
	return fmt.Sprintf(`account: acme
domain: acme.test
defaults:
  trunk: carrier
trunks:
  carrier:
    address: "sip:%s"
    inbound_from: ["127.0.0.1/32"]
%s
extensions:
  mobile: { type: individual, destination: "+34600000003" }
numbers:
  "+34910000000":
    extension: mobile
%s
`, carrierAddr, trunkExtra, numberExtra)
}

// TestSippBasicCall: a carrier call to a number whose extension dials an
// external number back out through the trunk, with RTP both ways: the
// caller plays G.711 A-law, the callee echoes it, the caller hangs up.
func TestSippBasicCall(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(g711aPCAP); err != nil {
		t.Fatalf("%v: install the Debian package sip-tester, which ships it", err)
	}
	ctx := sippContext(t)
	uas := startSipp(ctx, t, "carrier", sippOptions{scenario: "uas_answer.xml", rtpEcho: true})
	h := startServer(t, sippTrunkDoc(uas.uasAddr(), "",
		`    cnam_prefix: "MAIN "
    tags: [sipp]`))
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_call.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})

	// The caller never reads its RTP socket, so what reaches it piles up
	// in the socket's receive queue: audio that went caller -> Switchboard
	// -> callee (echo) -> Switchboard -> caller.
	var echoed int
	_, err := os.Stat("/proc/net/udp")
	procOK := err == nil
	for running := true; running; {
		n, _ := procNetSocket("/proc/net/udp", uac.mediaPort, "")
		echoed = max(echoed, n)
		select {
		case <-uac.done:
			running = false
		case <-time.After(50 * time.Millisecond):
		}
	}
	uac.expectSuccess()
	uas.expectSuccess()

	rec := sippOneCall(h)
	if rec.Outcome != "routed" || rec.AnsweredBy != "+34600000003" || rec.HangupCause != "caller_bye" {
		t.Errorf("record outcome=%q answered_by=%q cause=%q, want routed, +34600000003, caller_bye",
			rec.Outcome, rec.AnsweredBy, rec.HangupCause)
	}
	if rec.Number != "+34910000000" || rec.Caller != "+34911111111" || rec.CallerName != "MAIN Sipp Caller" {
		t.Errorf("record number=%q caller=%q name=%q", rec.Number, rec.Caller, rec.CallerName)
	}
	if !slices.Contains(rec.Tags, "sipp") {
		t.Errorf("record tags = %q, want sipp", rec.Tags)
	}
	if rec.Answer.IsZero() || rec.Duration < time.Second {
		t.Errorf("record answer=%v duration=%v, want an answered call of about 1.5s", rec.Answer, rec.Duration)
	}

	// The callee was dialled at the external number through the trunk,
	// with the caller's number and the computed caller name.
	inv := uas.mustReceive("INVITE ")
	if want := "INVITE sip:+34600000003@" + uas.uasAddr(); !strings.HasPrefix(inv.line(), want) {
		t.Errorf("callee got %q, want %s", inv.line(), want)
	}
	if from := inv.header("From"); !strings.Contains(from, `"MAIN Sipp Caller"`) || !strings.Contains(from, "sip:+34911111111@") {
		t.Errorf("callee From = %q, want \"MAIN Sipp Caller\" <sip:+34911111111@...>", from)
	}
	if !strings.Contains(inv.text, "PCMA/8000") {
		t.Errorf("callee offer has no PCMA:\n%s", inv.text)
	}
	uas.mustReceive("BYE ")
	ok := uac.mustReceive("SIP/2.0 200")
	if !strings.Contains(ok.text, "m=audio ") {
		t.Errorf("caller's 200 OK has no SDP answer:\n%s", ok.text)
	}
	switch {
	case !procOK:
		t.Logf("cannot read /proc/net/udp: the RTP echo is not checked")
	case echoed == 0:
		t.Errorf("no RTP came back to the caller's port %d (caller -> callee echo -> caller)", uac.mediaPort)
	default:
		t.Logf("the caller's RTP socket queued %d bytes of echoed audio", echoed)
	}
}

// TestSippTrunkAuth: the carrier challenges the first INVITE; Switchboard
// sends it again with the trunk's credentials, and the carrier checks them:
// a proxy challenge (407, the usual one from a carrier; the digest is
// recomputed here, as SIPp 3.6 only verifies Authorization) and a UAS
// challenge (401, verified by SIPp's verifyauth).
func TestSippTrunkAuth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, scenario    string
		challenge, answer string // response line; header with the credentials
		challengeHeader   string
	}{
		{"407", "uas_proxy_auth.xml", "SIP/2.0 407", "Proxy-Authorization", "Proxy-Authenticate"},
		{"401", "uas_www_auth.xml", "SIP/2.0 401", "Authorization", "WWW-Authenticate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := sippContext(t)
			uas := startSipp(ctx, t, "carrier", sippOptions{scenario: tc.scenario, rtpEcho: true})
			// The scenarios expect username acme, password secret.
			h := startServer(t, sippTrunkDoc(uas.uasAddr(), "    username: acme\n    password: secret", ""))
			uac := startSipp(ctx, t, "caller", sippOptions{
				scenario: "uac_call.xml", remote: h.addr, service: "+34910000000",
				keys: sippCaller("+34911111111", "Sipp Caller"),
			})
			uac.expectSuccess()
			uas.expectSuccess()

			rec := sippOneCall(h)
			if rec.Outcome != "routed" || rec.AnsweredBy != "+34600000003" || rec.HangupCause != "caller_bye" {
				t.Errorf("record outcome=%q answered_by=%q cause=%q, want routed, +34600000003, caller_bye",
					rec.Outcome, rec.AnsweredBy, rec.HangupCause)
			}

			invites := uas.received("INVITE ")
			challenges := uas.sent(tc.challenge)
			if len(invites) != 2 || len(challenges) != 1 {
				t.Fatalf("carrier got %d INVITEs and sent %d %q, want 2 and 1", len(invites), len(challenges), tc.challenge)
			}
			if v := invites[0].header(tc.answer); v != "" {
				t.Errorf("first INVITE already has %s %q", tc.answer, v)
			}
			if a, b := invites[0].header("Call-ID"), invites[1].header("Call-ID"); a != b {
				t.Errorf("the authenticated INVITE has another Call-ID: %q then %q", a, b)
			}
			chal := sippDigestParams(challenges[0].header(tc.challengeHeader))
			cred := invites[1].header(tc.answer)
			p := sippDigestParams(cred)
			if p["username"] != "acme" || p["realm"] != "carrier" || p["nonce"] == "" || p["nonce"] != chal["nonce"] {
				t.Errorf("%s %q does not answer the challenge %v as acme", tc.answer, cred, chal)
			}
			if want := sippDigestResponse(p, "INVITE", "secret"); p["response"] != want {
				t.Errorf("%s response %q, want %q for password secret", tc.answer, p["response"], want)
			}
			if len(uas.sent("SIP/2.0 403")) != 0 {
				t.Errorf("carrier rejected the credentials")
			}
		})
	}
}

var sippDigestParam = regexp.MustCompile(`([a-zA-Z-]+)=("([^"]*)"|[^,\s]*)`)

// sippDigestParams parses the parameters of a Digest challenge or
// credentials header.
func sippDigestParams(v string) map[string]string {
	out := map[string]string{}
	for _, m := range sippDigestParam.FindAllStringSubmatch(strings.TrimPrefix(strings.TrimSpace(v), "Digest"), -1) {
		val := m[2]
		if strings.HasPrefix(val, `"`) {
			val = m[3]
		}
		out[strings.ToLower(m[1])] = val
	}
	return out
}

// sippDigestResponse computes the RFC 2617 MD5 response the credentials p
// should carry for method and password (qop auth, or none).
func sippDigestResponse(p map[string]string, method, password string) string {
	h := func(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }
	ha1 := h(p["username"] + ":" + p["realm"] + ":" + password)
	ha2 := h(method + ":" + p["uri"])
	if p["qop"] == "" {
		return h(ha1 + ":" + p["nonce"] + ":" + ha2)
	}
	return h(strings.Join([]string{ha1, p["nonce"], p["nc"], p["cnonce"], p["qop"], ha2}, ":"))
}

// TestSippRegisterPassword: REGISTER with a wrong password is challenged
// again and stores nothing; the right password registers the contact.
func TestSippRegisterPassword(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startServer(t, `account: acme
domain: acme.test
users:
  alice: { extension: "101", password: s3cret }
`)
	contacts := func() []store.Contact {
		cs, err := h.st.Contacts(context.Background(), "acme", "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	wrong := startSipp(ctx, t, "wrong", sippOptions{
		scenario: "register_wrong_password.xml", remote: h.addr, service: "alice",
		keys: map[string]string{"domain": "acme.test"},
	})
	wrong.expectSuccess()
	if n := len(wrong.received("SIP/2.0 401")); n != 2 {
		t.Errorf("wrong password: %d 401s, want 2 (challenge, then challenge again)", n)
	}
	if rs := wrong.received("SIP/2.0 200"); len(rs) > 0 {
		t.Errorf("wrong password registered: %s", rs[0].line())
	}
	regs := wrong.sent("REGISTER ")
	if len(regs) != 2 || !strings.Contains(regs[1].header("Authorization"), `username="alice"`) {
		t.Errorf("wrong password: the second REGISTER should carry alice's credentials: %d REGISTERs", len(regs))
	}
	if cs := contacts(); len(cs) != 0 {
		t.Errorf("contacts after a wrong password: %+v", cs)
	}

	right := startSipp(ctx, t, "right", sippOptions{
		scenario: "register_ok.xml", remote: h.addr, service: "alice",
		keys: map[string]string{"domain": "acme.test"},
		args: []string{"-au", "alice", "-ap", "s3cret"},
	})
	right.expectSuccess()
	ok := right.mustReceive("SIP/2.0 200")
	if c := ok.header("Contact"); !strings.Contains(c, fmt.Sprintf("sip:alice@127.0.0.1:%d", right.port)) {
		t.Errorf("200 OK Contact = %q, want sipp's contact", c)
	}
	cs := contacts()
	if len(cs) != 1 || !strings.HasPrefix(cs[0].URI, fmt.Sprintf("sip:alice@127.0.0.1:%d", right.port)) {
		t.Errorf("contacts after the right password = %+v", cs)
	}
}

// TestSippCallerCancelMultiRing: a multi-ring group rings two SIP addresses
// at once; the caller cancels; both callees get a CANCEL.
func TestSippCallerCancelMultiRing(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	a := startSipp(ctx, t, "member-a", sippOptions{scenario: "uas_ring_cancel.xml"})
	b := startSipp(ctx, t, "member-b", sippOptions{scenario: "uas_ring_cancel.xml"})
	h := startServer(t, fmt.Sprintf(`account: acme
trunks:
  carrier:
    address: "sip:127.0.0.1:9"
    inbound_from: ["127.0.0.1/32"]
extensions:
  team:
    type: group
    distribution: multi-ring
    members: ["sip:a@%s", "sip:b@%s"]
numbers:
  "+34910000000": { extension: team }
`, a.uasAddr(), b.uasAddr()))
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_cancel.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	a.expectSuccess()
	b.expectSuccess()

	rec := sippOneCall(h)
	if rec.Outcome != "routed" || rec.AnsweredBy != "" || rec.HangupCause != "caller_cancel" {
		t.Errorf("record outcome=%q answered_by=%q cause=%q, want routed, nobody, caller_cancel",
			rec.Outcome, rec.AnsweredBy, rec.HangupCause)
	}
	if !sippTraceHas(rec, "caller hung up before an answer") {
		t.Errorf("trace does not say the caller gave up:\n%s", strings.Join(rec.Trace, "\n"))
	}
	for _, m := range []*sipp{a, b} {
		inv := m.mustReceive("INVITE ")
		cancel := m.mustReceive("CANCEL ")
		if inv.header("Call-ID") != cancel.header("Call-ID") {
			t.Errorf("%s: CANCEL for another call", m.name)
		}
		m.mustReceive("ACK ") // of its 487
	}
	uac.mustReceive("SIP/2.0 180")
	uac.mustReceive("SIP/2.0 487")
}

// TestSippNoAnswerSequential: a sequential group with a 1 s timeout; the
// first member rings and is cancelled, the second answers.
func TestSippNoAnswerSequential(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	a := startSipp(ctx, t, "member-a", sippOptions{scenario: "uas_ring_cancel.xml"})
	b := startSipp(ctx, t, "member-b", sippOptions{scenario: "uas_answer.xml", rtpEcho: true})
	memberA, memberB := "sip:a@"+a.uasAddr(), "sip:b@"+b.uasAddr()
	h := startServer(t, fmt.Sprintf(`account: acme
trunks:
  carrier:
    address: "sip:127.0.0.1:9"
    inbound_from: ["127.0.0.1/32"]
extensions:
  team:
    type: group
    distribution: sequential
    timeout: 1s
    members: [%q, %q]
numbers:
  "+34910000000": { extension: team }
`, memberA, memberB))
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_call.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	a.expectSuccess()
	b.expectSuccess()

	rec := sippOneCall(h)
	if rec.Outcome != "routed" || rec.AnsweredBy != memberB || rec.HangupCause != "caller_bye" {
		t.Errorf("record outcome=%q answered_by=%q cause=%q, want routed, %s, caller_bye",
			rec.Outcome, rec.AnsweredBy, rec.HangupCause, memberB)
	}
	if !sippTraceHas(rec, memberA, "no_answer") {
		t.Errorf("trace does not say %s did not answer:\n%s", memberA, strings.Join(rec.Trace, "\n"))
	}
	if wait := rec.Answer.Sub(rec.Start); wait < 900*time.Millisecond {
		t.Errorf("answered %v after the start, want after the first member's 1s timeout", wait)
	}
	inv, cancel := a.mustReceive("INVITE "), a.mustReceive("CANCEL ")
	if d := cancel.at.Sub(inv.at); d < 800*time.Millisecond || d > 3*time.Second {
		t.Errorf("member a was cancelled %v after its INVITE, want about 1s", d)
	}
	if bInv := b.mustReceive("INVITE "); bInv.at.Before(cancel.at.Add(-200 * time.Millisecond)) {
		t.Errorf("member b was rung at %v, before member a's timeout (%v)", bInv.at, cancel.at)
	}
	b.mustReceive("BYE ")
}

// TestSippRejectedCaller: a reject-busy rule turns the caller away with 486
// (over TCP, the other transport).
func TestSippRejectedCaller(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startServer(t, sippTrunkDoc("127.0.0.1:9", "", `    rules:
      - { prefix: "+34888*", weight: 10, action: reject-busy }`))
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_busy.xml", remote: h.addr, service: "+34910000000", transport: "t1",
		keys: sippCaller("+34888000000", "Spammer"),
	})
	uac.expectSuccess()

	rec := sippOneCall(h)
	if rec.Outcome != "rejected" || rec.Caller != "+34888000000" || rec.AnsweredBy != "" {
		t.Errorf("record outcome=%q caller=%q answered_by=%q, want rejected, +34888000000, nobody",
			rec.Outcome, rec.Caller, rec.AnsweredBy)
	}
	if res := uac.mustReceive("SIP/2.0 486"); !strings.Contains(res.header("Via"), "TCP") {
		t.Errorf("486 Via = %q, want the caller's TCP Via", res.header("Via"))
	}
}

// TestSippForwardedNumber: a number with forwarding on goes to its forward
// destination through the trunk.
func TestSippForwardedNumber(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	uas := startSipp(ctx, t, "carrier", sippOptions{scenario: "uas_answer.xml", rtpEcho: true})
	h := startServer(t, sippTrunkDoc(uas.uasAddr(), "",
		`    forward: { enabled: true, destination: "+34600000009" }`))
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_call.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	uas.expectSuccess()

	rec := sippOneCall(h)
	if rec.Outcome != "forwarded" || rec.AnsweredBy != "+34600000009" || rec.HangupCause != "caller_bye" {
		t.Errorf("record outcome=%q answered_by=%q cause=%q, want forwarded, +34600000009, caller_bye",
			rec.Outcome, rec.AnsweredBy, rec.HangupCause)
	}
	if inv := uas.mustReceive("INVITE "); !strings.HasPrefix(inv.line(), "INVITE sip:+34600000009@"+uas.uasAddr()) {
		t.Errorf("carrier got %q, want the forward destination +34600000009", inv.line())
	}
}

// TestSippUnknownSource: a caller that is neither a trunk source nor a
// registered user gets 403 and leaves no call record.
func TestSippUnknownSource(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	h := startServer(t, `account: acme
domain: acme.test
trunks:
  carrier:
    address: "sip:127.0.0.2:5060"
    inbound_from: ["127.0.0.2/32"]
extensions:
  mobile: { type: individual, destination: "+34600000003" }
numbers:
  "+34910000000": { extension: mobile }
`)
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_forbidden.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	uac.mustReceive("SIP/2.0 403")
	if rs := uac.received("SIP/2.0 407"); len(rs) > 0 {
		t.Errorf("an unknown source was challenged instead of refused")
	}
	if recs := h.calls("acme"); len(recs) != 0 {
		t.Errorf("a refused source left call records: %+v", recs)
	}
}

// TestSippDTMFFromPcap: sipp presses 1 in an IVR by playing RFC 4733
// telephone-events from a pcap; the option's extension dials the callee.
func TestSippDTMFFromPcap(t *testing.T) {
	t.Parallel()
	const pcap = "/usr/share/sip-tester/dtmf_2833_1.pcap"
	if _, err := os.Stat(pcap); err != nil {
		t.Fatalf("%v: install the Debian package sip-tester, which ships it", err)
	}
	ctx := sippContext(t)
	uas := startSipp(ctx, t, "carrier", sippOptions{scenario: "uas_answer.xml", rtpEcho: true})
	dir, err := filepath.Abs("../prompt/builtin")
	if err != nil {
		t.Fatal(err)
	}
	h := startServer(t, fmt.Sprintf(`account: acme
domain: acme.test
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:%s", inbound_from: ["127.0.0.1/32"] }
prompts:
  hold: { file: "%s/please-hold.wav" }
extensions:
  mobile: { destination: "+34600000003" }
ivrs:
  menu: { prompt: prompt:hold, options: { "1": mobile }, retries: 2 }
numbers:
  "+34910000000": { extension: menu }
`, uas.uasAddr(), dir))
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_dtmf.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	uas.expectSuccess()
	rec := sippOneCall(h)
	if rec.AnsweredBy != "+34600000003" || !sippTraceHas(rec, "ivr: key 1 -> mobile") {
		t.Errorf("record answered_by=%q trace=%q, want the IVR's option 1 (+34600000003)", rec.AnsweredBy, rec.Trace)
	}
	uas.mustReceive("INVITE sip:+34600000003@")
}

// TestSippMediaBeforeACK: the callee's audio reaches the caller from
// Switchboard's 200 on, before the caller's ACK (which comes 1.5 s late
// here, as when the first ACK is lost), and the call then goes on.
func TestSippMediaBeforeACK(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	callee := newPhone(t, testphone.Config{Name: "pstn", User: "pstn", IP: pstnIP})
	callee.SetBehavior(testphone.Behavior{Play: testphone.Tone(1000)})
	h := startServer(t, sippTrunkDoc(callee.Addr().String(), "", ""))
	start := time.Now()
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_late_ack.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	// Until the ACK leaves (1.5 s after the 200), look at what waits in the
	// caller's RTP socket, which sipp never reads.
	queued := 0
	for time.Since(start) < 1200*time.Millisecond {
		n, _ := procNetSocket("/proc/net/udp", uac.mediaPort, "")
		queued = max(queued, n)
		time.Sleep(20 * time.Millisecond)
	}
	if queued == 0 {
		t.Error("no RTP reached the caller between the 200 and its ACK")
	}
	uac.expectSuccess()
	if rec := sippOneCall(h); rec.AnsweredBy != "+34600000003" || rec.HangupCause != "caller_bye" {
		t.Errorf("record answered_by=%q cause=%q, want +34600000003, caller_bye", rec.AnsweredBy, rec.HangupCause)
	}
}

// TestSippTwoSocketDevice: a device that sends REGISTER from one socket and
// listens on another (its Contact names the second) gets its calls at the
// Contact, not at the REGISTER's source (docs/decisions.md, "Where a
// registered device is reached").
func TestSippTwoSocketDevice(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	phone := startSipp(ctx, t, "phone", sippOptions{scenario: "uas_answer.xml", rtpEcho: true})
	h := startServer(t, `account: acme
domain: acme.test
trunks:
  carrier: { address: "sip:127.0.0.1:9", inbound_from: ["127.0.0.1/32"] }
users:
  alice: { extension: "101", password: s3cret }
numbers:
  "+34910000000": { extension: "user:alice" }
`)
	reg := startSipp(ctx, t, "register", sippOptions{
		scenario: "register_contact.xml", remote: h.addr, service: "alice",
		keys: map[string]string{"domain": "acme.test", "contact_port": strconv.Itoa(phone.port)},
		args: []string{"-au", "alice", "-ap", "s3cret"},
	})
	reg.expectSuccess()
	cs, err := h.st.Contacts(context.Background(), "acme", "alice", time.Now())
	if err != nil || len(cs) != 1 {
		t.Fatalf("contacts: %+v, %v", cs, err)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", reg.port); cs[0].Source != want || cs[0].NAT {
		t.Errorf("binding source %q (NAT %v), want %s and no NAT", cs[0].Source, cs[0].NAT, want)
	}

	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_call.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	phone.expectSuccess()
	inv := phone.mustReceive("INVITE ")
	if want := fmt.Sprintf("INVITE sip:alice@127.0.0.1:%d", phone.port); !strings.HasPrefix(inv.line(), want) {
		t.Errorf("the phone's listening socket got %q, want %s", inv.line(), want)
	}
	if got := reg.received("INVITE "); len(got) != 0 {
		t.Errorf("the REGISTER's socket got an INVITE: %s", got[0].line())
	}
	rec := sippOneCall(h)
	if rec.AnsweredBy != "user:alice" || rec.HangupCause != "caller_bye" {
		t.Errorf("record answered_by=%q cause=%q, want user:alice, caller_bye", rec.AnsweredBy, rec.HangupCause)
	}
}
