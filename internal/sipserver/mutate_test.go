package sipserver

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

// hostile builds a request with a Via asking for rport (so the answer over
// UDP comes back to the sending socket) and the given extra header lines,
// body and Content-Length ("" for the body's own length).
func hostile(method, id, from, target, extra string, body []byte, cl string) []byte {
	if cl == "" {
		cl = fmt.Sprint(len(body))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s:5060;rport;branch=z9hG4bK-%s\r\n"+
		"From: <sip:+34911222333@%s>;tag=h-%s\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n"+
		"Contact: <sip:+34911222333@%s:5060>\r\nMax-Forwards: 70\r\n%s",
		method, target, from, id, from, id, target, id, method, from, extra)
	if len(body) > 0 && !strings.Contains(extra, "Content-Type") {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %s\r\n\r\n", cl)
	b.Write(body)
	return b.Bytes()
}

// hostileCase is one shape of hostile input and what it may get.
type hostileCase struct {
	name string
	ip   string // where it comes from: loopbackIP() or the trunk's address
	udp  []byte // nil: not sent over UDP (too large for a datagram)
	tcp  []byte // nil: not sent over TCP
	want want
}

var (
	refusedOrDropped = want{codes: append(finalCodes(200, 299), finalCodes(400, 499)...), silent: true}
	callRefused      = want{codes: append(finalCodes(400, 499), finalCodes(600, 699)...)}
)

func sdp(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// hostileCases are the shapes of issue 14: huge headers and bodies, lying
// Content-Lengths, NUL bytes, invalid UTF-8, deep folding, and INVITEs
// from the trunk with SDP that is not.
func hostileCases(server, network string) []hostileCase {
	opt := func(id, extra string, body []byte, cl string) []byte {
		return hostile("OPTIONS", id+"-"+network, "127.0.0.1", "sip:"+server, extra, body, cl)
	}
	trunkInvite := func(id string, body []byte) []byte {
		return hostile("INVITE", id, carrierIP.String(), "sip:+34910000001@"+server, "", body, "")
	}
	both := func(name string, msg []byte, w want) hostileCase {
		return hostileCase{name: name, ip: loopbackIP(), udp: msg, tcp: msg, want: w}
	}
	goodSDP := func(extra ...string) []byte {
		return sdp(append([]string{"v=0", "o=- 1 1 IN IP4 127.0.0.2", "s=-", "c=IN IP4 127.0.0.2", "t=0 0"}, extra...)...)
	}
	var manyHeaders, fold strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&manyHeaders, "%c:%d\r\n", 'a'+i%26, i%10)
	}
	fold.WriteString("X-Fold: start\r\n")
	for range 5000 {
		fold.WriteString(" more\r\n")
	}
	var fmts strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&fmts, " %d", i%128)
	}
	cases := []hostileCase{
		{name: "header-63k", ip: loopbackIP(), udp: opt("h63k", "X-Big: "+strings.Repeat("a", 63<<10)+"\r\n", nil, ""), want: refusedOrDropped},
		{name: "header-64k", ip: loopbackIP(), tcp: opt("h64k", "X-Big: "+strings.Repeat("a", 64<<10)+"\r\n", nil, ""), want: refusedOrDropped},
		both("headers-10000", opt("h10000", manyHeaders.String(), nil, ""), refusedOrDropped),
		{name: "body-60k", ip: loopbackIP(), udp: opt("b60k", "Content-Type: text/plain\r\n", bytes.Repeat([]byte("b"), 60000), ""), want: refusedOrDropped},
		{name: "body-1m", ip: loopbackIP(), tcp: opt("b1m", "Content-Type: text/plain\r\n", bytes.Repeat([]byte("b"), 1<<20), ""), want: refusedOrDropped},
		both("cl-larger", opt("cllarger", "Content-Type: text/plain\r\n", []byte("short"), "500"), refusedOrDropped),
		both("cl-smaller", opt("clsmaller", "Content-Type: text/plain\r\n", []byte("this body is longer than it says"), "4"), refusedOrDropped),
		both("cl-negative", opt("clneg", "Content-Type: text/plain\r\n", []byte("x"), "-1"), refusedOrDropped),
		both("cl-nonnumeric", opt("clnan", "Content-Type: text/plain\r\n", []byte("x"), "abc"), refusedOrDropped),
		both("cl-overflow", opt("clover", "Content-Type: text/plain\r\n", []byte("x"), "99999999999999999999999"), refusedOrDropped),
		both("cl-huge", opt("clhuge", "Content-Type: text/plain\r\n", []byte("x"), "2147483648"), refusedOrDropped),
		both("nul-startline", bytes.Replace(opt("nulstart", "", nil, ""), []byte("sip:"), []byte("sip:a\x00b@"), 1), refusedOrDropped),
		both("nul-header", opt("nulhdr", "X-Nul: a\x00b\x00\r\n", nil, ""), refusedOrDropped),
		both("nul-body", opt("nulbody", "Content-Type: text/plain\r\n", []byte("a\x00\x00\x00b"), ""), refusedOrDropped),
		both("nul-only", bytes.Repeat([]byte{0}, 1000), refusedOrDropped),
		both("utf8-invalid", bytes.Replace(opt("utf8", "User-Agent: \xc3\x28\xff\r\nSubject: \xed\xa0\x80\r\n", []byte("\xfe\xff\xc0\xaf"), ""),
			[]byte("From: <"), []byte("From: \"\xff\xfe\xfd\" <"), 1), refusedOrDropped),
		both("fold-5000", opt("fold", fold.String(), nil, ""), refusedOrDropped),
		{name: "sdp-garbage", ip: carrierIP.String(), udp: trunkInvite("sdpgarbage-u", []byte("v=0\r\nthis is not sdp\r\n")),
			tcp: trunkInvite("sdpgarbage-t", []byte("v=0\r\nthis is not sdp\r\n")), want: callRefused},
		{name: "sdp-binary", ip: carrierIP.String(), udp: trunkInvite("sdpbin-u", []byte("\x00\xff\x01v=\x00\r\n\r\n\r\nm=\xff")),
			tcp: trunkInvite("sdpbin-t", []byte("\x00\xff\x01v=\x00\r\n\r\n\r\nm=\xff")), want: callRefused},
		{name: "sdp-3000-formats", ip: carrierIP.String(), udp: trunkInvite("sdpfmt-u", goodSDP("m=audio 4000 RTP/AVP"+fmts.String())),
			tcp: trunkInvite("sdpfmt-t", goodSDP("m=audio 4000 RTP/AVP"+fmts.String())), want: callRefused},
		{name: "sdp-bad-address", ip: carrierIP.String(), udp: trunkInvite("sdpaddr-u", sdp("v=0", "o=- 1 1 IN IP4 999.1.1.1", "s=-", "c=IN IP4 999.1.1.1", "t=0 0", "m=audio 4000 RTP/AVP 0")),
			tcp: trunkInvite("sdpaddr-t", sdp("v=0", "o=- 1 1 IN IP4 999.1.1.1", "s=-", "c=IN IP4 999.1.1.1", "t=0 0", "m=audio 4000 RTP/AVP 0")), want: callRefused},
		{name: "sdp-port-overflow", ip: carrierIP.String(), udp: trunkInvite("sdpport-u", goodSDP("m=audio 99999999999999999999 RTP/AVP 0")),
			tcp: trunkInvite("sdpport-t", goodSDP("m=audio -4000 RTP/AVP 0")), want: callRefused},
		{name: "sdp-no-media", ip: carrierIP.String(), udp: trunkInvite("sdpnom-u", goodSDP()),
			tcp: trunkInvite("sdpnom-t", goodSDP("a="+strings.Repeat("x", 20000))), want: callRefused},
		{name: "sdp-rtpmap-junk", ip: carrierIP.String(), udp: trunkInvite("sdpmap-u", goodSDP("m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:0", "a=rtpmap:x PCMU/abc", "a=fmtp:101 0-\xff", "a=ptime:-20")),
			tcp: trunkInvite("sdpmap-t", goodSDP("m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/0", "a=rtpmap:8 PCMA/99999999999", "a=ptime:999999999")), want: callRefused},
	}
	return cases
}

// TestHostileShapes sends each hostile shape over UDP and TCP: the server
// answers without a server error or stays silent where it may, and
// afterwards it answers OPTIONS and places a call, with no goroutine or
// descriptor left behind.
func TestHostileShapes(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	// A broken offer the server takes after all must not leave a call up.
	alice.SetBehavior(testphone.Behavior{Mode: testphone.Reject, Code: 486})
	base := snapshot()
	for _, network := range []string{"udp", "tcp"} {
		cases := hostileCases(w.h.addr, network)
		byIP := map[string][]wireMsg{}
		wants := map[string]want{}
		for _, c := range cases {
			raw := c.udp
			if network == "tcp" {
				raw = c.tcp
			}
			if raw == nil {
				continue
			}
			id := ""
			if m := callIDLine.FindSubmatch(raw); m != nil {
				id = string(m[1])
			}
			byIP[c.ip] = append(byIP[c.ip], wireMsg{name: c.name, raw: raw, callID: id})
			wants[c.name] = c.want
		}
		n := 0
		for ip, msgs := range byIP {
			var col *collector
			if network == "udp" {
				col = sendUDP(t, w.h.addr, ip, msgs, 2*time.Second)
			} else {
				col = sendTCP(t, w.h.addr, ip, msgs, 2*time.Second)
			}
			judge(t, network, msgs, wants, col)
			n += len(msgs)
		}
		t.Logf("hostile shapes over %s: %d messages", network, n)
	}
	alice.SetBehavior(testphone.Behavior{})
	stillServes(t, w, alice, base)
}

// splitInvite is a valid INVITE from an unknown caller (answered 403) with
// a folded header, so that a split can fall between a line and its
// continuation; id is fixed-width.
func splitInvite(server, local, id string) []byte {
	return []byte(fmt.Sprintf("INVITE sip:+34910000001@%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-split-%s\r\n"+
		"From: \"Split\r\n Caller\" <sip:split@elsewhere.example>;tag=s%s\r\nTo: <sip:+34910000001@%s>\r\n"+
		"Call-ID: split-%s\r\nCSeq: 1 INVITE\r\nContact: <sip:split@%s>\r\nMax-Forwards: 70\r\n"+
		"Subject: a subject\r\n\tfolded with a tab\r\n  and spaces\r\nContent-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=-\r\n",
		server, local, id, id, server, id, local))
}

// TestHostileTCPSplits writes one valid INVITE over TCP a byte at a time,
// and then in two writes split at every offset, each on a connection of
// its own: every one is answered (403, an unknown caller), and the server
// still serves afterwards.
func TestHostileTCPSplits(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	base := snapshot()
	exchange := func(id string, write func(net.Conn, []byte) error) int {
		conn, err := net.DialTimeout("tcp", w.h.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		msg := splitInvite(w.h.addr, conn.LocalAddr().String(), id)
		if err := write(conn, msg); err != nil {
			t.Errorf("%s: write: %v", id, err)
			return 0
		}
		code, _, err := readResponse(conn, "tcp")
		if err != nil {
			return 0
		}
		return code
	}
	perByte := exchange("bytes", func(c net.Conn, msg []byte) error {
		for i := range msg {
			if _, err := c.Write(msg[i : i+1]); err != nil {
				return err
			}
		}
		return nil
	})
	if perByte != 403 {
		t.Errorf("INVITE written a byte at a time: %d, want 403", perByte)
	}
	size := len(splitInvite(w.h.addr, "127.0.0.1:65535", "0000"))
	bad := 0
	for off := 1; off < size; off++ {
		code := exchange(fmt.Sprintf("%04d", off), func(c net.Conn, msg []byte) error {
			off := min(off, len(msg)-1)
			if _, err := c.Write(msg[:off]); err != nil {
				return err
			}
			time.Sleep(200 * time.Microsecond) // two segments, not one
			_, err := c.Write(msg[off:])
			return err
		})
		if code != 403 {
			bad++
			if bad <= 5 {
				t.Errorf("INVITE split at byte %d of %d: %d, want 403", off, size, code)
			}
		}
	}
	t.Logf("one INVITE of %d bytes: a byte per write answered %d; split in two at %d offsets: %d not answered 403", size, perByte, size-1, bad)
	stillServes(t, w, alice, base)
}

// mutationSeed is fixed so that a failure replays: go test -run
// TestMutation -v prints it with the counts.
const mutationSeed = 0x5b14_0001

// mutate applies 1 to 4 bounded random mutations to a copy of seed.
func mutate(r *rand.Rand, seed []byte) []byte {
	m := bytes.Clone(seed)
	num := regexp.MustCompile(`(?i)(content-length|cseq|max-forwards|expires)[ \t]*:[ \t]*(-?[0-9]+)`)
	for range 1 + r.IntN(4) {
		if len(m) == 0 {
			m = append(m, 'x')
		}
		switch r.IntN(9) {
		case 0: // flip bytes
			for range 1 + r.IntN(8) {
				m[r.IntN(len(m))] ^= byte(1 << r.IntN(8))
			}
		case 1: // insert a run of random bytes
			i, run := r.IntN(len(m)+1), make([]byte, 1+r.IntN(64))
			for j := range run {
				run[j] = byte(r.IntN(256))
			}
			m = slices.Insert(m, i, run...)
		case 2: // delete a run
			i := r.IntN(len(m))
			m = slices.Delete(m, i, min(len(m), i+1+r.IntN(64)))
		case 3: // duplicate a header line
			lines := bytes.Split(m, crlf)
			if len(lines) > 2 {
				i := 1 + r.IntN(len(lines)-1)
				lines = slices.Insert(lines, i, lines[i])
				m = bytes.Join(lines, crlf)
			}
		case 4: // truncate
			m = m[:r.IntN(len(m))]
		case 5: // CRLF games: bare LF, bare CR, doubled, removed
			games := [][2]string{{"\r\n", "\n"}, {"\r\n", "\r"}, {"\r\n", "\r\n\r\n"}, {"\r\n", ""}, {"\r\n", "\r\n "}}
			g := games[r.IntN(len(games))]
			if idx := bytes.Index(m[r.IntN(len(m)):], []byte(g[0])); idx >= 0 {
				at := len(m) - len(m[r.IntN(len(m)):]) + idx
				at = min(at, len(m))
				m = append(m[:at:at], append([]byte(g[1]), m[min(len(m), at+len(g[0])):]...)...)
			}
		case 6: // bump a number
			locs := num.FindAllSubmatchIndex(m, -1)
			if len(locs) > 0 {
				l := locs[r.IntN(len(locs))]
				vals := []string{"0", "-1", "1", "4294967296", "99999999999999999999", "2147483647", "2147483648", fmt.Sprint(r.IntN(70000))}
				m = append(m[:l[4]:l[4]], append([]byte(vals[r.IntN(len(vals))]), m[l[5]:]...)...)
			}
		case 7: // swap the order of two lines
			lines := bytes.Split(m, crlf)
			if len(lines) > 3 {
				i, j := 1+r.IntN(len(lines)-2), 1+r.IntN(len(lines)-2)
				lines[i], lines[j] = lines[j], lines[i]
				m = bytes.Join(lines, crlf)
			}
		case 8: // splice in a piece of SIP syntax
			bits := []string{";", ",", "<", ">", "\"", "\\", ":", "@", "%", "%00", " ", "\t", "=", "[", "]", "sip:", ";tag=", ";branch=z9hG4bK", "\x00", "\xff"}
			i := r.IntN(len(m) + 1)
			m = slices.Insert(m, i, []byte(bits[r.IntN(len(bits))])...)
		}
	}
	return m
}

// TestMutationWire sends a few thousand mutants of real INVITE, REGISTER,
// MESSAGE, REFER and INFO requests (testdata/mutate) over UDP and TCP,
// from a fixed seed: the server never crashes, answers OPTIONS afterwards,
// leaves no goroutine or socket behind and still places a call.
func TestMutationWire(t *testing.T) {
	const udpCount, tcpCount = 2000, 1000
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	alice.SetBehavior(testphone.Behavior{Mode: testphone.Reject, Code: 486})
	base := snapshot()
	files, _ := filepath.Glob("testdata/mutate/*.sip")
	if len(files) < 5 {
		t.Fatalf("seeds: %v", files)
	}
	r := rand.New(rand.NewPCG(mutationSeed, uint64(len(files))))
	t.Logf("mutation seed %#x, %d seeds, %d mutants over UDP, %d over TCP", mutationSeed, len(files), udpCount, tcpCount)
	start := time.Now()

	// Not from the trunk's address: the mutated REGISTERs fail digest
	// and would lock it out (trunks are never exempt from lockout).
	udp, err := net.ListenPacket("udp", loopbackIP()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	seeds := make([][]byte, len(files))
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds[i] = bytes.ReplaceAll(raw, []byte("{{SERVER}}"), []byte(w.h.addr))
	}
	answers := 0
	done := make(chan struct{})
	go func() { // drain the answers so the socket never backs up
		defer close(done)
		buf := make([]byte, 65535)
		for {
			_ = udp.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			answers++
		}
	}()
	dst, _ := net.ResolveUDPAddr("udp", w.h.addr)
	local := []byte(udp.LocalAddr().String())
	for i := range udpCount {
		seed := bytes.ReplaceAll(seeds[i%len(seeds)], []byte("{{CLIENT}}"), local)
		seed = bytes.ReplaceAll(seed, []byte("-seed-"), []byte(fmt.Sprintf("-u%d-", i)))
		if _, err := udp.WriteTo(mutate(r, seed), dst); err != nil && !strings.Contains(err.Error(), "too long") {
			t.Fatalf("mutant %d: %v", i, err)
		}
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	<-done
	t.Logf("UDP: %d mutants sent, %d answers read", udpCount, answers)

	// TCP: mutants on a few connections at a time; one the server closes
	// (a framing error) is replaced.
	closed := 0
	var conn net.Conn
	for i := range tcpCount {
		if conn == nil {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(loopbackIP())}, Timeout: 2 * time.Second}
			if conn, err = d.Dial("tcp", w.h.addr); err != nil {
				t.Fatalf("mutant %d: dial: %v", i, err)
			}
			go func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }(conn)
		}
		seed := bytes.ReplaceAll(seeds[i%len(seeds)], []byte("{{CLIENT}}"), []byte(conn.LocalAddr().String()))
		seed = bytes.ReplaceAll(seed, []byte("-seed-"), []byte(fmt.Sprintf("-t%d-", i)))
		_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write(mutate(r, seed)); err != nil || i%20 == 19 {
			if err != nil {
				closed++
			}
			conn.Close()
			conn = nil
		}
	}
	if conn != nil {
		conn.Close()
	}
	t.Logf("TCP: %d mutants sent, %d writes met a connection the server had closed; %s in all", tcpCount, closed, time.Since(start).Round(time.Millisecond))
	alice.SetBehavior(testphone.Behavior{})
	stillServes(t, w, alice, base)
}
