package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/switchboard/switchboard/internal/node"
)

const sample = "../../examples/acme.yaml"

// sb runs one command in-process and returns its exit status and output.
func sb(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// databases returns a fresh SQLite URL and a fresh PostgreSQL schema URL.
func databases(t *testing.T) map[string]string {
	t.Helper()
	dbs := map[string]string{"sqlite": "sqlite:" + filepath.Join(t.TempDir(), "sb.db")}
	if os.Getenv("SWITCHBOARD_SKIP_POSTGRES") == "1" {
		return dbs
	}
	base := os.Getenv("SWITCHBOARD_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sbcli_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("PostgreSQL at %s is unreachable (set SWITCHBOARD_SKIP_POSTGRES=1 to skip): %v", base, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	dbs["postgres"] = base + "&search_path=" + schema
	return dbs
}

func TestValidate(t *testing.T) {
	code, out, _ := sb(t, "validate", "-f", sample)
	if code != 0 || !strings.Contains(out, `account "acme" is valid`) {
		t.Fatalf("validate sample: %d %q", code, out)
	}
	bad := filepath.Join(filepath.Dir(sample), "bad-validate-test.yaml") // beside the prompts it refers to
	defer os.Remove(bad)
	src, _ := os.ReadFile(sample)
	src = bytes.Replace(src, []byte(`code: "21"`), []byte(`code: "2x"`), 1)
	src = bytes.Replace(src, []byte(`prefix: "888*", weight: 10, action: reject-busy }`), []byte(`prefix: "8*8", weight: 10, action: reject-busy }`), 1)
	if err := os.WriteFile(bad, src, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := sb(t, "validate", "-f", bad)
	if code != 1 {
		t.Fatalf("want exit 1, got %d", code)
	}
	for _, want := range []string{"2 errors", "extensions.support.code:", `numbers["+34910000000"].rules[0].prefix:`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"}, {"validate"}, {"route", "--number", "+34910000000"}, {"route", "-f", sample},
		{"route", "-f", sample, "--number", "1", "--reputation", "extreme"}, {"export"}, {"validate", "--nope"},
	} {
		if code, _, errOut := sb(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: want exit 2 with a message, got %d %q", args, code, errOut)
		}
	}
}

// TestHelp: -h on a command prints its flags to stdout and exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"serve", "-h"}, {"validate", "--help"}, {"route", "-h"}} {
		code, out, _ := sb(t, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage of switchboard "+args[0]+":") || !strings.Contains(out, "  -") {
			t.Errorf("%v: want exit 0 and the flags on stdout, got %d %q", args, code, out)
		}
	}
	if _, out, _ := sb(t, "serve", "-h"); !strings.Contains(out, "-node-id") || !strings.Contains(out, "-media-dir") {
		t.Errorf("serve -h lacks the cluster flags:\n%s", out)
	}
}

func TestApplyExportRoundTrip(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			if code, _, e := sb(t, "apply", "-f", sample, "--db", db); code != 0 {
				t.Fatalf("apply: %s", e)
			}
			code, exported, e := sb(t, "export", "acme", "--secrets", "--db", db)
			if code != 0 {
				t.Fatalf("export: %s", e)
			}
			// Re-apply the export (prompt paths are relative to the sample).
			again := filepath.Join(filepath.Dir(sample), "exported-"+name+".yaml")
			if err := os.WriteFile(again, []byte(exported), 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(again)
			if code, _, e := sb(t, "apply", "-f", again, "--db", db); code != 0 {
				t.Fatalf("apply of export: %s", e)
			}
			_, exported2, _ := sb(t, "export", "acme", "--secrets", "--db", db)
			if exported != exported2 {
				t.Fatalf("apply -> export -> apply changed the document:\n%s\n---\n%s", exported, exported2)
			}
			_, redacted, _ := sb(t, "export", "acme", "--db", db)
			if strings.Contains(redacted, "s3cret") || !strings.Contains(redacted, "<redacted>") {
				t.Fatal("export without --secrets shows passwords")
			}
			if code, _, e := sb(t, "export", "nobody", "--db", db); code != 1 || !strings.Contains(e, `account "nobody" not found`) {
				t.Fatalf("export of unknown account: %d %q", code, e)
			}
			if code, out, _ := sb(t, "token", "create", "--account", "acme", "--db", db); code != 0 || len(strings.TrimSpace(out)) < 32 {
				t.Fatalf("token create: %d %q", code, out)
			}
		})
	}
}

// routeJSON is the contract of `route --json` (SPEC §6).
type routeJSON struct {
	Outcome     string     `json:"outcome"`
	SIPStatus   int        `json:"sip_status"`
	Destination string     `json:"destination"`
	Attempts    [][]string `json:"attempts"`
	CallerName  string     `json:"caller_name"`
	Tags        []string   `json:"tags"`
	RulesFired  []int      `json:"rules_fired"`
	Captcha     bool       `json:"captcha"`
	Trace       []string   `json:"trace"`
}

func route(t *testing.T, args ...string) routeJSON {
	t.Helper()
	code, out, e := sb(t, append([]string{"route", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("route %v: %d %s", args, code, e)
	}
	var r routeJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("route --json output: %v\n%s", err, out)
	}
	for _, key := range []string{`"outcome"`, `"caller_name"`, `"tags"`, `"rules_fired"`, `"captcha"`, `"trace"`} {
		if !strings.Contains(out, key) {
			t.Errorf("route --json lacks %s", key)
		}
	}
	return r
}

func TestRouteFromFile(t *testing.T) {
	r := route(t, "-f", sample, "--number", "+34910000000", "--from", "+34600111222", "--name", "Jane Doe")
	if r.Outcome != "routed" || r.Destination != "front" || r.CallerName != "MAIN MOBILE Jane Doe" ||
		!slices.Equal(r.RulesFired, []int{2}) || !slices.Equal(r.Tags, []string{"spain", "main-line", "mobile"}) || len(r.Trace) == 0 {
		t.Fatalf("unexpected decision: %+v", r)
	}
	r = route(t, "-f", sample, "--number", "+34910000000", "--from", "anonymous")
	if r.Outcome != "rejected" || r.SIPStatus != 503 {
		t.Fatalf("withheld caller: %+v", r)
	}
	r = route(t, "-f", sample, "--number", "+34910000000", "--from", "")
	if r.Outcome != "rejected" || r.SIPStatus != 503 {
		t.Fatalf("empty --from is withheld: %+v", r)
	}
	r = route(t, "-f", sample, "--number", "+34910000000", "--from", "+34955123456", "--reputation", "high", "--captcha", "fail")
	if r.Outcome != "captcha_failed" || !r.Captcha {
		t.Fatalf("captcha fail: %+v", r)
	}
	r = route(t, "-f", sample, "--number", "+34999999999", "--from", "+34955123456")
	if r.Outcome != "not_found" || r.SIPStatus != 404 {
		t.Fatalf("unknown number: %+v", r)
	}
	r = route(t, "-f", sample, "--number", "+34910000002", "--from", "+34955123456")
	want := [][]string{{"user:alice", "user:bob"}, {"user:carol", "user:dave"}, {"+34600000003"}}
	if !slices.EqualFunc(r.Attempts, want, slices.Equal) {
		t.Fatalf("multi-ring waves: %v", r.Attempts)
	}
	code, out, _ := sb(t, "route", "-f", sample, "--number", "+34910000003", "--from", "+34955123456")
	if code != 0 || !strings.Contains(out, "outcome:     forwarded") || !strings.Contains(out, "trace:") {
		t.Fatalf("human output: %q", out)
	}
}

func TestRouteFromDatabase(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			if code, _, e := sb(t, "apply", "-f", sample, "--db", db); code != 0 {
				t.Fatal(e)
			}
			// route reads the rotating counter without advancing it.
			for range 2 {
				r := route(t, "--account", "acme", "--db", db, "--number", "+34910000001", "--from", "+34955123456")
				if r.Outcome != "routed" || r.Destination != "rota" || len(r.Attempts) != 3 || r.Attempts[0][0] != "user:alice" {
					t.Fatalf("rotating group from the database: %+v", r)
				}
			}
			t.Setenv("SWITCHBOARD_DB", db)
			r := route(t, "--account", "acme", "--number", "0034910000003", "--from", "+34955123456")
			if r.Outcome != "forwarded" || r.Destination != "+34600000009" {
				t.Fatalf("SWITCHBOARD_DB: %+v", r)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	code, out, e := sb(t, "demo", "--once", "--http", "127.0.0.1:0")
	if code != 0 {
		t.Fatalf("demo: %s\n%s", e, out)
	}
	for _, want := range []string{
		"rang alice (486), bob (answered); answered by user:bob",
		"rotating group, call 1                       +34911222333 -> +34910000001: routed; rang alice (answered)",
		"rotating group, call 2                       +34911222333 -> +34910000001: routed; rang bob (answered)",
		"rotating group, call 3                       +34911222333 -> +34910000001: routed; rang carol (answered)",
		"carol (cancelled), dave (answered); answered by user:dave",
		"anonymous -> +34910000000: rejected (SIP 503)",
		"+18885551234 -> +12125550100: rejected (SIP 486)",
		"forwarded; rang pstn +34600000009 (answered)",
		"forwarded; rang pstn +447700900123 (answered)",
		"not_found (SIP 404)",
		"IVR: the caller presses 2 (support)          +34600111222 -> +34910000000: routed; rang alice (answered); answered by user:alice",
		"IVR: 3 parks the call; bob dials orbit 701   +34600111333 -> +34910000000: routed; answered by user:bob",
		"Web console: http://127.0.0.1:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoWithoutESpeak: on a machine without espeak-ng the demo runs
// cleanly: one line says the spoken prompts play a tone instead, no error
// is logged, and every sample call still goes as planned.
func TestDemoWithoutESpeak(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing on it, espeak-ng included
	code, out, e := sb(t, "demo", "--once", "--http", "127.0.0.1:0")
	if code != 0 {
		t.Fatalf("demo: %s\n%s", e, out)
	}
	if !strings.Contains(out, "espeak-ng is not installed: the sample's") {
		t.Errorf("no notice of the missing espeak-ng:\n%s", out)
	}
	if strings.Contains(out+e, "ERROR") {
		t.Errorf("the demo logged an error without espeak-ng:\n%s\n%s", out, e)
	}
	for _, want := range []string{"IVR: the caller presses 2 (support)", "answered by user:bob", "Web console: http://"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestServeHTTPEndpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type up struct{ http net.Addr }
	started := make(chan up, 1)
	done := make(chan error, 1)
	db := "sqlite:" + filepath.Join(t.TempDir(), "sb.db")
	go func() {
		done <- serve(ctx, serveOptions{
			db: db, sip: "127.0.0.1:0", http: "127.0.0.1:0",
			config: sample, rtpPorts: "41000-41099", drain: time.Second, rtpTimeout: time.Minute,
		}, slog.New(slog.NewTextHandler(io.Discard, nil)), func(n *node.Node) { started <- up{n.HTTPAddr} })
	}()
	var u up
	select {
	case u = <-started:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + u.http.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	code, body := get("/metrics")
	for _, m := range []string{"switchboard_calls_active 0", "switchboard_calls_started_total 0", "switchboard_calls_per_second", "switchboard_registrations_total 0", "# TYPE switchboard_calls_total counter"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics (%d) lacks %q:\n%s", code, m, body)
		}
	}
	// The REST API is served, behind its tokens.
	code, token, stderr := sb(t, "token", "create", "--account", "acme", "--db", db)
	if code != 0 {
		t.Fatalf("token create: %d %s", code, stderr)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {strings.TrimSpace(token), 404}} {
		req, _ := http.NewRequest(http.MethodPut, "http://"+u.http.String()+"/api/v1/acme/calls/x/variables/dest", strings.NewReader(`{"value":"1"}`))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != tc.want {
			t.Errorf("PUT a variable (token %q): %v %v, want %d", tc.token, res, err, tc.want)
			continue
		}
		res.Body.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
