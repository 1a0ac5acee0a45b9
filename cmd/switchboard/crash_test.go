package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// The carrier's caller of TestKill9CallCount: each call comes from its own
// number (+34611000 and sipp's call number), is answered, held for a
// second and hung up.
const crashUAC = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="caller: answered, held 1 s, BYE">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:+34611000[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:+34611000[call_number]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
      a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:+34611000[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      [routes]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="1000"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:+34611000[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      [routes]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
`

// The carrier's callee: rings, answers at once, waits for the BYE.
const crashUAS = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="callee: answers, waits for BYE">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
      a=sendrecv

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="500"/>
</scenario>
`

// crashSipp runs sipp with a scenario given as text; its message file
// (-trace_msg) is in dir.
func crashSipp(t *testing.T, dir, name, scenario string, args ...string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp is required (apt-get install sip-tester): %v", err)
	}
	sf := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(sf, []byte(scenario), 0o600); err != nil {
		t.Fatal(err)
	}
	msgs := filepath.Join(dir, name+"_messages.log")
	args = append([]string{"-sf", sf, "-nostdin", "-trace_msg", "-message_file", msgs,
		"-cp", strconv.Itoa(freeUDPPort(t, "127.0.0.1"))}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir // sipp writes stray files into its working directory
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, msgs, &out
}

// freeUDPPort returns a UDP port free on ip right now.
func freeUDPPort(t *testing.T, ip string) int {
	t.Helper()
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// sippCall is what one call of the caller's message file shows.
type sippCall struct {
	invite    time.Time // the first INVITE sent
	responded bool      // the server answered the INVITE, even if only 100
	codes     []string  // the INVITE's responses, in order
	first     time.Time // the first response received
	taken     time.Time // the first response other than 100 received
	bye       time.Time // the BYE sent, if any
	byeOK     time.Time // the 200 to the BYE received, if any
}

var (
	sippMsgStart = regexp.MustCompile(`(?m)^-{40,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)\r?\n(?:UDP|TCP) message (received|sent)[^\n]*\n`)
	sippFromUser = regexp.MustCompile(`(?mi)^From:[^\n]*<sip:(\+34611000\d+)@`)
	sippCSeq     = regexp.MustCompile(`(?mi)^CSeq:\s*\d+\s+(\w+)`)
)

// sippCalls reads a caller's message file, by caller number.
func sippCalls(t *testing.T, file string) map[string]*sippCall {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	calls := map[string]*sippCall{}
	idx := sippMsgStart.FindAllStringSubmatchIndex(text, -1)
	for i, m := range idx {
		end := len(text)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05.999999", strings.Replace(text[m[2]:m[3]], "\t", " ", 1), time.Local)
		if err != nil {
			t.Fatalf("sipp message file: %v", err)
		}
		msg := strings.TrimLeft(text[m[1]:end], "\r\n")
		sent := text[m[4]:m[5]] == "sent"
		from, cseq := sippFromUser.FindStringSubmatch(msg), sippCSeq.FindStringSubmatch(msg)
		if from == nil || cseq == nil {
			continue
		}
		c := calls[from[1]]
		if c == nil {
			c = &sippCall{}
			calls[from[1]] = c
		}
		response := strings.HasPrefix(msg, "SIP/2.0 ")
		switch {
		case sent && cseq[1] == "INVITE" && c.invite.IsZero():
			c.invite = at
		case !sent && response && cseq[1] == "INVITE":
			if !c.responded {
				c.first = at
			}
			c.responded = true
			c.codes = append(c.codes, msg[len("SIP/2.0 "):len("SIP/2.0 ")+3])
			if c.taken.IsZero() && !strings.HasPrefix(msg, "SIP/2.0 100") {
				c.taken = at
			}
		case sent && cseq[1] == "BYE" && c.bye.IsZero():
			c.bye = at
		case !sent && response && cseq[1] == "BYE" && strings.HasPrefix(msg, "SIP/2.0 200"):
			c.byeOK = at
		}
	}
	return calls
}

// slack bounds the writer's delay: a second on a quiet machine
// (docs/security.md has a run's figures), three here so that a CI machine
// running other packages' tests beside this one does not fail it.
const slack = 3 * time.Second

// TestKill9CallCount (issue 14 item 6): a server taking 50 calls a second
// from a carrier, each answered by the carrier's callee and held a second,
// is killed with -9 2.5 s in. Restarted, it has closed every call left
// open with cause crashed and its start time kept, and the records are the
// calls the caller placed: one for every call the server took on (rang or
// answered), none for a call that was not placed. A call the server had
// answered only with a 100 Trying (sipgo's own) may or may not have its
// record: it was in the server's socket, waiting for the engine, or in the
// writer's batch of the moment. Every call that ended more than slack
// before the kill has its end.
func TestKill9CallCount(t *testing.T) {
	rtp := map[string]string{"sqlite": "43000-43999", "postgres": "44000-44999"}
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir() // one database after the other: the load is bounded to one server

			uasPort := freeUDPPort(t, "127.0.0.1")
			crashSipp(t, dir, "callee", crashUAS, "-i", "127.0.0.1", "-p", strconv.Itoa(uasPort),
				"-mp", strconv.Itoa(freeUDPPort(t, "127.0.0.1")))
			cfg := filepath.Join(dir, "acme.yaml")
			doc := fmt.Sprintf(`account: acme
domain: acme.test
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.1:%d", inbound_from: ["127.0.0.2/32"] }
extensions:
  mobile: { type: individual, destination: "+34600000003" }
numbers:
  "+34910000001": { extension: mobile }
`, uasPort)
			if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			// The node keeps its name across the restart: it closes what
			// it left open itself, at once, not NodeDeadAfter later.
			args := []string{"--db", db, "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--config", cfg,
				"--rtp-ports", rtp[name], "--node-id", "crash-" + name, "--media-dir", filepath.Join(dir, "media")}
			srv, sipAddr := serveProcess(t, args...)

			// 50 calls a second, 3.5 s of them, at most 200 at once.
			uac, msgs, uacOut := crashSipp(t, dir, "caller", crashUAC, "-i", "127.0.0.2",
				"-p", strconv.Itoa(freeUDPPort(t, "127.0.0.2")), "-mp", strconv.Itoa(freeUDPPort(t, "127.0.0.2")),
				"-s", "+34910000001", "-r", "50", "-rp", "1000", "-l", "200", "-m", "175", sipAddr)
			time.Sleep(2500 * time.Millisecond)
			killed := time.Now()
			if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = srv.Wait()
			time.Sleep(100 * time.Millisecond) // sipp logs the responses already in its socket
			_ = uac.Process.Kill()
			_ = uac.Wait()
			calls := sippCalls(t, msgs)
			if len(calls) == 0 {
				t.Fatalf("sipp placed no call:\n%s", uacOut)
			}

			serveProcess(t, args...) // "sip listening" is logged once the crashed calls are closed
			st, err := store.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			recs := map[string]*store.CallRecord{}
			var open int
			if err := st.EachCall(context.Background(), store.CallFilter{Account: "acme"}, func(c *store.CallRecord) error {
				if recs[c.Caller] != nil {
					t.Errorf("two records for the call from %s", c.Caller)
				}
				recs[c.Caller] = c
				if c.End.IsZero() {
					open++
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}

			var sentBefore, placed, lost, unanswered, inFlight, crashed, ended int
			for caller, c := range calls {
				if c.invite.IsZero() || !c.invite.Before(killed) {
					continue // sent after the kill: it could not be placed
				}
				sentBefore++
				r := recs[caller]
				if c.responded {
					placed++
				}
				// The server took the call on once it sent more than a 100:
				// the engine rings or answers only after StartCall, so such
				// a call has its record. A call with only a 100 may be
				// sipgo's own 100 Trying, sent 200 ms after the INVITE was
				// read, before the engine made its record (the reputation
				// screen's database look-ups come first): on a starved
				// machine it may still be waiting for the engine seconds
				// later, so it is in flight, not lost.
				switch {
				case r == nil && !c.taken.IsZero():
					lost++
					t.Errorf("call from %s (INVITE at %s, %v before the kill, responses %v) has no record",
						caller, c.invite.Format("15:04:05.000000"), killed.Sub(c.invite), c.codes)
					continue
				case r == nil:
					inFlight++
					continue
				case !c.responded:
					unanswered++
				}
				if d := r.Start.Sub(c.invite); d < -50*time.Millisecond || d > slack {
					t.Errorf("call from %s: record starts at %s, INVITE sent at %s", caller,
						r.Start.Format("15:04:05.000000"), c.invite.Format("15:04:05.000000"))
				}
				if r.HangupCause == store.CauseCrashed {
					crashed++
				} else if !r.End.IsZero() {
					ended++
				}
				switch {
				case r.End.IsZero():
				case (c.bye.IsZero() || c.bye.After(killed)) && r.HangupCause != store.CauseCrashed:
					t.Errorf("call from %s was in progress at the kill but ended with cause %q", caller, r.HangupCause)
				case !c.byeOK.IsZero() && killed.Sub(c.byeOK) > slack && r.HangupCause == store.CauseCrashed:
					t.Errorf("call from %s ended %v before the kill but its end was lost (closed as crashed)", caller, killed.Sub(c.byeOK))
				case r.HangupCause == store.CauseCrashed && (r.End.Before(r.Start) || r.End.After(killed)):
					t.Errorf("call from %s closed as crashed at %s: not between its start %s and the kill %s", caller,
						r.End.Format("15:04:05.000000"), r.Start.Format("15:04:05.000000"), killed.Format("15:04:05.000000"))
				}
			}
			for caller, r := range recs {
				if c := calls[caller]; c == nil || c.invite.IsZero() {
					t.Errorf("a record for a call sipp did not place: %+v", r)
				}
			}
			t.Logf("%s: %d INVITEs sent before the kill, %d answered by the server (placed); %d records: %d closed as crashed, %d ended before the kill, %d open; "+
				"%d recorded but not yet answered, %d unanswered without a record (in the server's socket at the kill); lost %d",
				name, sentBefore, placed, len(recs), crashed, ended, open, unanswered, inFlight, lost)
			if open != 0 {
				t.Errorf("%d records still open after the restart", open)
			}
			if crashed == 0 || ended == 0 {
				t.Errorf("the kill should find calls both ended and in progress: %d ended, %d crashed", ended, crashed)
			}
			if placed < 50 {
				t.Errorf("only %d calls placed before the kill: the load did not run", placed)
			}
		})
	}
}
