package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// smsPhone is a registered SIP phone that answers every MESSAGE with the
// status it is set to (480 Temporarily Unavailable, then 200) and counts,
// by body, the MESSAGEs it took (answered 200).
type smsPhone struct {
	user, password string
	addr           string
	client         *sipgo.Client
	code           atomic.Int32
	regCSeq        atomic.Uint32
	regCallID      string

	mu      sync.Mutex
	took    map[string]int // body -> MESSAGEs answered 200
	refused atomic.Int64   // MESSAGEs answered otherwise
}

func newSMSPhone(t *testing.T, user, password string) *smsPhone {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &smsPhone{user: user, password: password, addr: uc.LocalAddr().String(), took: map[string]int{},
		regCallID: fmt.Sprintf("reg-%s-%d@127.0.0.1", user, time.Now().UnixNano())}
	p.code.Store(200)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("sms-kill-test"), sipgo.WithUserAgentHostname("acme.test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close(); uc.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	// Requests leave from the listening socket, so the registrar sees
	// the Contact's address as the source (no NAT).
	if p.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(p.addr)); err != nil {
		t.Fatal(err)
	}
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		code := int(p.code.Load())
		reason := "OK"
		if code != 200 {
			reason = "Temporarily Unavailable"
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
		if code != 200 {
			p.refused.Add(1)
			return
		}
		p.mu.Lock()
		p.took[string(req.Body())]++
		p.mu.Unlock()
	})
	go func() { _ = srv.ServeUDP(uc) }()
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, err := ua.TransportLayer().GetConnection("udp", p.addr); err == nil {
			c.TryClose()
			break
		}
		if time.Now().After(end) {
			t.Fatal("the phone's UDP listener is not ready")
		}
	}
	return p
}

// register binds the phone's Contact at the server at registrar for an
// hour, answering the digest challenge.
func (p *smsPhone) register(t *testing.T, registrar string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	host, port, err := sip.ParseAddr(registrar)
	if err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: port})
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: "acme.test"}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	callID := sip.CallIDHeader(p.regCallID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.regCSeq.Add(1), MethodName: sip.REGISTER})
	ap, _ := netip.ParseAddrPort(p.addr)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: ap.Addr().String(), Port: int(ap.Port())}})
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	res, err := p.client.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: p.password})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("REGISTER %s: %v %v", p.user, res, err)
	}
	if req.CSeq() != nil {
		p.regCSeq.Store(max(p.regCSeq.Load(), req.CSeq().SeqNo))
	}
}

// taken returns how many times the phone took each body.
func (p *smsPhone) taken() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.took))
	for b, n := range p.took {
		out[b] = n
	}
	return out
}

// TestKill9LosesNoMessage: a server takes a stream of SMS from the carrier
// for alice, whose phone answers them 480 (so they are queued, each with
// its next try half a minute on), and for bob, who has no device at all;
// it is killed with -9 in the middle of the stream. Restarted, with
// alice's phone answering 200 again and bob's phone registering, every
// message in the database (and every one the carrier had answered 202) is
// delivered, each exactly once, to its user's phone. A message taken for
// an attempt when the server died is due again when its lease (1 min) is
// over, so the test can take that long.
func TestKill9LosesNoMessage(t *testing.T) {
	rtp := map[string]string{"sqlite": "42200-42299", "postgres": "42300-42399"}
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := filepath.Join(t.TempDir(), "acme.yaml")
			doc := `account: acme
domain: acme.test
trunks:
  carrier: { address: "sip:127.0.0.3:5060", inbound_from: ["127.0.0.2/32"] }
users:
  alice: { extension: "101", password: pw1, sms: true }
  bob: { extension: "102", password: pw2, sms: true }
numbers:
  "+34910000001": { extension: "user:alice", sms_extension: "user:alice" }
  "+34910000002": { extension: "user:bob", sms_extension: "user:bob" }
`
			if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--db", db, "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--config", cfg, "--rtp-ports", rtp[name]}
			srv, sipAddr := serveProcess(t, args...)

			alice := newSMSPhone(t, "alice", "pw1")
			alice.code.Store(480)
			alice.register(t, sipAddr)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			carrier, err := testphone.New(ctx, testphone.Config{Name: "carrier", User: "carrier", IP: netip.MustParseAddr("127.0.0.2")})
			if err != nil {
				t.Fatal(err)
			}
			defer carrier.Close()

			// MESSAGEs one after another, 100 a second, alternately for
			// alice and bob, until the server is gone; it is killed 1.5 s in.
			var mu sync.Mutex
			accepted := map[string]bool{} // bodies answered 202
			stop := make(chan struct{})
			loopDone := make(chan struct{})
			go func() {
				defer close(loopDone)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					body := fmt.Sprintf("sms %d", i)
					to := fmt.Sprintf("sip:+3491000000%d@%s", 1+i%2, sipAddr)
					mctx, cancel := context.WithTimeout(context.Background(), time.Second)
					code, _ := carrier.SendMessage(mctx, to, body, testphone.DialOptions{FromUser: "+34611000000"})
					cancel()
					if code == 202 {
						mu.Lock()
						accepted[body] = true
						mu.Unlock()
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			// Killed once 20 are in and alice's phone has refused one (at
			// least 1.5 s in, however slow the machine is).
			killAt := time.Now().Add(1500 * time.Millisecond)
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				mu.Lock()
				n := len(accepted)
				mu.Unlock()
				if n >= 20 && alice.refused.Load() > 0 && time.Now().After(killAt) {
					break
				}
			}
			if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = srv.Wait()
			close(stop)
			<-loopDone
			mu.Lock()
			nAccepted := len(accepted)
			mu.Unlock()
			if nAccepted < 20 {
				t.Fatalf("only %d MESSAGEs were accepted before the kill", nAccepted)
			}
			if alice.refused.Load() == 0 {
				t.Fatal("alice's phone refused nothing before the kill: no message was queued after an attempt")
			}
			if got := alice.taken(); len(got) != 0 {
				t.Fatalf("alice's phone took %d messages before the kill", len(got))
			}

			// What the database has: every message, each for whom.
			st, err := store.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			stored := map[string]string{} // body -> user
			var queued int
			cursor := ""
			for {
				page, next, err := st.Messages(context.Background(), store.MessageFilter{Account: "acme", Limit: store.MaxCallLimit, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range page {
					user := "alice"
					if m.Number == "+34910000002" {
						user = "bob"
					}
					stored[m.Body] = user
					if m.State == store.MessageQueued {
						queued++
					}
				}
				if cursor = next; cursor == "" {
					break
				}
			}
			for body := range accepted {
				if _, ok := stored[body]; !ok {
					t.Errorf("%q was answered 202 but is not in the database", body)
				}
			}
			if queued != len(stored) {
				t.Errorf("%d of %d stored messages queued at the kill; want all", queued, len(stored))
			}

			// Restarted: alice's phone takes messages again and registers
			// anew (a refresh: what is queued for it is due at once); bob's
			// first phone registers.
			_, sipAddr = serveProcess(t, args...)
			alice.code.Store(200)
			alice.register(t, sipAddr)
			bob := newSMSPhone(t, "bob", "pw2")
			bob.register(t, sipAddr)
			phones := map[string]*smsPhone{"alice": alice, "bob": bob}
			complete := func() bool {
				for body, user := range stored {
					if phones[user].taken()[body] == 0 {
						return false
					}
				}
				return true
			}
			start := time.Now()
			for !complete() {
				if time.Since(start) > 90*time.Second {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			waited := time.Since(start)
			time.Sleep(time.Second) // time for a second copy, if one were to come
			for body, user := range stored {
				if n := phones[user].taken()[body]; n != 1 {
					t.Errorf("%s's phone took %q %d times, want once", user, body, n)
				}
			}
			for user, p := range phones {
				for body, n := range p.taken() {
					if stored[body] != user {
						t.Errorf("%s's phone took %q (%d times), which is not a message of %s's in the database", user, body, n, user)
					}
				}
			}
			t.Logf("%d MESSAGEs answered 202 before the kill, %d in the database (%d alice's answered 480 before); all delivered once %v after the restart",
				nAccepted, len(stored), alice.refused.Load(), waited.Round(time.Millisecond))
		})
	}
}
