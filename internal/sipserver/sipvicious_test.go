package sipserver

// Scanners on the wire (SPEC §9): the real sipvicious tools (svmap, svwar,
// svcrack) against the harness server, and Go loops that compare what known
// and unknown users, extensions and domains are answered, and how fast.
//
// sipvicious sends "User-Agent: friendly-scanner", which the guard drops
// without an answer; the tools have no option to change it, so the
// custom-UA runs go through svWrapper, which patches the default of
// svhelper.makeRequest before running the tool's main. Those runs show
// what a scanner that hides its name learns: nothing either.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
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

	"github.com/switchboard/switchboard/internal/testphone"
)

// svDoc has two users; every scan covers 100-130, in which only 101 and
// 117 exist.
const svDoc = `account: acme
domain: acme.test
users:
  alice: { extension: "101", password: "Tr0ub4dor&3" }
  bob:   { extension: "117", password: "correcthorse" }
`

const (
	svAlicePassword = "Tr0ub4dor&3"
	// svUA is what the custom-UA runs send instead of friendly-scanner: a
	// softphone's.
	svUA = "Linphone/5.2.0 (belle-sip/5.2.0)"
	// svExtensions puts the known extensions first: svwar stops at the first
	// answer it cannot classify, and one that looked like an existing
	// extension would be reported before that.
	svExtensions = "101,117,100-130"
)

// svWrapper runs sipvicious tool argv[1] with User-Agent argv[2], the
// tool's install directory argv[3] first on the module path, and the rest
// as its arguments.
const svWrapper = `import importlib, sys
tool, ua, where = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, where)
from sipvicious.libs import svhelper
d = list(svhelper.makeRequest.__defaults__)
d[d.index('friendly-scanner')] = ua
svhelper.makeRequest.__defaults__ = tuple(d)
sys.argv = [tool] + sys.argv[4:]
sys.exit(importlib.import_module('sipvicious.' + tool).main())
`

// svTool returns the path of a sipvicious tool. Without it the test is
// skipped, except under CI (where .ci/run installs it): there it fails.
func svTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "" {
		t.Skipf("%s not on PATH (apt-get install sipvicious)", name)
	}
	t.Fatalf("%s not on PATH under CI=%s (.ci/run installs sipvicious)", name, os.Getenv("CI"))
	return ""
}

// svRun runs a sipvicious tool for at most limit (then interrupts it, as
// ^C would: it prints what it found) and returns everything it printed. A
// non-empty ua replaces friendly-scanner.
func svRun(t *testing.T, limit time.Duration, ua, tool string, args ...string) string {
	t.Helper()
	path := svTool(t, tool)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	if ua != "" {
		script, err := filepath.EvalSymlinks(path)
		if err != nil {
			t.Fatal(err)
		}
		interp := svInterpreter(t, script)
		argv := append(interp[1:], "-c", svWrapper, tool, ua, filepath.Dir(script))
		cmd = exec.CommandContext(ctx, interp[0], append(argv, args...)...)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() == nil {
		t.Errorf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// svInterpreter reads the #! line of a tool's script.
func svInterpreter(t *testing.T, script string) []string {
	t.Helper()
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	interp := strings.Fields(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || len(interp) == 0 {
		t.Fatalf("%s: no #! line to find its Python", script)
	}
	return interp
}

// svPort is a free local UDP port for one tool run: each run has its own,
// so that no run reads another's late answers (sipvicious binds 5060 by
// default, and the 407s to svwar's INVITEs are retransmitted because its
// ACKs do not match them).
func svPort(t *testing.T) string { return strconv.Itoa(freeUDPPort(t)) }

var (
	svwarFound   = regexp.MustCompile(`extension '([^']*)' (?:exists|probably exists)|\| Extension`)
	svcrackFound = regexp.MustCompile(`The password for|\| Extension`)
	svcrackGuess = regexp.MustCompile(`(?m)^DEBUG:\S+:trying (.*)$`)
)

var svwarVerdict = regexp.MustCompile(`extension '([^']*)' (exists|probably exists)`)

// svwarTold returns the extensions svwar told apart from its own random
// one (a number outside 100-130 that exists nowhere): those it reports
// with a verdict its random probe did not also get.
func svwarTold(out string) []string {
	random := map[string]bool{}
	var ours [][]string
	for _, m := range svwarVerdict.FindAllStringSubmatch(out, -1) {
		if n, err := strconv.Atoi(m[1]); err == nil && n >= 100 && n <= 130 {
			ours = append(ours, m)
		} else {
			random[m[2]] = true
		}
	}
	var told []string
	for _, m := range ours {
		if !random[m[2]] && !slices.Contains(told, m[1]) {
			told = append(told, m[1])
		}
	}
	return told
}

// svwarMethods are the request methods svwar enumerates with.
var svwarMethods = []string{"REGISTER", "INVITE", "OPTIONS", "MESSAGE"}

// svParallel runs fns at once and waits for them.
func svParallel(fns ...func()) {
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	wg.Wait()
}

// svWords writes a password list with the right one at position right
// (1-based) of n.
func svWords(t *testing.T, right, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i == right {
			b.WriteString(svAlicePassword + "\n")
		} else {
			fmt.Fprintf(&b, "wrong%d\n", i)
		}
	}
	p := filepath.Join(t.TempDir(), "words.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSipviciousDefaultUserAgent: sipvicious as shipped is dropped in
// silence: svmap finds no SIP device, svwar has no server to enumerate on
// any method, svcrack gets no challenge.
func TestSipviciousDefaultUserAgent(t *testing.T) {
	h := startServer(t, svDoc)
	attachSMS(t, h, slowRetry, 3*time.Second)
	_, port, _ := net.SplitHostPort(h.addr)
	words := svWords(t, 3, 5)
	runs := []func(){
		func() {
			out := svRun(t, 15*time.Second, "", "svmap", "-P", svPort(t), "-p", port, "127.0.0.1")
			if strings.Contains(out, "127.0.0.1:"+port) || !strings.Contains(out, "found nothing") {
				t.Errorf("svmap found the server:\n%s", out)
			}
		},
		func() {
			out := svRun(t, 20*time.Second, "", "svcrack", "-P", svPort(t), "-p", port, "-u", "101", "--domain", "acme.test",
				"-d", words, "--maximumtime", "3", "127.0.0.1")
			if svcrackFound.MatchString(out) || !strings.Contains(out, "no server response") {
				t.Errorf("svcrack got an answer:\n%s", out)
			}
		},
	}
	for _, m := range svwarMethods {
		runs = append(runs, func() {
			out := svRun(t, 15*time.Second, "", "svwar", "--force", "-m", m, "-P", svPort(t), "-p", port,
				"--domain", "acme.test", "-e", svExtensions, "--maximumtime", "3", "127.0.0.1")
			silent := strings.Contains(out, "No server response") || strings.Contains(out, "socket error: timed out")
			if svwarFound.MatchString(out) || !silent {
				t.Errorf("svwar -m %s got an answer:\n%s", m, out)
			}
		})
	}
	start := time.Now()
	svParallel(runs...)
	t.Logf("svmap, svwar (REGISTER, INVITE, OPTIONS, MESSAGE) and svcrack with User-Agent friendly-scanner: no answer at all (%s)",
		time.Since(start).Round(100*time.Millisecond))
}

// TestSipviciousCustomUserAgent: sipvicious under a softphone's User-Agent
// finds the server (it answers OPTIONS: it is a SIP server) but no
// extension, on any method, in our domain or in one that is not ours.
func TestSipviciousCustomUserAgent(t *testing.T) {
	h := startServer(t, svDoc)
	attachSMS(t, h, slowRetry, 3*time.Second)
	_, port, _ := net.SplitHostPort(h.addr)
	runs := []func(){func() {
		out := svRun(t, 15*time.Second, svUA, "svmap", "-P", svPort(t), "-p", port, "127.0.0.1")
		if !strings.Contains(out, "127.0.0.1:"+port) {
			t.Errorf("svmap with User-Agent %q did not find the server (is the User-Agent patched?):\n%s", svUA, out)
		}
	}}
	for _, m := range svwarMethods {
		for _, domain := range []string{"acme.test", "127.0.0.1"} {
			runs = append(runs, func() {
				out := svRun(t, 20*time.Second, svUA, "svwar", "-v", "--force", "-m", m, "-P", svPort(t), "-p", port,
					"--domain", domain, "-e", svExtensions, "--maximumtime", "3", "127.0.0.1")
				if !strings.Contains(out, "Ok SIP device found") {
					t.Errorf("svwar -m %s --domain %s was not answered:\n%s", m, domain, out)
				}
				if found := svwarTold(out); len(found) > 0 {
					t.Errorf("svwar -m %s --domain %s enumerated %q:\n%s", m, domain, found, out)
				}
			})
		}
	}
	start := time.Now()
	svParallel(runs...)
	t.Logf("User-Agent %q: svmap finds the server; svwar on REGISTER, INVITE, OPTIONS, MESSAGE, in acme.test and 127.0.0.1, extensions %s: nothing (%s)",
		svUA, svExtensions, time.Since(start).Round(100*time.Millisecond))
}

// TestSipviciousCrackLockout: svcrack under a softphone's User-Agent, with
// alice's password 10th in its list, is locked out after 5 wrong guesses
// and never tries it; from then on every method from its address gets 403
// (even the right password), while alice registers from another address.
func TestSipviciousCrackLockout(t *testing.T) {
	h := startServer(t, svDoc)
	attachSMS(t, h, slowRetry, 3*time.Second)
	_, port, _ := net.SplitHostPort(h.addr)
	const right = 10
	out := svRun(t, 6*time.Second, svUA, "svcrack", "-vv", "-P", svPort(t), "-p", port, "-u", "101", "--domain", "acme.test",
		"-d", svWords(t, right, 20), "--maximumtime", "3", "127.0.0.1")
	var guesses []string
	for _, m := range svcrackGuess.FindAllStringSubmatch(out, -1) {
		guesses = append(guesses, m[1])
	}
	if svcrackFound.MatchString(out) {
		t.Errorf("svcrack found alice's password:\n%s", out)
	}
	if slices.Contains(guesses, svAlicePassword) {
		t.Errorf("svcrack got to try the right password (guesses %q)", guesses)
	}
	// The 5th failure locks the source out; its answer is still a
	// challenge, so the 6th guess is sent, and answered 403 unchecked.
	if len(guesses) == 0 || len(guesses) > 6 {
		t.Errorf("svcrack sent %d guesses (%q), want 1 to 6", len(guesses), guesses)
	}
	if cs, err := h.st.Contacts(context.Background(), "acme", "alice", time.Now()); err != nil || len(cs) > 0 {
		t.Errorf("alice's contacts after svcrack: %v, %v", cs, err)
	}
	t.Logf("svcrack: %d guesses sent (%q), locked out after 5; the right password (#%d) never tried", len(guesses), guesses, right)

	// The locked-out address: every method gets 403 or nothing, the right
	// credentials included (a nonce from elsewhere: it gets no challenge).
	other := newSVPeer(t, "127.0.0.2", h.addr)
	chal, ok := other.send(svRequest{method: "REGISTER", user: "101", domain: "acme.test"})
	if !ok || chal.code != 401 {
		t.Fatalf("REGISTER from 127.0.0.2: %v, want a 401 challenge", chal.status())
	}
	locked := newSVPeer(t, "127.0.0.1", h.addr)
	for _, r := range []svRequest{
		{method: "REGISTER", user: "101", domain: "acme.test"},
		{method: "REGISTER", user: "101", domain: "acme.test", auth: svCredentials(chal, "REGISTER", "101", "sip:acme.test", svAlicePassword)},
		{method: "INVITE", user: "101", domain: "acme.test", target: "117"},
		{method: "OPTIONS", user: "101", domain: "acme.test", target: "117"},
		{method: "MESSAGE", user: "101", domain: "acme.test", target: "117"},
	} {
		a, ok := locked.send(r)
		if ok && a.code != 403 {
			t.Errorf("%s from the locked-out address: %s, want 403 or no answer", r.describe(), a.status())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice, err := testphone.New(ctx, testphone.Config{Name: "alice", User: "alice", Password: svAlicePassword, Domain: "acme.test",
		Registrar: h.addr, IP: netip.MustParseAddr("127.0.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if code, err := alice.Register(ctx, time.Minute); code != 200 {
		t.Errorf("alice registering from 127.0.0.3 during the lockout of 127.0.0.1: %d %v", code, err)
	}
}

// svPeer sends hand-made SIP requests over UDP from one address.
type svPeer struct {
	t    *testing.T
	conn *net.UDPConn
	srv  *net.UDPAddr
}

func newSVPeer(t *testing.T, ip, server string) *svPeer {
	t.Helper()
	srv, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &svPeer{t: t, conn: conn, srv: srv}
}

// svRequest is one request as a scanner sends it: From user@domain (and To
// the same for REGISTER), the Request-URI sip:target@domain otherwise.
type svRequest struct {
	method, user, domain, target string
	auth                         string // an Authorization or Proxy-Authorization header line
}

func (r svRequest) describe() string {
	s := fmt.Sprintf("%s from %s@%s", r.method, r.user, r.domain)
	if r.target != "" {
		s += " to " + r.target
	}
	if r.auth != "" {
		s += " with credentials"
	}
	return s
}

func (r svRequest) uri() string {
	if r.method == "REGISTER" {
		return "sip:" + r.domain
	}
	return "sip:" + r.target + "@" + r.domain
}

func svRandom() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// svAnswer is a final response.
type svAnswer struct {
	code    int
	reason  string
	headers [][2]string // in order, names lower-cased
	body    string
	raw     string
}

func (a svAnswer) status() string {
	if a.code == 0 {
		return "no answer"
	}
	return fmt.Sprintf("%d %s", a.code, a.reason)
}

func (a svAnswer) header(name string) string {
	for _, h := range a.headers {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

// send sends r and returns its final response (acknowledged if it answers
// an INVITE); ok is false if none came within 2 s.
func (p *svPeer) send(r svRequest) (svAnswer, bool) {
	a, _, ok := p.timed(r)
	return a, ok
}

// timed is send, with the time from the request to its final response.
func (p *svPeer) timed(r svRequest) (svAnswer, time.Duration, bool) {
	p.t.Helper()
	local := p.conn.LocalAddr().String()
	branch, callID, tag := "z9hG4bK-"+svRandom(), svRandom(), svRandom()
	to := fmt.Sprintf("<sip:%s@%s>", r.user, r.domain)
	if r.method != "REGISTER" {
		to = fmt.Sprintf("<sip:%s@%s>", r.target, r.domain)
	}
	var body, ctype string
	switch r.method {
	case "INVITE":
		ctype = "application/sdp"
		body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	case "MESSAGE":
		ctype, body = "text/plain", "hello"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", r.method, r.uri())
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\n", local, branch)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: \"%s\" <sip:%s@%s>;tag=%s\r\n", r.user, r.user, r.domain, tag)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	fmt.Fprintf(&b, "CSeq: 1 %s\r\n", r.method)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\n", r.user, local)
	fmt.Fprintf(&b, "User-Agent: %s\r\n", svUA)
	if r.method == "REGISTER" {
		b.WriteString("Expires: 60\r\n")
	}
	if r.auth != "" {
		b.WriteString(r.auth + "\r\n")
	}
	if ctype != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", ctype)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)

	start := time.Now()
	if _, err := p.conn.WriteToUDP([]byte(b.String()), p.srv); err != nil {
		p.t.Fatal(err)
	}
	buf := make([]byte, 65535)
	deadline := start.Add(2 * time.Second)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return svAnswer{}, 0, false
		}
		elapsed := time.Since(start)
		a, ok := svParse(string(buf[:n]))
		if !ok || a.header("call-id") != callID || a.code < 200 {
			continue // a provisional, or a late answer to an earlier request
		}
		if r.method == "INVITE" {
			ack := fmt.Sprintf("ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nMax-Forwards: 70\r\n"+
				"From: \"%s\" <sip:%s@%s>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
				r.uri(), local, branch, r.user, r.user, r.domain, tag, a.header("to"), callID)
			_, _ = p.conn.WriteToUDP([]byte(ack), p.srv)
		}
		return a, elapsed, true
	}
}

// svParse parses a response; ok is false for anything else.
func svParse(msg string) (svAnswer, bool) {
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	status := strings.SplitN(lines[0], " ", 3)
	if len(status) < 2 || status[0] != "SIP/2.0" {
		return svAnswer{}, false
	}
	code, err := strconv.Atoi(status[1])
	if err != nil {
		return svAnswer{}, false
	}
	a := svAnswer{code: code, body: body, raw: msg}
	if len(status) == 3 {
		a.reason = status[2]
	}
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		a.headers = append(a.headers, [2]string{strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)})
	}
	return a, true
}

// svCredentials answers a challenge as username with password.
func svCredentials(chal svAnswer, method, username, uri, password string) string {
	name, value := "Authorization", chal.header("www-authenticate")
	if chal.code == 407 {
		name, value = "Proxy-Authorization", chal.header("proxy-authenticate")
	}
	c := sippDigestParams(value)
	p := map[string]string{"username": username, "realm": c["realm"], "nonce": c["nonce"], "uri": uri,
		"qop": "auth", "nc": "00000001", "cnonce": svRandom()}
	return fmt.Sprintf(`%s: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s"`,
		name, p["username"], p["realm"], p["nonce"], uri, sippDigestResponse(p, method, password), p["nc"], p["cnonce"])
}

var (
	svMaskParam = regexp.MustCompile(`\b(tag|branch|received|rport|nonce|opaque)=("[^"]*"|[^;,\s>]*)`)
	svAddress   = regexp.MustCompile(`^(?:"[^"]*"\s*)?<[^>]*>`)
)

// shape is what a scanner could tell answers apart by, with what differs
// from request to request masked: tags, branches, nonces, the Call-ID, the
// Date, and the echo of r's own From, To and domain.
func (a svAnswer) shape(r svRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s\n", a.code, a.reason)
	for _, h := range a.headers {
		name, v := h[0], h[1]
		switch name {
		case "call-id", "date":
			v = "*"
		case "from", "to", "contact":
			v = svAddress.ReplaceAllString(v, "ADDRESS")
		}
		v = svMaskParam.ReplaceAllString(v, "$1=*")
		v = strings.ReplaceAll(v, `realm="`+r.domain+`"`, `realm="DOMAIN"`)
		fmt.Fprintf(&b, "%s: %s\n", name, v)
	}
	b.WriteString(a.body)
	return b.String()
}

// svPair is two requests a scanner must not be able to tell apart by
// their answers.
type svPair struct {
	name         string
	known, other svRequest
	// password, if set, answers each request's challenge (wrongly for a
	// known user) and the answers to that are compared.
	password string
}

// TestScannerSameAnswers: known and unknown users, extensions and domains
// get the same answers, byte for byte but for what each request's own
// values make differ, on REGISTER, INVITE, OPTIONS and MESSAGE, with and
// without (wrong) credentials.
func TestScannerSameAnswers(t *testing.T) {
	h := startServer(t, svDoc)
	attachSMS(t, h, slowRetry, 3*time.Second)
	const dom, evil = "acme.test", "evil.test"
	pairs := []svPair{
		{name: "REGISTER extension", known: svRequest{method: "REGISTER", user: "101", domain: dom}, other: svRequest{method: "REGISTER", user: "130", domain: dom}},
		{name: "REGISTER user name", known: svRequest{method: "REGISTER", user: "alice", domain: dom}, other: svRequest{method: "REGISTER", user: "mallory", domain: dom}},
		{name: "REGISTER extension, wrong password", password: "guess", known: svRequest{method: "REGISTER", user: "101", domain: dom}, other: svRequest{method: "REGISTER", user: "130", domain: dom}},
		{name: "INVITE caller", known: svRequest{method: "INVITE", user: "101", domain: dom, target: "117"}, other: svRequest{method: "INVITE", user: "130", domain: dom, target: "117"}},
		{name: "INVITE callee", known: svRequest{method: "INVITE", user: "130", domain: dom, target: "117"}, other: svRequest{method: "INVITE", user: "130", domain: dom, target: "125"}},
		{name: "INVITE caller, wrong password", password: "guess", known: svRequest{method: "INVITE", user: "101", domain: dom, target: "117"}, other: svRequest{method: "INVITE", user: "130", domain: dom, target: "117"}},
		{name: "OPTIONS target", known: svRequest{method: "OPTIONS", user: "130", domain: dom, target: "101"}, other: svRequest{method: "OPTIONS", user: "130", domain: dom, target: "130"}},
		{name: "OPTIONS sender", known: svRequest{method: "OPTIONS", user: "101", domain: dom, target: "101"}, other: svRequest{method: "OPTIONS", user: "130", domain: dom, target: "101"}},
		{name: "MESSAGE sender", known: svRequest{method: "MESSAGE", user: "101", domain: dom, target: "117"}, other: svRequest{method: "MESSAGE", user: "130", domain: dom, target: "117"}},
		{name: "MESSAGE recipient", known: svRequest{method: "MESSAGE", user: "130", domain: dom, target: "117"}, other: svRequest{method: "MESSAGE", user: "130", domain: dom, target: "125"}},
		{name: "MESSAGE sender, wrong password", password: "guess", known: svRequest{method: "MESSAGE", user: "101", domain: dom, target: "117"}, other: svRequest{method: "MESSAGE", user: "130", domain: dom, target: "117"}},
		{name: "REGISTER domain", known: svRequest{method: "REGISTER", user: "101", domain: dom}, other: svRequest{method: "REGISTER", user: "101", domain: evil}},
		{name: "INVITE domain", known: svRequest{method: "INVITE", user: "101", domain: dom, target: "117"}, other: svRequest{method: "INVITE", user: "101", domain: evil, target: "117"}},
		{name: "OPTIONS domain", known: svRequest{method: "OPTIONS", user: "101", domain: dom, target: "101"}, other: svRequest{method: "OPTIONS", user: "101", domain: evil, target: "101"}},
		{name: "MESSAGE domain", known: svRequest{method: "MESSAGE", user: "101", domain: dom, target: "117"}, other: svRequest{method: "MESSAGE", user: "101", domain: evil, target: "117"}},
	}
	for i, pr := range pairs {
		t.Run(pr.name, func(t *testing.T) {
			// An address of its own per pair: the wrong passwords stay
			// under the lockout's 5.
			peer := newSVPeer(t, fmt.Sprintf("127.0.3.%d", i+1), h.addr)
			answer := func(r svRequest) svAnswer {
				a, ok := peer.send(r)
				if ok && pr.password != "" && (a.code == 401 || a.code == 407) {
					r.auth = svCredentials(a, r.method, r.user, r.uri(), pr.password)
					a, ok = peer.send(r)
				}
				if !ok {
					t.Fatalf("%s: no answer", r.describe())
				}
				return a
			}
			known, other := answer(pr.known), answer(pr.other)
			if ks, us := known.shape(pr.known), other.shape(pr.other); ks != us {
				t.Errorf("a scanner tells them apart:\n%s:\n%s\n%s:\n%s", pr.known.describe(), known.raw, pr.other.describe(), other.raw)
			}
			t.Logf("%s: %s; %s: %s", pr.known.describe(), known.status(), pr.other.describe(), other.status())
		})
	}
}

// TestScannerTiming: the answers to known and unknown users take the same
// time: the medians of interleaved REGISTERs and INVITEs, without and with
// a wrong password, differ by less than the noise.
func TestScannerTiming(t *testing.T) {
	h := startServer(t, svDoc)
	const n = 60
	cases := []struct {
		name         string
		known, other svRequest
		password     string
	}{
		{name: "REGISTER challenge", known: svRequest{method: "REGISTER", user: "101", domain: "acme.test"}, other: svRequest{method: "REGISTER", user: "130", domain: "acme.test"}},
		{name: "REGISTER wrong password", password: "guess", known: svRequest{method: "REGISTER", user: "101", domain: "acme.test"}, other: svRequest{method: "REGISTER", user: "130", domain: "acme.test"}},
		{name: "INVITE challenge", known: svRequest{method: "INVITE", user: "101", domain: "acme.test", target: "117"}, other: svRequest{method: "INVITE", user: "130", domain: "acme.test", target: "125"}},
		{name: "INVITE wrong password", password: "guess", known: svRequest{method: "INVITE", user: "101", domain: "acme.test", target: "117"}, other: svRequest{method: "INVITE", user: "130", domain: "acme.test", target: "117"}},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Wrong passwords come from a new address every 2 rounds (4
			// failures), so that none is locked out.
			peers := map[int]*svPeer{}
			rounds := 0
			peer := func() *svPeer {
				k := 0
				if c.password != "" {
					k = rounds / 2
				}
				if peers[k] == nil {
					peers[k] = newSVPeer(t, fmt.Sprintf("127.0.%d.%d", 10+ci, k+1), h.addr)
				}
				return peers[k]
			}
			// The challenges to answer are fetched before the clock runs.
			var chal [2]svAnswer
			if c.password != "" {
				for i, r := range []svRequest{c.known, c.other} {
					a, ok := newSVPeer(t, "127.0.9.1", h.addr).send(r)
					if !ok {
						t.Fatalf("%s: no challenge", r.describe())
					}
					chal[i] = a
				}
			}
			var codes [2]int // the last answers' codes, known and unknown
			measure := func(i int, r svRequest) time.Duration {
				if c.password != "" {
					r.auth = svCredentials(chal[i], r.method, r.user, r.uri(), c.password)
				}
				a, d, ok := peer().timed(r)
				if !ok {
					t.Fatalf("%s: no answer", r.describe())
				}
				codes[i] = a.code
				return d
			}
			var ok bool
			for attempt := 1; attempt <= 3 && !ok; attempt++ {
				var known, other []time.Duration
				for round := range n {
					// Alternate which goes first, so that neither is always
					// the one after a pause.
					if round%2 == 0 {
						known = append(known, measure(0, c.known))
						other = append(other, measure(1, c.other))
					} else {
						other = append(other, measure(1, c.other))
						known = append(known, measure(0, c.known))
					}
					rounds++
				}
				if codes[0] != codes[1] {
					t.Fatalf("%s answered %d, %s %d", c.known.describe(), codes[0], c.other.describe(), codes[1])
				}
				mk, mo := svMedian(known), svMedian(other)
				diff := (mk - mo).Abs()
				ok = diff < 2*time.Millisecond && (diff < 200*time.Microsecond || diff < min(mk, mo)/5)
				t.Logf("attempt %d (answers %d): median %v known, %v unknown (difference %v, %.0f%%) over %d each",
					attempt, codes[0], mk.Round(time.Microsecond), mo.Round(time.Microsecond), diff.Round(time.Microsecond),
					100*float64(diff)/float64(min(mk, mo)), n)
			}
			if !ok {
				t.Errorf("known and unknown users are answered at different speeds in 3 attempts out of 3")
			}
		})
	}
}

func svMedian(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
