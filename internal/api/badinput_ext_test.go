package api_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node/nodetest"
)

// TestAPIBadInput: malformed JSON, wrong types, unknown fields, trailing
// data, bodies over the limits, hostile paths, unknown paths and wrong
// methods: each a clear problem+json (never a 500 or a panic), and
// nothing stored.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	nodetest.EachDB(t, func(t *testing.T, db string) {
		ctx := context.Background()
		srv := startNode(t, db)
		c := newClient(t, srv, "acme", "ops", false, 10)
		v := version(t, srv)
		big := `{"destination":"user:alice","ringing":"` + strings.Repeat("x", 1<<20) + `"}`
		hugeDoc := append([]byte("account: acme\n# "), bytes.Repeat([]byte("x"), config.MaxDocumentSize)...)
		deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
		bomb := `account: acme
a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
`
		for _, tc := range []struct {
			name, method, path string
			body               any
			headers            []header
			status             int
			field              string // a path the problem names, if any
		}{
			// Malformed JSON.
			{"malformed", "PUT", "/acme/extensions/x", `{"destination":`, nil, 400, ""},
			{"malformed rules", "PUT", "/acme/numbers/+34910000002/rules", `[{"prefix":"*",}]`, nil, 400, ""},
			{"not JSON", "PUT", "/acme/extensions/x", `destination: user:alice`, nil, 400, ""},
			{"empty body", "PUT", "/acme/extensions/x", ``, nil, 400, ""},
			{"array for object", "PUT", "/acme/extensions/x", `["user:alice"]`, nil, 400, ""},
			{"object for array", "PUT", "/acme/numbers/+34910000002/rules", `{"prefix":"*"}`, nil, 400, ""},
			{"deep nesting", "PUT", "/acme/numbers/+34910000002/rules", deep, nil, 400, ""},
			{"huge number", "PUT", "/acme/extensions/x", `{"members":["user:alice"],"max_parallel":1e400}`, nil, 400, "max_parallel"},
			// Wrong types, named by field.
			{"string for list", "PUT", "/acme/extensions/x", `{"members":"user:alice"}`, nil, 400, "members"},
			{"number for string", "PUT", "/acme/extensions/x", `{"destination":101}`, nil, 400, "destination"},
			{"string for int", "PUT", "/acme/extensions/x", `{"members":["user:alice"],"max_parallel":"3"}`, nil, 400, "max_parallel"},
			{"number for duration", "PUT", "/acme/extensions/x", `{"members":["user:alice"],"timeout":20}`, nil, 400, "timeout"},
			{"bad duration", "PUT", "/acme/extensions/x", `{"members":["user:alice"],"timeout":"soon"}`, nil, 400, "timeout"},
			{"nested wrong type", "PUT", "/acme/numbers/+34910000009", `{"extension":"support","forward":{"enabled":"yes"}}`, nil, 400, "forward.enabled"},
			{"rule wrong type", "PUT", "/acme/numbers/+34910000002/rules/0", `{"prefix":"*","weight":"1","action":"reject-503"}`, nil, 400, "weight"},
			{"forward wrong type", "PUT", "/acme/locations/madrid/forward", `{"enabled":1}`, nil, 400, "enabled"},
			{"reputation wrong type", "PUT", "/acme/reputation/+34600000001", `{"level":["high"]}`, nil, 400, "level"},
			{"rollback wrong type", "POST", "/acme/config/rollback", `{"version":"1"}`, nil, 400, "version"},
			{"prompt wrong type", "PUT", "/acme/prompts/p", `{"say":true}`, nil, 400, "say"},
			{"config wrong type", "PUT", "/acme/config", `{"account":"acme","numbers":{"+34910000001":{"extension":["user:alice"]}}}`, nil, 400, ""},
			// Unknown fields.
			{"unknown field", "PUT", "/acme/extensions/x", `{"destination":"user:alice","colour":"red"}`, nil, 400, "colour"},
			{"unknown nested field", "PUT", "/acme/numbers/+34910000009", `{"extension":"support","forward":{"on":true}}`, nil, 400, "forward.on"},
			{"unknown rule field", "PUT", "/acme/numbers/+34910000002/rules/0", `{"prefix":"*","weight":1,"action":"reject-503","when":"now"}`, nil, 400, "when"},
			{"unknown config field", "PUT", "/acme/config", `{"account":"acme","colour":"red"}`, nil, 400, ""},
			// Trailing data.
			{"trailing object", "PUT", "/acme/extensions/x", `{"destination":"user:alice"} {}`, nil, 400, ""},
			{"trailing garbage", "PUT", "/acme/extensions/x", `{"destination":"user:alice"}garbage`, nil, 400, ""},
			{"two documents", "PUT", "/acme/config", "account: acme\n---\naccount: acme\n", nil, 400, ""},
			// Bodies over the limits.
			{"body over 1 MiB", "PUT", "/acme/extensions/x", big, nil, 413, ""},
			{"rules over 1 MiB", "PUT", "/acme/numbers/+34910000002/rules", `[` + strings.Repeat(`{"prefix":"*","weight":1,"action":"reject-503"},`, 25000) + `{}]`, nil, 413, ""},
			{"config over 10 MiB", "PUT", "/acme/config", hugeDoc, nil, 413, ""},
			{"YAML aliases", "PUT", "/acme/config", bomb, nil, 400, ""},
			{"invalid UTF-8 document", "PUT", "/acme/config", []byte("account: acme\ndomain: \xff\xfe\n"), nil, 400, ""},
			// Values that reach validation: a 422, not a crash.
			{"null object", "PUT", "/acme/extensions/x", `null`, nil, 422, "extensions.x.destination"},
			{"NUL in a value", "PUT", "/acme/extensions/x", `{"destination":"user:al\u0000ice"}`, nil, 422, "extensions.x.destination"},
			{"control chars in a name", "PUT", "/acme/extensions/a%01b", `{"destination":"user:alice"}`, nil, 400, ""},
			// Hostile paths.
			{"dot-dot", "GET", "/acme/extensions/../config", nil, nil, 400, ""},
			{"dot-dot write", "PUT", "/acme/extensions/../users/alice", `{"extension":"101"}`, nil, 400, ""},
			{"encoded dot-dot", "GET", "/acme/prompts/%2e%2e", nil, nil, 400, ""},
			{"encoded dot-dot write", "PUT", "/acme/prompts/%2E%2E", `{"say":"x"}`, nil, 400, ""},
			{"encoded dot-dot account", "GET", "/%2e%2e/config", nil, nil, 400, ""},
			{"dot", "GET", "/acme/extensions/.", nil, nil, 400, ""},
			{"NUL", "GET", "/acme/extensions/a%00b", nil, nil, 400, ""},
			{"NUL write", "PUT", "/acme/prompts/p%00.wav", `{"say":"x"}`, nil, 400, ""},
			{"NUL account", "GET", "/acme%00/config", nil, nil, 400, ""},
			{"newline", "GET", "/acme/users/a%0Ab", nil, nil, 400, ""},
			{"DEL", "GET", "/acme/users/a%7Fb", nil, nil, 400, ""},
			{"encoded slash", "GET", "/acme/users/a%2Fb", nil, nil, 404, ""},
			// Unknown API paths and wrong methods.
			{"unknown resource", "GET", "/acme/nothing", nil, nil, 404, ""},
			{"unknown deep", "GET", "/acme/numbers/+34910000002/rules/0/extra", nil, nil, 404, ""},
			{"unknown under a version", "GET", "/acme/config/versions/1/diff/extra", nil, nil, 404, ""},
			{"POST a section", "POST", "/acme/numbers", `{}`, nil, 405, ""},
			{"DELETE config", "DELETE", "/acme/config", nil, nil, 405, ""},
			{"PATCH config", "PATCH", "/acme/config", `{}`, nil, 405, ""},
			{"GET rollback", "GET", "/acme/config/rollback", nil, nil, 405, ""},
			{"PUT calls", "PUT", "/acme/calls", `{}`, nil, 405, ""},
			// Bad headers and queries.
			{"bad If-Match", "PUT", "/acme/extensions/x", `{"destination":"user:alice"}`, hdr("If-Match", `"v1"`), 400, "If-Match"},
			{"negative If-Match", "PUT", "/acme/extensions/x", `{"destination":"user:alice"}`, hdr("If-Match", `"-3"`), 400, "If-Match"},
			{"bad prompt type", "PUT", "/acme/prompts/p", []byte("RIFF...."), hdr("Content-Type", "audio/wav"), 422, "body"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cc := c.at(t)
				r := cc.do(tc.method, tc.path, tc.body, tc.headers...)
				if r.Status != tc.status {
					t.Errorf("want %d: %s", tc.status, r)
				}
				if r.Status < 400 || r.Status >= 500 {
					t.Errorf("not a client-error problem: %s", r)
				}
				if tc.field != "" && r.Status >= 400 && r.Header.Get("Content-Type") == "application/problem+json" {
					if p := r.problem(t).paths(); !strings.Contains(strings.Join(p, " "), tc.field) {
						t.Errorf("the problem names %q, not %q: %s", p, tc.field, r)
					}
				}
				if r.Status == 405 && r.Header.Get("Allow") == "" {
					t.Errorf("405 without Allow: %s", r)
				}
				unchanged(t, srv, v, tc.name)
			})
		}
		// Outside /api/v1: the same problem+json for every unknown path.
		for _, p := range []string{"/api/v2/acme/config", "/api/v1", "/api/"} {
			r := c.doURL("GET", srv.HTTPURL+p, nil)
			if r.Status != 404 {
				t.Errorf("GET %s: %s", p, r)
			}
		}
		// The node still serves.
		want(t, c.do("GET", "/acme/config", nil), 200)
		if _, _, err := srv.Store.LoadConfig(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		unchanged(t, srv, v, "bad input")
	})
}
