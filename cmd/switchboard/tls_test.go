package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestServeTLSFlags: --tls-cert without --tls-key, or --sip-tls without a
// certificate, is a usage error (exit 2) naming the flags, before anything
// is opened.
func TestServeTLSFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--tls-cert", "cert.pem"},
		{"serve", "--tls-key", "key.pem"},
		{"serve", "--sip-tls", "127.0.0.1:0"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
		if !strings.Contains(errOut.String(), "--tls-cert") {
			t.Errorf("%v: %q does not name the flags", args, errOut.String())
		}
	}
}
