package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

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

	var (
		doc     *config.Document
		counter = func(string) (uint64, error) { return 0, nil }
	)
	if *file != "" {
		if doc, err = config.LoadFile(*file); err != nil {
			return fileErr(*file, err)
		}
	} else {
		st, err := store.Open(ctx, *db)
		if err != nil {
			return err
		}
		defer st.Close()
		if doc, _, err = st.LoadConfig(ctx, *account); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("account %q not found", *account)
			}
			return err
		}
		listed, err := st.Reputation(ctx, *account, *from)
		if err != nil {
			return err
		}
		req.Reputation = max(req.Reputation, listed)
		counter = func(ext string) (uint64, error) { return st.PeekRotation(ctx, *account, ext) }
	}
	snap, err := routing.Compile(doc)
	if err != nil {
		return err
	}
	ex, err := routing.Explain(snap, &req, counter)
	if err != nil {
		return err
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
