package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/store"
)

// errChanges is plan's "changes present": exit status 2 and no error line,
// as `terraform plan -detailed-exitcode` does, so that a script can tell
// it from a failure (1).
var errChanges = errors.New("changes present")

// cmdPlan shows what `apply -f FILE` would change, without writing.
func cmdPlan(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("plan")
	file := fs.String("f", "", "configuration file (YAML or JSON)")
	db := dbFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("%w: -f FILE is required", errUsage)
	}
	doc, err := accounts.ValidateFile(*file)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	changes, err := accounts.Plan(ctx, st, doc)
	if err != nil {
		return err
	}
	accounts.FormatPlan(out, changes)
	if len(changes) > 0 {
		return errChanges
	}
	return nil
}
