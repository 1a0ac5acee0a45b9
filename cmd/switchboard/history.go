package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/store"
)

// cmdHistory lists an account's configuration versions, newest first.
func cmdHistory(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("history")
	db := dbFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: history takes one ACCOUNT", errUsage)
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	vs, err := st.ConfigHistory(ctx, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("account %q not found", pos[0])
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCREATED\tAUTHOR")
	for _, v := range vs {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", v.Version, v.Created.UTC().Format(time.RFC3339), v.Author)
	}
	return tw.Flush()
}

// cmdRollback makes an earlier version current again, as a new version.
func cmdRollback(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("rollback")
	db := dbFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: rollback takes ACCOUNT VERSION", errUsage)
	}
	version, err := strconv.ParseInt(pos[1], 10, 64)
	if err != nil || version < 1 {
		return fmt.Errorf("%w: VERSION must be a version number, not %q", errUsage, pos[1])
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := accounts.Rollback(ctx, st, pos[0], version, store.Change{Author: "cli"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "account %q rolled back to version %d: now at version %d\n", pos[0], version, v)
	return nil
}
