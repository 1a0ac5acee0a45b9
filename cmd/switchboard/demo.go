package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard/switchboard/examples"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// demoCall is one sample call of the demo.
type demoCall struct {
	what string
	req  routing.Request
}

var demoCalls = []demoCall{
	{"London caller to the main line", routing.Request{Number: "+34910000000", Caller: "+442071234567", CallerName: "Sam Jones"}},
	{"Spanish mobile to the main line", routing.Request{Number: "+34910000000", Caller: "+34600111222", CallerName: "Jane Doe"}},
	{"withheld number", routing.Request{Number: "+34910000000", Caller: "anonymous"}},
	{"suspected spam, passes the captcha", routing.Request{Number: "+34910000000", Caller: "+34955123456", Reputation: config.LevelMedium, Captcha: routing.CaptchaPassed}},
	{"suspected spam, fails the captcha", routing.Request{Number: "+34910000000", Caller: "+34955123456", Reputation: config.LevelHigh, Captcha: routing.CaptchaFailed}},
	{"rotating group, call 1", routing.Request{Number: "+34910000001", Caller: "+34600111222", CallerName: "Jane Doe"}},
	{"rotating group, call 2", routing.Request{Number: "+34910000001", Caller: "+34911222333"}},
	{"rotating group, call 3", routing.Request{Number: "+34910000001", Caller: "+34911222333"}},
	{"multi-ring group in waves", routing.Request{Number: "+34910000002", Caller: "+34911222333"}},
	{"number forwarded by its own switch", routing.Request{Number: "0034910000003", Caller: "+34911222333"}},
	{"number forwarded by its location", routing.Request{Number: "442071230000", Caller: "+442079460000"}},
	{"US toll-free caller to a US number", routing.Request{Number: "+12125550100", Caller: "+18885551234"}},
	{"US premium-rate caller", routing.Request{Number: "+12125550100", Caller: "+19005551234"}},
	{"unknown number", routing.Request{Number: "+34999999999", Caller: "+34911222333"}},
}

func cmdDemo(ctx context.Context, args []string, out io.Writer) error {
	fset := newFlags("demo")
	fset.Bool("once", false, "exit after the sample calls")
	verbose := fset.Bool("v", false, "print each call's trace")
	if _, err := parseFlags(fset, args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "switchboard-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.CopyFS(dir, examples.FS); err != nil {
		return fmt.Errorf("unpack sample account: %w", err)
	}
	doc, err := config.LoadFile(filepath.Join(dir, "acme.yaml"))
	if err != nil {
		return fileErr("acme.yaml", err)
	}
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "demo.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.ApplyConfig(ctx, doc); err != nil {
		return err
	}
	fmt.Fprintf(out, "Switchboard demo: account %q loaded into a throw-away database (%s)\n\n", doc.Account, st.Dialect())
	snap, err := routing.Compile(doc)
	if err != nil {
		return err
	}
	for i, c := range demoCalls {
		req := c.req
		// Each demo call is a real call: a rotating group's counter advances.
		next := func(ext string) (uint64, error) { return st.NextRotation(ctx, doc.Account, ext) }
		ex, err := routing.Explain(snap, &req, next)
		if err != nil {
			return err
		}
		from := req.Caller
		if from == "" {
			from = "anonymous"
		}
		fmt.Fprintf(out, "%2d. %-40s %s -> %s: %s", i+1, c.what, from, req.Number, ex.Outcome)
		if ex.SIPStatus != 0 {
			fmt.Fprintf(out, " (SIP %d)", ex.SIPStatus)
		}
		if ex.Destination != "" {
			fmt.Fprintf(out, " to %s", ex.Destination)
		}
		if len(ex.Attempts) > 0 {
			waves := make([]string, len(ex.Attempts))
			for j, w := range ex.Attempts {
				waves[j] = strings.Join(w, "+")
			}
			fmt.Fprintf(out, " [%s]", strings.Join(waves, " -> "))
		}
		if ex.CallerName != "" {
			fmt.Fprintf(out, " as %q", ex.CallerName)
		}
		fmt.Fprintln(out)
		if *verbose {
			for _, l := range ex.Trace {
				fmt.Fprintf(out, "      %s\n", l)
			}
		}
	}
	return nil
}
