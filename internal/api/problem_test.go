package api

import (
	"testing"

	"github.com/switchboard/switchboard/internal/config"
)

// FuzzUnmarshalStrict: any body decodes into an object or gets a field
// error, never a panic; an accepted body has no unknown fields.
func FuzzUnmarshalStrict(f *testing.F) {
	for _, s := range []string{
		`{"members":["user:alice"],"timeout":"20s"}`, `{"timeout":20}`, `{"queue":{"max_wait":"x"}}`,
		`{"forward":{"on":true}}`, `{"rules":[{"prefix":"1","weight":1e400}]}`, `[]`, `{"a":`, `{} {}`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e config.Extension
		_ = unmarshalStrict(b, &e)
		var n config.Number
		_ = unmarshalStrict(b, &n)
		var rules []config.Rule
		_ = unmarshalStrict(b, &rules)
	})
}

func TestUnmarshalStrictPaths(t *testing.T) {
	for _, tc := range []struct{ body, path string }{
		{`{"timeout":"soon"}`, "timeout"},
		{`{"queue":{"max_wait":3}}`, "queue.max_wait"},
		{`{"forward":{"on":true}}`, "forward.on"},
		{`{"rules":[{"prefix":"1"},{"weight":"x"}]}`, "rules[1].weight"},
		{`{"max_parallel":1e400}`, "max_parallel"},
	} {
		var v struct {
			config.Extension
			Forward *config.Forward `json:"forward"`
			Rules   []config.Rule   `json:"rules"`
		}
		fe := unmarshalStrict([]byte(tc.body), &v)
		if fe == nil || fe.Path != tc.path {
			t.Errorf("%s: %+v, want path %s", tc.body, fe, tc.path)
		}
	}
}
