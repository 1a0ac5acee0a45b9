// Command promptload measures Switchboard with N concurrent calls that each
// hear a recording notice while the call is recorded: the issue 4 target
// "no audible gap (no RTP packet late by more than 20 ms) with at least 300
// such calls on the 2-CPU machine, under 128 KiB per recording call". It is
// run by bench/prompts.sh; figures and the method are in docs/benchmarks.md
// ("Prompts while recording").
//
//	promptload -switchboard bin/switchboard -out /tmp/pl -ladder 100,200,300
//
// For each N of the ladder it starts a fresh `switchboard serve` on
// 127.0.0.1 with an account whose number routes to an extension with
// `recording: always` and `recording_notice: prompt:notice`, where notice is
// a WAV of -prompt length (longer than any call), so that for the whole
// call Switchboard's Player sends the notice to both legs while the
// Recorder writes the stereo WAV. The callee is the account's trunk, a
// sipgo UAS in this process that answers at once. N calls are placed at
// -rate calls/s; every call lasts N/rate + -hold, so all N are up for -hold.
// Both phones of every call send 20 ms PCMA packets (a quiet tone) from
// their own UDP socket, which is what the Recorder records.
//
// Every packet from Switchboard is timestamped by the kernel on arrival
// (SO_TIMESTAMPNS) and checked against the 20 ms schedule of its stream:
// see analyse. The step passes when no packet is late by more than -late,
// none is lost and every call succeeds; the ladder stops at the first step
// that fails (unless -keep-going).
//
// Switchboard is sampled every second: RSS and threads from
// /proc/PID/status, CPU from /proc/PID/stat, calls in progress, goroutines,
// heap in use and goroutine stacks in use from /metrics. Memory per call is
// (median with all N up - idle before the calls) / N. The recordings' total size is read when all N
// calls are up and again at the end of -hold: it must grow by 32,000 bytes
// a second per call (stereo, 16 bit, 8 kHz) while the notice plays.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const number = "+34910000000"

type options struct {
	switchboard string
	out         string
	ladder      []int
	rate        float64
	hold        time.Duration
	prompt      time.Duration
	rtpPorts    string
	lateBy      time.Duration
	keepGoing   bool
	keepRec     bool
	pprof       bool
	dump        int
}

func main() {
	var o options
	var ladder string
	flag.StringVar(&o.switchboard, "switchboard", "bin/switchboard", "the switchboard binary")
	flag.StringVar(&o.out, "out", "", "directory for results, logs and samples (default: a new one in /tmp)")
	flag.StringVar(&ladder, "ladder", "100,200,300,400,500,600,700,800", "numbers of concurrent calls, in order")
	flag.Float64Var(&o.rate, "rate", 100, "calls placed per second")
	flag.DurationVar(&o.hold, "hold", 20*time.Second, "how long all N calls are up together")
	flag.DurationVar(&o.prompt, "prompt", 60*time.Second, "length of the recording notice (longer than any call)")
	flag.StringVar(&o.rtpPorts, "rtp-ports", "12000-19999", "Switchboard's RTP port range")
	flag.DurationVar(&o.lateBy, "late", 20*time.Millisecond, "a packet later than this behind its schedule is late")
	flag.BoolVar(&o.keepGoing, "keep-going", false, "run every step even after one fails")
	flag.BoolVar(&o.keepRec, "keep-recordings", false, "keep the WAV files (N x 32 kB/s)")
	flag.IntVar(&o.dump, "dump", 0, "write the arrivals of this many callers' and callees' legs to legs/*.tsv")
	flag.BoolVar(&o.pprof, "pprof", false, "serve --pprof and save a heap, goroutine and 8 s CPU profile with all calls up")
	flag.Parse()
	for _, f := range strings.Split(ladder, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fatalf("-ladder: %q is not a positive number", f)
		}
		o.ladder = append(o.ladder, n)
	}
	if o.out == "" {
		d, err := os.MkdirTemp("", "promptload.")
		if err != nil {
			fatalf("%v", err)
		}
		o.out = d
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fatalf("%v", err)
	}
	abs, err := filepath.Abs(o.switchboard)
	if err != nil {
		fatalf("%v", err)
	}
	o.switchboard = abs
	maxN := slices.Max(o.ladder)
	if call := time.Duration(float64(maxN)/o.rate*float64(time.Second)) + o.hold; call+5*time.Second > o.prompt {
		fatalf("-prompt %s must outlast the longest call (%s) by 5 s", o.prompt, call)
	}

	// sipgo logs some events (retransmitted responses) to the default logger.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	notice := filepath.Join(o.out, "notice.wav")
	if err := writePrompt(notice, o.prompt); err != nil {
		fatalf("%v", err)
	}
	res, err := os.Create(filepath.Join(o.out, "results.md"))
	if err != nil {
		fatalf("%v", err)
	}
	defer res.Close()
	w := io.MultiWriter(os.Stdout, res)
	fmt.Fprintf(w, "# Prompts while recording, %s UTC\n\n", time.Now().UTC().Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "- %d calls/s, all N up for %s, notice %s, late = more than %s behind schedule; load average at start: %s\n\n",
		int(o.rate), o.hold, o.prompt, o.lateBy, loadavg())
	fmt.Fprintln(w, "| calls | ok | packets to callers / callees | lost | late >"+o.lateBy.String()+" | max lateness ms | max gap ms | gaps >40 ms | RSS idle → N up MiB | RSS/call KiB | heap/call KiB | stacks/call KiB | goroutines/call | Switchboard CPU % | tool CPU % | WAV growth B/s/call |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	var details []string
	for _, n := range o.ladder {
		if ctx.Err() != nil {
			break
		}
		log("step: %d calls", n)
		r, err := runStep(ctx, o, notice, n)
		if err != nil {
			fmt.Fprintf(w, "| %d | step failed: %v |\n", n, err)
			break
		}
		fmt.Fprintln(w, r.row())
		details = append(details, r.detail())
		if !r.pass() && !o.keepGoing {
			break
		}
	}
	fmt.Fprintln(w)
	for _, d := range details {
		fmt.Fprintln(w, d)
	}
	fmt.Fprintf(w, "- load average at the end: %s\n", loadavg())
	log("results: %s", filepath.Join(o.out, "results.md"))
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "promptload: "+format+"\n", args...)
	os.Exit(1)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// writePrompt writes a mono 16-bit 8 kHz WAV of length d that sounds like
// a voice reading: 400 ms syllables of a few harmonics, 100 ms pauses.
func writePrompt(path string, d time.Duration) error {
	const rate = 8000
	n := int(d.Seconds() * rate)
	data := make([]byte, 44+2*n)
	copy(data[0:], "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1) // PCM
	binary.LittleEndian.PutUint16(data[22:], 1) // mono
	binary.LittleEndian.PutUint32(data[24:], rate)
	binary.LittleEndian.PutUint32(data[28:], 2*rate)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*n))
	pitches := []float64{140, 180, 160, 210, 150}
	for i := range n {
		syl := i / (rate / 2) // 500 ms per syllable
		pos := i % (rate / 2)
		var v float64
		if pos < rate*4/10 {
			f := pitches[syl%len(pitches)]
			env := math.Sin(math.Pi * float64(pos) / float64(rate*4/10))
			t := float64(i) / rate
			v = env * 6000 * (math.Sin(2*math.Pi*f*t) + 0.5*math.Sin(4*math.Pi*f*t) + 0.3*math.Sin(6*math.Pi*f*t))
		}
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(int16(v)))
	}
	return os.WriteFile(path, data, 0o644)
}

// freePort returns a port of 127.0.0.1 free for both UDP and TCP now.
func freePort() (int, error) {
	for range 50 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		u.Close()
		if err == nil {
			t.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port")
}

// server is a `switchboard serve` process started by this tool.
type server struct {
	cmd  *exec.Cmd
	pid  int
	url  string
	done chan struct{}
}

func startServer(ctx context.Context, o options, dir string, sipPort, httpPort int) (*server, error) {
	args := []string{"serve", "--db", "sqlite:" + filepath.Join(dir, "sb.db"), "--config", filepath.Join(dir, "config.yaml"),
		"--sip", fmt.Sprintf("127.0.0.1:%d", sipPort), "--http", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--rtp-ports", o.rtpPorts, "--recordings", filepath.Join(dir, "recordings"), "--log-level", "warn",
		"--drain-timeout", "5s"}
	if o.pprof {
		args = append(args, "--pprof")
	}
	logf, err := os.Create(filepath.Join(dir, "switchboard.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.switchboard, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If this tool dies, so does the server it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	for range 200 {
		select {
		case <-s.done:
			return nil, fmt.Errorf("switchboard exited at start (see %s)", logf.Name())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if r, err := http.Get(s.url + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
	s.stop()
	return nil, fmt.Errorf("switchboard not ready after 10 s (see %s)", logf.Name())
}

// stop sends SIGTERM to the process this tool started (by its PID), and
// SIGKILL after 15 s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// stepResult is one step of the ladder.
type stepResult struct {
	n, ok            int
	failures         map[string]int
	callers, callees streamStats
	idle, up, after  sample
	upSamples        int
	cpuSB, cpuTool   float64 // percent of one CPU during the hold
	cpuMachine       float64 // every CPU of the machine, same unit (200 % is all of 2 CPUs)
	wavRate          float64 // bytes/s per call during the hold
	recFiles         int
	recMin, recMax   float64 // seconds of audio in the recordings
	sent, sendErrs   uint64
	clockless        int
	foreign          int
}

func (r *stepResult) pass() bool {
	return r.ok == r.n && r.callers.late == 0 && r.callees.late == 0 && r.callers.lost == 0 && r.callees.lost == 0
}

func (r *stepResult) row() string {
	mib := func(kb int64) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }
	n := float64(r.n)
	return fmt.Sprintf("| %d | %d | %d / %d | %d | %d | %.1f | %.1f | %d | %s → %s | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f |",
		r.n, r.ok, r.callers.packets, r.callees.packets, r.callers.lost+r.callees.lost,
		r.callers.late+r.callees.late, float64(max(r.callers.maxLate, r.callees.maxLate))/1e6,
		float64(max(r.callers.maxGap, r.callees.maxGap))/1e6, r.callers.gapsOver+r.callees.gapsOver,
		mib(r.idle.rssKB), mib(r.up.rssKB), float64(r.up.rssKB-r.idle.rssKB)/n,
		float64(r.up.heap-r.idle.heap)/1024/n, float64(r.up.stack-r.idle.stack)/1024/n, float64(r.up.goroutines-r.idle.goroutines)/n,
		r.cpuSB, r.cpuTool, r.wavRate)
}

func (r *stepResult) detail() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- %d calls: %d ok", r.n, r.ok)
	if len(r.failures) > 0 {
		fmt.Fprintf(&b, " (failures: %v)", r.failures)
	}
	hist := func(st streamStats) string {
		return fmt.Sprintf("≤5 ms %d, ≤10 %d, ≤20 %d, ≤40 %d, >40 %d", st.lateHist[0], st.lateHist[1], st.lateHist[2], st.lateHist[3], st.lateHist[4])
	}
	fmt.Fprintf(&b, "; lateness to callers: %s (%d spurts, %d late, max %.1f ms); to callees: %s (%d spurts, %d late, max %.1f ms); lost %d/%d, duplicate or reordered %d/%d",
		hist(r.callers), r.callers.spurts, r.callers.late, float64(r.callers.maxLate)/1e6,
		hist(r.callees), r.callees.spurts, r.callees.late, float64(r.callees.maxLate)/1e6,
		r.callers.lost, r.callees.lost, r.callers.dups, r.callees.dups)
	fmt.Fprintf(&b, "; Switchboard with %d up (median of %d s): RSS %.1f MiB, heap in use %.1f MiB, stacks %.1f MiB, %d goroutines, %d threads, %d fds; idle: %d goroutines, heap %.1f MiB; after the calls: RSS %.1f MiB, %d goroutines",
		r.n, r.upSamples, float64(r.up.rssKB)/1024, float64(r.up.heap)/1048576, float64(r.up.stack)/1048576, r.up.goroutines, r.up.threads, r.up.fds,
		r.idle.goroutines, float64(r.idle.heap)/1048576, float64(r.after.rssKB)/1024, r.after.goroutines)
	fmt.Fprintf(&b, "; CPU during the hold (%% of one CPU): Switchboard %.0f, promptload %.0f, the whole machine %.0f of %d", r.cpuSB, r.cpuTool, r.cpuMachine, 100*runtime.NumCPU())
	fmt.Fprintf(&b, "; recordings: %d files, %.1f-%.1f s of audio; phones sent %d packets (%d send errors); packets without kernel timestamp %d, from elsewhere %d",
		r.recFiles, r.recMin, r.recMax, r.sent, r.sendErrs, r.clockless, r.foreign)
	return b.String()
}

func runStep(ctx context.Context, o options, notice string, n int) (*stepResult, error) {
	dir := filepath.Join(o.out, fmt.Sprintf("n%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ramp := time.Duration(float64(n) / o.rate * float64(time.Second))
	callLen := ramp + o.hold
	capacity := int(callLen/frame) + 500

	snd := newSender()
	defer snd.close()
	uas, err := newCallee(snd, capacity)
	if err != nil {
		return nil, err
	}
	if err := uas.serve(ctx); err != nil {
		return nil, err
	}
	defer uas.close()
	sipPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	uac, err := newCaller(snd, netip.AddrPortFrom(loopback, uint16(sipPort)), number)
	if err != nil {
		return nil, err
	}
	if err := uac.serve(ctx); err != nil {
		return nil, err
	}
	defer uac.close()
	cfg := fmt.Sprintf(`account: bench
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.1:%d", inbound_from: ["127.0.0.1/32"] }
prompts:
  notice: { file: %q }
extensions:
  out: { destination: "+34600000003", recording: always, recording_notice: "prompt:notice" }
numbers:
  %q: { extension: out }
`, uas.addr.Port(), notice, number)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	sb, err := startServer(ctx, o, dir, sipPort, httpPort)
	if err != nil {
		return nil, err
	}
	defer sb.stop()
	r := &stepResult{n: n, failures: map[string]int{}}

	// Idle: the median of three samples after start-up has settled.
	time.Sleep(3 * time.Second)
	var idle []sample
	for range 3 {
		idle = append(idle, takeSample(sb))
		time.Sleep(time.Second)
	}
	r.idle = medianSample(idle)

	// Per-second samples for the whole step.
	samplesF, err := os.Create(filepath.Join(dir, "samples.tsv"))
	if err != nil {
		return nil, err
	}
	defer samplesF.Close()
	fmt.Fprintln(samplesF, "unix\tactive\tgoroutines\theap_inuse\tstack_inuse\trss_kb\tthreads\tfds\tcpu_ticks")
	var (
		smu     sync.Mutex
		samples []sample
	)
	sctx, scancel := context.WithCancel(ctx)
	swg := sync.WaitGroup{}
	swg.Add(1)
	go func() {
		defer swg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				s := takeSample(sb)
				fmt.Fprintf(samplesF, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", s.at.Unix(), s.active, s.goroutines, s.heap, s.stack, s.rssKB, s.threads, s.fds, s.cpuTicks)
				smu.Lock()
				samples = append(samples, s)
				smu.Unlock()
			}
		}
	}()

	// The calls.
	start := time.Now()
	calls := make([]*outCall, n)
	var wg sync.WaitGroup
	var answered atomic.Int32
	allUp := make(chan struct{})
	for i := range n {
		at := start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
		time.Sleep(time.Until(at))
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls[i] = uac.call(ctx, i, capacity, at.Add(callLen), func() {
				if answered.Add(1) == int32(n) {
					close(allUp)
				}
			})
		}()
	}
	firstEnd := start.Add(callLen)
	holdFrom, holdTo := time.Time{}, firstEnd.Add(-time.Second)
	select {
	case <-allUp:
		holdFrom = time.Now().Add(2 * time.Second)
	case <-time.After(time.Until(firstEnd)):
		log("not every call was answered before the first hangup")
	case <-ctx.Done():
	}
	var w0, w1 int64
	var c0, c1, t0, t1, m0, m1 int64
	var at0, at1 time.Time
	if !holdFrom.IsZero() && holdTo.Sub(holdFrom) > 2*time.Second {
		time.Sleep(time.Until(holdFrom))
		at0, w0, c0, t0, m0 = time.Now(), dirBytes(filepath.Join(dir, "recordings")), cpuTicks(sb.pid), cpuTicks(os.Getpid()), machineTicks()
		if o.pprof {
			saveProfiles(sb, dir)
		}
		time.Sleep(time.Until(holdTo))
		at1, w1, c1, t1, m1 = time.Now(), dirBytes(filepath.Join(dir, "recordings")), cpuTicks(sb.pid), cpuTicks(os.Getpid()), machineTicks()
		secs := at1.Sub(at0).Seconds()
		r.wavRate = float64(w1-w0) / secs / float64(n)
		r.cpuSB = float64(c1-c0) / clkTck / secs * 100
		r.cpuTool = float64(t1-t0) / clkTck / secs * 100
		r.cpuMachine = float64(m1-m0) / clkTck / secs * 100
	}
	wg.Wait()
	// Wait until Switchboard has ended every call (at most 30 s).
	for range 300 {
		if metric(sb.url, "switchboard_calls_active") == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	scancel()
	swg.Wait()
	r.after = takeSample(sb)
	var up []sample
	for _, s := range samples {
		if s.active == int64(n) && !at0.IsZero() && !s.at.Before(at0) && !s.at.After(at1) {
			up = append(up, s)
		}
	}
	r.upSamples = len(up)
	if len(up) > 0 {
		r.up = medianSample(up)
	}
	sb.stop()

	// What the phones received.
	time.Sleep(200 * time.Millisecond)
	for i, c := range calls {
		switch {
		case c == nil:
			r.failures["not placed"]++
		case c.err != nil:
			key := c.err.Error()
			if len(key) > 60 {
				key = key[:60]
			}
			r.failures[key]++
		case c.byeErr != nil:
			r.failures["bye: "+c.byeErr.Error()]++
		default:
			r.ok++
		}
		if c != nil && c.leg != nil {
			c.leg.close()
			if i < o.dump {
				dumpLeg(filepath.Join(dir, "legs", fmt.Sprintf("caller-%d.tsv", i)), c.leg.got)
			}
			r.callers.add(analyse(c.leg.got, o.lateBy))
			r.clockless += c.leg.clockless
			r.foreign += c.leg.foreign
		}
	}
	uas.mu.Lock()
	legs := slices.Clone(uas.legs)
	uas.mu.Unlock()
	for i, l := range legs {
		l.close()
		if i < o.dump {
			dumpLeg(filepath.Join(dir, "legs", fmt.Sprintf("callee-%d.tsv", i)), l.got)
		}
		r.callees.add(analyse(l.got, o.lateBy))
		r.clockless += l.clockless
		r.foreign += l.foreign
	}
	r.sent, r.sendErrs = snd.sent.Load(), snd.errs.Load()

	// The recordings: one per call, as long as the call.
	recDir := filepath.Join(dir, "recordings")
	r.recMin = math.Inf(1)
	_ = filepath.Walk(recDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, ".wav") {
			r.recFiles++
			secs := float64(fi.Size()-44) / 32000
			r.recMin, r.recMax = min(r.recMin, secs), max(r.recMax, secs)
		}
		return nil
	})
	if r.recFiles == 0 {
		r.recMin = 0
	}
	if !o.keepRec {
		_ = os.RemoveAll(recDir)
	}
	return r, nil
}

// dirBytes is the total size of the files under dir.
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

func saveProfiles(sb *server, dir string) {
	for name, q := range map[string]string{"heap.pb.gz": "/debug/pprof/heap?gc=1", "goroutines.txt": "/debug/pprof/goroutine?debug=1", "cpu.pb.gz": "/debug/pprof/profile?seconds=8"} {
		resp, err := http.Get(sb.url + q)
		if err != nil {
			continue
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err == nil {
			_, _ = io.Copy(f, resp.Body)
			f.Close()
		}
		resp.Body.Close()
	}
}

// sample is one reading of the server.
type sample struct {
	at                       time.Time
	active, goroutines, heap int64
	stack                    int64 // goroutine stacks in use
	rssKB, threads, fds      int64
	cpuTicks                 int64
}

func takeSample(sb *server) sample {
	m := metrics(sb.url)
	s := sample{at: time.Now(), active: m["switchboard_calls_active"], goroutines: m["go_goroutines"], heap: m["go_memstats_heap_inuse_bytes"], stack: m["go_memstats_stack_inuse_bytes"]}
	s.rssKB = statusField(sb.pid, "VmRSS")
	s.threads = statusField(sb.pid, "Threads")
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", sb.pid)); err == nil {
		s.fds = int64(len(ents))
	}
	s.cpuTicks = cpuTicks(sb.pid)
	return s
}

// medianSample takes the median of each field separately.
func medianSample(ss []sample) sample {
	med := func(f func(sample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[(len(v)-1)/2]
	}
	return sample{
		at:         ss[len(ss)/2].at,
		active:     med(func(s sample) int64 { return s.active }),
		goroutines: med(func(s sample) int64 { return s.goroutines }),
		heap:       med(func(s sample) int64 { return s.heap }),
		stack:      med(func(s sample) int64 { return s.stack }),
		rssKB:      med(func(s sample) int64 { return s.rssKB }),
		threads:    med(func(s sample) int64 { return s.threads }),
		fds:        med(func(s sample) int64 { return s.fds }),
		cpuTicks:   med(func(s sample) int64 { return s.cpuTicks }),
	}
}

func metrics(url string) map[string]int64 {
	out := map[string]int64{}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && !strings.HasPrefix(line, "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = int64(v)
			}
		}
	}
	return out
}

func metric(url, name string) int64 { return metrics(url)[name] }

// statusField reads a kB or count field of /proc/PID/status.
func statusField(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// clkTck is USER_HZ, the unit of utime and stime (100 on Linux).
const clkTck = 100

// cpuTicks is utime+stime of pid from /proc/PID/stat.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// dumpLeg writes one leg's arrivals: kernel time (Unix ns), sequence
// number, marker bit.
func dumpLeg(path string, got []arrival) {
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	var b strings.Builder
	b.WriteString("unix_ns\tseq\tmarker\n")
	for _, a := range got {
		m := 0
		if a.marker {
			m = 1
		}
		fmt.Fprintf(&b, "%d\t%d\t%d\n", a.t, a.seq, m)
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
}

// machineTicks is the busy time of every CPU (user, nice, system, irq,
// softirq, steal) from /proc/stat.
func machineTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var total int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is counted in user already
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
	}
	return total
}
