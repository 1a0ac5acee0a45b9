package registrar

import (
	"strconv"
	"strings"
	"testing"

	"github.com/icholy/digest"
)

func TestParseCredentials(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want credentials
		ok   bool
	}{
		{
			in: `Digest username="alice", realm="acme.test", nonce="abc", uri="sip:acme.test", response="0123456789abcdef0123456789abcdef", algorithm=MD5, cnonce="xyz", qop=auth, nc=00000001`,
			want: credentials{Username: "alice", Realm: "acme.test", Nonce: "abc", URI: "sip:acme.test",
				Response: "0123456789abcdef0123456789abcdef", Algorithm: "MD5", Cnonce: "xyz", QOP: "auth", NC: "00000001"},
			ok: true,
		},
		{ // sipp style: no spaces, mixed-case names, tabs and folding
			in:   "digest Username=\"101\",Realm=\"acme.test\",\tNONCE=\"n\",\r\n uri=sip:127.0.0.1:5060,opaque=\"\"",
			want: credentials{Username: "101", Realm: "acme.test", Nonce: "n", URI: "sip:127.0.0.1:5060"},
			ok:   true,
		},
		{in: `Digest username="a\"b\\c"`, want: credentials{Username: `a"b\c`}, ok: true},
		{in: `Digest username="a",, realm="r",`, want: credentials{Username: "a", Realm: "r"}, ok: true},
		{in: ``},
		{in: `Digest`},
		{in: `Digest `},
		{in: `Basic YWxpY2U6czNjcmV0`},
		{in: `Digestusername="a"`},
		{in: `Digest username`},
		{in: `Digest username=`},
		{in: `Digest username="unterminated`},
		{in: `Digest username="a" realm="b"`},
		{in: `Digest username="a", username="b"`},
		{in: `Digest username="a\`},
		{in: "Digest username=\"a\x00b\""},
		{in: `Digest =x`},
		{in: `Digest username=a"b`},
		{in: `Digest username="a"` + strings.Repeat(`, x="1"`, 40)},
		{in: `Digest username="` + strings.Repeat("a", maxCredentialsLen) + `"`},
	} {
		got, err := parseCredentials(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseCredentials(%q): err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && got != tc.want {
			t.Errorf("parseCredentials(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestCredentialsCheckAndResponse(t *testing.T) {
	chal := &digest.Challenge{Realm: "acme.test", Nonce: "nonce", Algorithm: "MD5", QOP: []string{"auth"}}
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:acme.test", Username: "alice", Password: "s3cret", Count: 7, Cnonce: "cn"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCredentials(cred.String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := c.check()
	if err != nil || nc != 7 {
		t.Fatalf("check = %d, %v", nc, err)
	}
	if got := c.expectedResponse("REGISTER", "s3cret"); got != cred.Response {
		t.Fatalf("response %s, want %s (icholy/digest)", got, cred.Response)
	}
	if got := c.expectedResponse("REGISTER", "other"); got == cred.Response {
		t.Fatal("wrong password gives the same response")
	}

	bad := []func(*credentials){
		func(c *credentials) { c.QOP = "" },
		func(c *credentials) { c.QOP = "auth-int" },
		func(c *credentials) { c.Cnonce = "" },
		func(c *credentials) { c.NC = "" },
		func(c *credentials) { c.NC = "000000000" },
		func(c *credentials) { c.NC = "00000000" },
		func(c *credentials) { c.NC = "0000000g" },
		func(c *credentials) { c.Algorithm = "SHA-256" },
		func(c *credentials) { c.Algorithm = "MD5-sess" },
		func(c *credentials) { c.Response = "abc" },
		func(c *credentials) { c.Response = strings.Repeat("z", 32) },
		func(c *credentials) { c.Username = "" },
		func(c *credentials) { c.URI = "" },
	}
	for i, mutate := range bad {
		m := c
		mutate(&m)
		if _, err := m.check(); err == nil {
			t.Errorf("case %d: %+v passed check", i, m)
		}
	}
}

// formatCredentials writes c back as a header value, every field quoted.
func formatCredentials(c credentials) string {
	fields := []struct{ k, v string }{
		{"username", c.Username}, {"realm", c.Realm}, {"nonce", c.Nonce}, {"uri", c.URI},
		{"response", c.Response}, {"algorithm", c.Algorithm}, {"cnonce", c.Cnonce},
		{"opaque", c.Opaque}, {"qop", c.QOP}, {"nc", c.NC},
	}
	var parts []string
	for _, f := range fields {
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(f.v)
		parts = append(parts, f.k+`="`+q+`"`)
	}
	return "Digest " + strings.Join(parts, ", ")
}

// FuzzDigestHeader: the Authorization parser never panics, stays within its
// limits, and whatever it accepts survives a format/parse round trip.
func FuzzDigestHeader(f *testing.F) {
	for _, s := range []string{
		`Digest username="alice", realm="acme.test", nonce="abc", uri="sip:acme.test", response="0123456789abcdef0123456789abcdef", algorithm=MD5, cnonce="xyz", qop=auth, nc=00000001`,
		`Digest username="101",realm="acme.test",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="AQAAAZ",response="5a4a0b2b",algorithm=MD5`,
		`Digest username="a\"b"`,
		`Basic Zm9vOmJhcg==`,
		`Digest`,
		"Digest a=\"\t\", b=c,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCredentials(s)
		if err != nil {
			return
		}
		if len(s) > maxCredentialsLen {
			t.Fatalf("accepted %d bytes", len(s))
		}
		if _, err := c.check(); err == nil {
			if n, _ := strconv.ParseUint(c.NC, 16, 32); n == 0 {
				t.Fatalf("check accepted nc %q", c.NC)
			}
		}
		again, err := parseCredentials(formatCredentials(c))
		if err != nil {
			// Formatting can exceed the length limit; nothing else may fail.
			if len(formatCredentials(c)) <= maxCredentialsLen {
				t.Fatalf("re-parse of %q: %v", formatCredentials(c), err)
			}
			return
		}
		if again != c {
			t.Fatalf("round trip: %+v != %+v", again, c)
		}
	})
}
