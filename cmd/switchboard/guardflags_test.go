package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestServeGuardFlags: values that make no sense are usage errors naming
// their flag; and a server started with --flood-requests 3 answers a
// source's first three OPTIONS and then ignores it, with --scanners ""
// answering even sipvicious.
func TestServeGuardFlags(t *testing.T) {
	for flag, value := range map[string]string{"--flood-requests": "0", "--lockout-failures": "0", "--trunk-requests": "0",
		"--flood-window": "0s", "--flood-ban": "-1s", "--lockout": "0s", "--lockout-window": "0s"} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"serve", flag, value}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), flag) {
			t.Errorf("serve %s %s: exit %d, %q; want 2 naming the flag", flag, value, code, errOut.String())
		}
	}

	_, sipAddr := serveProcess(t, "--db", "sqlite:"+t.TempDir()+"/sb.db", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--flood-requests", "3", "--scanners", "")
	c, err := net.Dial("udp", sipAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answered := 0
	for i := range 5 {
		fmt.Fprintf(c, "OPTIONS sip:100@%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;branch=z9hG4bK-flags%[3]d\r\nMax-Forwards: 70\r\n"+
			"From: <sip:100@1.1.1.1>;tag=%[3]d\r\nTo: <sip:100@1.1.1.1>\r\nCall-ID: flags%[3]d\r\nCSeq: 1 OPTIONS\r\n"+
			"User-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n", sipAddr, c.LocalAddr(), i)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 4096)); err == nil {
			answered++
		}
	}
	if answered != 3 {
		t.Errorf("%d of 5 OPTIONS answered, want 3 (--flood-requests 3; --scanners \"\" answers sipvicious)", answered)
	}
}
