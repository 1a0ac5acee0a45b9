package main

import (
	"context"
	"errors"
	"io"

	"github.com/switchboard/switchboard/internal/accounts"
)

// errChanges is plan's "changes present": exit status 2 and no error line,
// as `terraform plan -detailed-exitcode` does, so that a script can tell
// it from a failure (1).
var errChanges = errors.New("changes present")

// cmdPlan shows what `apply -f FILE` would change, without writing.
func cmdPlan(ctx context.Context, args []string, out io.Writer) error {
	_, doc, st, err := fileAndStore(ctx, "plan", args)
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
