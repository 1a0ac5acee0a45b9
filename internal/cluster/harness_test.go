package cluster

// The harness: a cluster of real processes on loopback. TestMain builds
// `switchboard` once; startCluster gives a test a fresh PostgreSQL schema,
// its nodes (each its own SIP and HTTP port, --node-id, --trusted-proxy of
// Kamailio's address, a shared --media-dir) and Kamailio in front of them
// with deploy/kamailio/dispatcher.cfg. Every process is started in a
// process group of its own and stopped by its PID when the test ends.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/node/nodetest"
)

// Addresses on loopback: Kamailio and the nodes on 127.0.0.1 (the nodes
// trust 127.0.0.1 as their proxy), the carrier that calls the account's
// numbers on 127.0.0.2 (its trunk's inbound_from), the trunk's far end on
// 127.0.0.3 and the registered phones on 127.0.0.4.
const (
	proxyIP   = "127.0.0.1"
	carrierIP = "127.0.0.2"
	farEndIP  = "127.0.0.3"
	phoneIP   = "127.0.0.4"
)

// Timers of the front door in these tests (dispatcher.cfg's defines): a
// node silent for frTimer is given up on and the next one tried; nodes
// are pinged every second.
const (
	frTimer    = 1500 * time.Millisecond
	frInvTimer = 8 * time.Second
)

var (
	binary  string // the switchboard binary TestMain built
	repo    string // the repository's root
	kamBin  string
	sippBin string
)

func TestMain(m *testing.M) {
	// The test's own SIP stack (phones, load generator) gives up sooner
	// than RFC 3261's 32 s; the nodes, processes of their own, keep theirs.
	sip.SetTimers(100*time.Millisecond, 400*time.Millisecond, 500*time.Millisecond)
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repo, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "sbcluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "switchboard")
	build := exec.Command("go", "build", "-o", binary, "./cmd/switchboard")
	build.Dir = repo
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: go build ./cmd/switchboard:", err)
		return 1
	}
	return m.Run()
}

// tools returns Kamailio and sipp, failing the test (not skipping it) when
// either is missing: CI installs both (.ci/run).
func tools(t *testing.T) {
	t.Helper()
	var err error
	if kamBin, err = exec.LookPath("kamailio"); err != nil {
		if _, serr := os.Stat("/usr/sbin/kamailio"); serr == nil {
			kamBin, err = "/usr/sbin/kamailio", nil
		}
	}
	if err != nil {
		t.Fatalf("Kamailio is required by the cluster tests: apt-get install kamailio: %v", err)
	}
	if sippBin, err = exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is required by the cluster tests: apt-get install sip-tester: %v", err)
	}
}

var portsMu sync.Mutex
var portsGiven = map[int]bool{}

// freePort returns a loopback port free for UDP and TCP on ip right now,
// not handed out before in this process.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		u.Close()
		if err != nil || portsGiven[p] {
			if l != nil {
				l.Close()
			}
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatal("no free loopback port")
	return 0
}

// proc is a child process in a process group of its own, its output in a
// log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once it has exited (and been reaped)
	err  error
}

func startProc(t *testing.T, name, logPath string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().Format("15:04:05.000"), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process's group (the group it was started in).
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop ends the process: SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

// waitExit waits for the process to exit by itself.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// node is one `switchboard serve`.
type node struct {
	c        *cluster
	id       string
	sipPort  int
	httpPort int
	args     []string
	p        *proc
	starts   int
}

// SIP is the node's SIP address, as it appears in the Contact of its
// responses.
func (n *node) SIP() string { return net.JoinHostPort(proxyIP, strconv.Itoa(n.sipPort)) }

// URL is the node's HTTP base URL.
func (n *node) URL() string { return "http://" + net.JoinHostPort(proxyIP, strconv.Itoa(n.httpPort)) }

// start starts the node's process and waits until it is ready.
func (n *node) start(t *testing.T) {
	t.Helper()
	n.starts++
	n.p = startProc(t, n.id, filepath.Join(n.c.dir, n.id+".log"), binary, n.args...)
	if err := waitReady(n.URL(), n.p, 30*time.Second); err != nil {
		t.Fatalf("node %s (start %d): %v", n.id, n.starts, err)
	}
}

// waitReady polls /readyz until it answers 200.
func waitReady(url string, p *proc, d time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("exited before it was ready: %v", p.err)
		}
		if res, err := client.Get(url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v", d)
}

// cluster is Kamailio in front of the nodes, on one database.
type cluster struct {
	t     *testing.T
	dir   string
	db    string
	media string
	nodes []*node
	kam   *proc
	// Proxy is Kamailio's SIP address: where phones register and the
	// carrier sends its calls.
	Proxy string
}

// clusterOptions are what a test chooses of its cluster.
type clusterOptions struct {
	nodes  int    // default 2
	config string // the account's YAML document, applied by the first node (--config)
	drain  time.Duration
}

// startCluster starts the nodes (the first applies the configuration, the
// others read it from the database) and then Kamailio with a dispatcher
// list of them. Everything stops when the test ends.
func startCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	tools(t)
	if o.nodes == 0 {
		o.nodes = 2
	}
	if o.drain == 0 {
		o.drain = 10 * time.Second
	}
	c := &cluster{t: t, dir: t.TempDir(), db: nodetest.PostgresURL(t)}
	c.media = filepath.Join(c.dir, "media")
	if err := os.MkdirAll(c.media, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(c.dir, "account.yaml")
	if err := os.WriteFile(cfg, []byte(o.config), 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: the logs of a failed test.
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	t.Cleanup(c.stop)
	kamPort := freePort(t, proxyIP)
	c.Proxy = net.JoinHostPort(proxyIP, strconv.Itoa(kamPort))
	var list strings.Builder
	for i := range o.nodes {
		n := &node{c: c, id: fmt.Sprintf("node-%c", 'a'+i), sipPort: freePort(t, proxyIP), httpPort: freePort(t, proxyIP)}
		rtp := 46000 + i*500
		n.args = []string{"serve", "--db", c.db, "--node-id", n.id,
			"--sip", n.SIP(), "--http", net.JoinHostPort(proxyIP, strconv.Itoa(n.httpPort)),
			"--rtp-ports", fmt.Sprintf("%d-%d", rtp, rtp+499), "--media-dir", c.media,
			"--trusted-proxy", proxyIP, "--drain-timeout", o.drain.String(),
			"--secret", "cluster-test-secret-0123456789", "--log-level", "info"}
		if i == 0 && o.config != "" {
			n.args = append(n.args, "--config", cfg)
		}
		c.nodes = append(c.nodes, n)
		fmt.Fprintf(&list, "1 sip:%s 0 0 node=%s\n", n.SIP(), n.id)
		n.start(t)
	}
	dsList := filepath.Join(c.dir, "dispatcher.list")
	if err := os.WriteFile(dsList, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.kam = startProc(t, "kamailio", filepath.Join(c.dir, "kamailio.log"), kamBin,
		"-f", filepath.Join(repo, "deploy", "kamailio", "dispatcher.cfg"), "-DD", "-E",
		"-Y", c.dir, "-P", filepath.Join(c.dir, "kamailio.pid"), "-m", "64", "-M", "8",
		"-A", "LISTEN=udp:"+c.Proxy, "-A", `DS_LIST="`+dsList+`"`,
		"-A", "DS_PING_INTERVAL=1", "-A", "CHILDREN=2",
		"-A", fmt.Sprintf("FR_TIMER=%d", frTimer.Milliseconds()),
		"-A", fmt.Sprintf("FR_INV_TIMER=%d", frInvTimer.Milliseconds()))
	if err := waitUDP(c.Proxy, c.kam, 10*time.Second); err != nil {
		t.Fatalf("kamailio: %v", err)
	}
	return c
}

// waitUDP waits until Kamailio answers an OPTIONS on addr.
func waitUDP(addr string, p *proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("exited: %v", p.err)
		}
		if optionsPing(addr, 200*time.Millisecond) {
			return nil
		}
	}
	return fmt.Errorf("no answer to OPTIONS on %s after %v", addr, d)
}

// optionsPing sends one OPTIONS to addr from a throwaway socket and says
// whether a 200 came back within d.
func optionsPing(addr string, d time.Duration) bool {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	branch := fmt.Sprintf("z9hG4bK%d", time.Now().UnixNano())
	msg := "OPTIONS sip:" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=" + branch + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:probe@" + local + ">;tag=1\r\nTo: <sip:" + addr + ">\r\n" +
		"Call-ID: " + branch + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(msg)); err != nil {
		return false
	}
	_ = conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	return err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200")
}

// stop ends Kamailio and every node still running.
func (c *cluster) stop() {
	if c.kam != nil {
		c.kam.stop(5 * time.Second)
	}
	for _, n := range c.nodes {
		if n.p != nil {
			n.p.stop(15 * time.Second)
		}
	}
}

// node returns the node whose SIP address is addr (nil if none).
func (c *cluster) node(addr string) *node {
	for _, n := range c.nodes {
		if n.SIP() == addr {
			return n
		}
	}
	return nil
}

// dumpLogs prints the end of every process's log.
func (c *cluster) dumpLogs() {
	paths, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	for _, p := range paths {
		c.t.Logf("--- %s (last 60 lines)\n%s", filepath.Base(p), tail(p, 60))
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// ctxFor is a context that ends after d or with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
