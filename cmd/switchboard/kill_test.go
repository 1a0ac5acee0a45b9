package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// childEnv, when set, makes the test binary run `switchboard` with these
// arguments (separated by \x1f) instead of the tests: a server process the
// tests can kill -9.
const childEnv = "SWITCHBOARD_TEST_CHILD"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		os.Exit(run(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// serveProcess starts `switchboard serve` in a process of its own and
// returns it with its SIP address once it listens.
func serveProcess(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(append([]string{"serve"}, args...), "\x1f"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	var logs strings.Builder
	var mu sync.Mutex
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("server log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	re := regexp.MustCompile(`msg="sip listening" udp=(\S+)`)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start listening within 20 s")
		return nil, ""
	}
}

// TestKill9LosesNoEvent: a server is killed with -9 in the middle of a
// stream of calls while its webhook receiver is failing, so that every
// event it wrote is still in the outbox. Restarted, it delivers them: every
// call in the activity log has its call.completed, and there is none for a
// call the log does not have.
func TestKill9LosesNoEvent(t *testing.T) {
	rtp := map[string]string{"sqlite": "42000-42099", "postgres": "42100-42199"}
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // most of the time is the killed node's lease running out
			var healthy atomic.Bool
			var mu sync.Mutex
			completed := map[string]string{} // event id -> call id
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !healthy.Load() {
					http.Error(w, "down", http.StatusServiceUnavailable)
					return
				}
				b, _ := io.ReadAll(r.Body)
				var p events.Payload
				var c events.Call
				if json.Unmarshal(b, &p) == nil && p.Type == events.TypeCallCompleted && json.Unmarshal(p.Data, &c) == nil {
					mu.Lock()
					completed[p.ID] = c.ID
					mu.Unlock()
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer recv.Close()
			cfg := filepath.Join(t.TempDir(), "acme.yaml")
			doc := fmt.Sprintf(`account: acme
domain: acme.test
defaults: { webhook: %q, trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.3:5060", inbound_from: ["127.0.0.2/32"] }
users:
  alice: { extension: "101", password: pw1 }
extensions:
  desk: { members: ["user:alice"] }
numbers:
  "+34910000001":
    extension: desk
    rules: [{ prefix: "34*", weight: 10, action: reject-busy }]
`, recv.URL+"/hook")
			if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--db", db, "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--config", cfg,
				"--webhook-allow-private", "--rtp-ports", rtp[name]}
			srv, sipAddr := serveProcess(t, args...)

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			carrier, err := testphone.New(ctx, testphone.Config{Name: "carrier", User: "carrier", IP: netip.MustParseAddr("127.0.0.2")})
			if err != nil {
				t.Fatal(err)
			}
			defer carrier.Close()
			// Calls one after another, 200 a second, each refused 486 by the
			// rule, until the server is gone.
			var refused atomic.Int64
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
					dctx, cancel := context.WithTimeout(context.Background(), time.Second)
					call, err := carrier.Dial(dctx, "sip:+34910000001@"+sipAddr, testphone.DialOptions{FromUser: fmt.Sprintf("+346110%05d", i)})
					cancel()
					if err != nil && call != nil && call.Status() == 486 {
						refused.Add(1)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			// Killed 1.5 s in, once 5 calls at least were refused, however
			// slow the machine is.
			killAt := time.Now().Add(1500 * time.Millisecond)
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && (refused.Load() < 5 || time.Now().Before(killAt)); {
				time.Sleep(50 * time.Millisecond)
			}
			if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = srv.Wait()
			close(stop)
			<-loopDone
			if refused.Load() < 5 {
				t.Fatalf("only %d calls were refused before the kill", refused.Load())
			}

			// Restarted with a healthy receiver, the node delivers the outbox.
			healthy.Store(true)
			serveProcess(t, args...)
			st, err := store.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			logged := map[string]bool{}
			if err := st.EachCall(context.Background(), store.CallFilter{Account: "acme"}, func(c *store.CallRecord) error {
				logged[c.ID] = true
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var got map[string]bool
			for end := time.Now().Add(45 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				mu.Lock()
				got = map[string]bool{}
				for _, id := range completed {
					got[id] = true
				}
				events := len(completed)
				mu.Unlock()
				if len(got) >= len(logged) || time.Now().After(end) {
					t.Logf("%d calls refused before the kill, %d in the activity log, %d call.completed delivered (%d distinct calls)",
						refused.Load(), len(logged), events, len(got))
					if events != len(got) {
						t.Errorf("%d call.completed events for %d calls: the outbox holds one per call", events, len(got))
					}
					break
				}
			}
			for id := range logged {
				if !got[id] {
					t.Errorf("call %s is in the activity log but its call.completed was lost", id)
				}
			}
			for id := range got {
				if !logged[id] {
					t.Errorf("call.completed for %s, which the activity log does not have", id)
				}
			}
			// What a kill -9 loses is the batch not yet committed: at most
			// 20 ms of calls' ends, records and events together.
			if lost := int(refused.Load()) - len(logged); lost > 10 {
				t.Errorf("%d refused calls but %d records: more than the last batch was lost", refused.Load(), len(logged))
			}
		})
	}
}
