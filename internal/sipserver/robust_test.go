package sipserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testphone"
)

// TestSippMediaTimeout: an answered call whose RTP never flows is ended by
// the server after --rtp-timeout, with a BYE to both sides.
func TestSippMediaTimeout(t *testing.T) {
	t.Parallel()
	ctx := sippContext(t)
	uas := startSipp(ctx, t, "carrier", sippOptions{scenario: "uas_answer.xml"})
	h := startServer(t, sippTrunkDoc(uas.uasAddr(), "", ""), harnessOptions{rtpTimeout: time.Second})
	start := time.Now()
	uac := startSipp(ctx, t, "caller", sippOptions{
		scenario: "uac_wait_bye.xml", remote: h.addr, service: "+34910000000",
		keys: sippCaller("+34911111111", "Sipp Caller"),
	})
	uac.expectSuccess()
	uas.expectSuccess()
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("the silent call lasted %s; the media timeout is 1s", took)
	}
	rec := sippOneCall(h)
	if rec.HangupCause != "rtp_timeout" || !sippTraceHas(rec, "no RTP for 1s") {
		t.Errorf("record cause=%q trace=%q", rec.HangupCause, rec.Trace)
	}
}

// TestMalformedInputThenGoodCall sends a batch of broken SIP messages and
// INVITEs with broken SDP: each gets an error response (or is dropped when
// it cannot be answered at all), the server keeps running, and a good call
// goes through afterwards.
func TestMalformedInputThenGoodCall(t *testing.T) {
	w := newWorld(t)
	alice := w.user("alice", "pa", testphone.Behavior{})
	conn, err := net.ListenPacket("udp", carrierIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv, _ := net.ResolveUDPAddr("udp", w.h.addr)
	local := conn.LocalAddr().String()

	invite := func(callID, ctype, body string) string {
		return fmt.Sprintf("INVITE sip:+34910000001@%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\n"+
			"From: <sip:+34911222333@%s>;tag=t%s\r\nTo: <sip:+34910000001@%s>\r\n"+
			"Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:c@%s>\r\nMax-Forwards: 70\r\n"+
			"Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
			w.h.addr, local, callID, local, callID, w.h.addr, callID, local, ctype, len(body), body)
	}
	garbage := []string{
		"\x00\x01\x02\x03",
		"INVITE\r\n\r\n",
		"INVITE sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n",
		strings.Repeat("A", 1400),
		"OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
		"INVITE sip:+34910000001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKnofrom\r\nCall-ID: nofrom\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
	}
	for _, g := range garbage {
		if _, err := conn.WriteTo([]byte(g), srv); err != nil {
			t.Fatal(err)
		}
	}
	broken := []struct{ name, ctype, body string }{
		{"sdp1", "application/sdp", "v=0\r\nthis is not sdp\r\n"},
		{"sdp2", "application/sdp", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 99999999 RTP/AVP 0\r\n"},
		{"sdp3", "application/sdp", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"},
		{"nosdp", "application/sdp", ""},
	}
	want := map[string]int{"sdp1": 400, "sdp2": 400, "sdp3": 488, "nosdp": 488}
	for _, b := range broken {
		if _, err := conn.WriteTo([]byte(invite(b.name, b.ctype, b.body)), srv); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	buf := make([]byte, 65535)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(broken) && time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(deadline)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			break
		}
		msg := string(buf[:n])
		var code int
		if _, err := fmt.Sscanf(msg, "SIP/2.0 %d", &code); err != nil || code < 200 {
			continue
		}
		for _, b := range broken {
			if strings.Contains(msg, "Call-ID: "+b.name+"\r\n") {
				got[b.name] = code
			}
		}
	}
	for name, code := range want {
		if got[name] != code {
			t.Errorf("INVITE %s: got %d, want %d", name, got[name], code)
		}
	}
	// The server still places a good call.
	c, err := w.call("+34910000001", "+34911222333", "")
	if err != nil {
		t.Fatalf("good call after the broken batch: %v", err)
	}
	incoming(t, alice)
	hangup(t, c)
	recs := w.h.waitCalls("acme", len(broken)+1)
	if recs[0].AnsweredBy != "user:alice" {
		t.Errorf("good call record: %+v", recs[0])
	}
	for _, r := range recs[1:] {
		if r.HangupCause != "media_error" {
			t.Errorf("broken SDP call recorded as %q", r.HangupCause)
		}
	}
}

// TestDrainBoundedByTimeout: a shutdown ends within the drain timeout even
// while an outbound INVITE the caller cancelled has had no response at all
// (a CANCEL cannot be sent before a provisional response, so sipgo keeps
// that transaction until Timer B, 32 s): cleaning up such a leg is not a
// call in progress.
func TestDrainBoundedByTimeout(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // a trunk that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	h := startServer(t, sippTrunkDoc(silent.LocalAddr().String(), "", ""), harnessOptions{drain: time.Second})
	carrier := newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: netip.MustParseAddr("127.0.0.1")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := carrier.StartCall(ctx, "sip:+34910000000@"+h.addr, testphone.DialOptions{FromUser: "+34911222333"})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := silent.ReadFrom(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "INVITE ") {
		t.Fatalf("the trunk got no INVITE: %v %q", err, buf[:n])
	}
	hangup(t, c)
	if rec := h.waitCalls("acme", 1)[0]; !sippTraceHas(rec, "caller hung up before an answer") {
		t.Errorf("trace %q", rec.Trace)
	}
	h.cancel() // SIGTERM
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop within 5 s of SIGTERM; the drain timeout is 1 s")
	}
}
