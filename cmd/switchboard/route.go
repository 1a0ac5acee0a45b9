package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

func cmdRoute(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("route")
	file := fs.String("f", "", "configuration file (no database)")
	account := fs.String("account", "", "account in the database")
	db := dbFlag(fs)
	number := fs.String("number", "", "called number")
	from := fs.String("from", "", "calling number (empty or anonymous: withheld)")
	name := fs.String("name", "", "caller name")
	rep := fs.String("reputation", "", "caller reputation: none, low, medium, high")
	captcha := fs.String("captcha", "pass", "voice-captcha outcome to assume: pass or fail")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*file == "") == (*account == "") {
		return fmt.Errorf("%w: give exactly one of -f FILE or --account A", errUsage)
	}
	if *number == "" {
		return fmt.Errorf("%w: --number is required", errUsage)
	}
	level, err := config.ParseLevel(*rep)
	if err != nil {
		return fmt.Errorf("%w: --reputation: %v", errUsage, err)
	}
	req := routing.Request{Number: *number, Caller: *from, CallerName: *name, Reputation: level}
	switch *captcha {
	case "pass":
		req.Captcha = routing.CaptchaPassed
	case "fail":
		req.Captcha = routing.CaptchaFailed
	default:
		return fmt.Errorf("%w: --captcha must be pass or fail", errUsage)
	}

	var ex *routing.Explanation
	if *file != "" {
		doc, err := accounts.ValidateFile(*file)
		if err != nil {
			return err
		}
		ex, err = accounts.ExplainDoc(doc, req)
		if err != nil {
			return err
		}
	} else {
		st, err := store.Open(ctx, *db)
		if err != nil {
			return err
		}
		defer st.Close()
		if ex, err = accounts.Explain(ctx, st, *account, req); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(ex)
	}
	printExplanation(out, ex)
	return nil
}

func printExplanation(out io.Writer, ex *routing.Explanation) {
	fmt.Fprintf(out, "outcome:     %s", ex.Outcome)
	if ex.SIPStatus != 0 {
		fmt.Fprintf(out, " (SIP %d)", ex.SIPStatus)
	}
	fmt.Fprintln(out)
	if ex.Destination != "" {
		fmt.Fprintf(out, "destination: %s\n", ex.Destination)
	}
	if len(ex.Attempts) > 0 {
		waves := make([]string, len(ex.Attempts))
		for i, w := range ex.Attempts {
			waves[i] = strings.Join(w, " + ")
		}
		fmt.Fprintf(out, "attempts:    %s\n", strings.Join(waves, " -> "))
	}
	fmt.Fprintf(out, "caller name: %q\n", ex.CallerName)
	if len(ex.Tags) > 0 {
		fmt.Fprintf(out, "tags:        %s\n", strings.Join(ex.Tags, ", "))
	}
	fmt.Fprintln(out, "trace:")
	for i, line := range ex.Trace {
		fmt.Fprintf(out, "  %2d. %s\n", i+1, line)
	}
}
