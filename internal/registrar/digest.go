package registrar

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits on what we accept in an Authorization header; a real one is a few
// hundred bytes with about ten parameters.
const (
	maxCredentialsLen    = 4096
	maxCredentialsParams = 32
)

// credentials is a parsed Digest Authorization / Proxy-Authorization value
// (RFC 2617 §3.2.2, RFC 7616 §3.4). Values are kept exactly as sent because
// the response hash is computed over them.
type credentials struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm string
	Cnonce    string
	Opaque    string
	QOP       string
	NC        string // as sent (8 hex digits), the hash uses this text
}

// parseCredentials parses a Digest credentials header value. It is written
// for hostile input: bounded length and parameter count, no panics, and
// duplicate parameters are an error (which one would we believe?). Parameter
// names are case-insensitive; values are tokens or quoted strings.
func parseCredentials(s string) (credentials, error) {
	var c credentials
	if len(s) > maxCredentialsLen {
		return c, errors.New("credentials too long")
	}
	s = strings.TrimLeft(s, " \t\r\n")
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	if !strings.EqualFold(s[:i], "Digest") {
		return c, errors.New("not digest credentials")
	}
	if i < len(s) && !isLWS(s[i]) {
		return c, errors.New("no space after scheme")
	}
	p := paramReader{s: s, i: i}
	seen := make(map[string]bool, 10)
	n := 0
	for {
		key, val, ok, err := p.next()
		if err != nil {
			return c, err
		}
		if !ok {
			break
		}
		if n++; n > maxCredentialsParams {
			return c, errors.New("too many parameters")
		}
		key = strings.ToLower(key)
		if seen[key] {
			return c, fmt.Errorf("duplicate parameter %q", key)
		}
		seen[key] = true
		switch key {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.URI = val
		case "response":
			c.Response = val
		case "algorithm":
			c.Algorithm = val
		case "cnonce":
			c.Cnonce = val
		case "opaque":
			c.Opaque = val
		case "qop":
			c.QOP = val
		case "nc":
			c.NC = val
		}
	}
	if n == 0 {
		return c, errors.New("no parameters")
	}
	return c, nil
}

// paramReader walks "k=v, k="v", ..." lists. Empty list elements (",,") are
// allowed as in RFC 7230 §7.
type paramReader struct {
	s string
	i int
}

func (p *paramReader) skipLWS() {
	for p.i < len(p.s) && isLWS(p.s[p.i]) {
		p.i++
	}
}

// next returns the next parameter; ok=false at the end of the input.
func (p *paramReader) next() (key, val string, ok bool, err error) {
	for {
		p.skipLWS()
		if p.i >= len(p.s) {
			return "", "", false, nil
		}
		if p.s[p.i] != ',' {
			break
		}
		p.i++
	}
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", "", false, fmt.Errorf("bad character %q at %d", p.s[p.i], p.i)
	}
	key = p.s[start:p.i]
	p.skipLWS()
	if p.i >= len(p.s) || p.s[p.i] != '=' {
		return "", "", false, fmt.Errorf("parameter %q has no value", key)
	}
	p.i++
	p.skipLWS()
	if p.i >= len(p.s) {
		return "", "", false, fmt.Errorf("parameter %q has no value", key)
	}
	if p.s[p.i] == '"' {
		val, err = p.quoted()
		if err != nil {
			return "", "", false, fmt.Errorf("parameter %q: %w", key, err)
		}
	} else {
		// Token values; some devices send an unquoted uri=sip:..., so
		// anything up to a separator is accepted.
		start := p.i
		for p.i < len(p.s) && p.s[p.i] != ',' && !isLWS(p.s[p.i]) {
			if p.s[p.i] == '"' || isCtl(p.s[p.i]) {
				return "", "", false, fmt.Errorf("parameter %q: bad character in value", key)
			}
			p.i++
		}
		val = p.s[start:p.i]
	}
	p.skipLWS()
	if p.i < len(p.s) && p.s[p.i] != ',' {
		return "", "", false, fmt.Errorf("parameter %q: expected ','", key)
	}
	return key, val, true, nil
}

// quoted reads a quoted-string starting at the opening quote.
func (p *paramReader) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		ch := p.s[p.i]
		switch {
		case ch == '"':
			p.i++
			return b.String(), nil
		case ch == '\\':
			if p.i+1 >= len(p.s) {
				return "", errors.New("unterminated escape")
			}
			if isCtl(p.s[p.i+1]) {
				return "", errors.New("control character in quoted string")
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case isCtl(ch) && ch != '\t':
			return "", errors.New("control character in quoted string")
		default:
			b.WriteByte(ch)
			p.i++
		}
	}
	return "", errors.New("unterminated quoted string")
}

func isLWS(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

func isCtl(b byte) bool { return b < 0x20 || b == 0x7f }

// isTokenChar reports whether b is an RFC 7230 tchar.
func isTokenChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// check validates what qop=auth MD5 digest needs and returns the parsed nonce
// count. We only ever offer MD5 with qop="auth", so anything else is a client
// that does not follow our challenge.
func (c credentials) check() (nc uint32, err error) {
	switch {
	case c.Username == "", c.Realm == "", c.Nonce == "", c.URI == "":
		return 0, errors.New("missing username, realm, nonce or uri")
	case c.Algorithm != "" && !strings.EqualFold(c.Algorithm, "MD5"):
		return 0, fmt.Errorf("unsupported algorithm %q", c.Algorithm)
	case !strings.EqualFold(c.QOP, "auth"):
		return 0, fmt.Errorf("unsupported qop %q", c.QOP)
	case c.Cnonce == "":
		return 0, errors.New("missing cnonce")
	case len(c.Response) != md5.Size*2 || !isHex(c.Response):
		return 0, errors.New("bad response")
	case len(c.NC) == 0 || len(c.NC) > 8 || !isHex(c.NC):
		return 0, errors.New("bad nc")
	}
	v, err := strconv.ParseUint(c.NC, 16, 32)
	if err != nil || v == 0 {
		return 0, errors.New("bad nc")
	}
	return uint32(v), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F') {
			return false
		}
	}
	return true
}

// expectedResponse computes the RFC 2617 qop=auth MD5 response for password.
// It always does the same amount of work, whatever the password.
func (c credentials) expectedResponse(method, password string) string {
	ha1 := md5Hex(c.Username + ":" + c.Realm + ":" + password)
	ha2 := md5Hex(method + ":" + c.URI)
	return md5Hex(ha1 + ":" + c.Nonce + ":" + c.NC + ":" + c.Cnonce + ":" + c.QOP + ":" + ha2)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
