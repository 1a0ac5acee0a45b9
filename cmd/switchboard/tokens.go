package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

// cmdToken is `token create|list|revoke`.
func cmdToken(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: token create|list|revoke", errUsage)
	}
	switch args[0] {
	case "create":
		return tokenCreate(ctx, args[1:], out)
	case "list":
		return tokenList(ctx, args[1:], out)
	case "revoke":
		return tokenRevoke(ctx, args[1:], out)
	}
	return fmt.Errorf("%w: token %q: create, list or revoke", errUsage, args[0])
}

// tokenCreate prints the new token's secret, the only time it is shown.
func tokenCreate(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("token create")
	account := fs.String("account", "", "account the token is bound to")
	admin := fs.Bool("admin", false, "an admin token for every account")
	name := fs.String("name", "", "a name for the token (shown in lists and as the author of its changes)")
	readOnly := fs.Bool("read-only", false, "the token can read everything and change nothing")
	db := dbFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*account == "") == !*admin {
		return fmt.Errorf("%w: give --account A or --admin", errUsage)
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	if *account != "" {
		if _, _, err := st.LoadConfig(ctx, *account); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("account %q not found", *account)
			}
			return err
		}
	}
	secret, _, err := st.NewToken(ctx, *account, *name, *readOnly)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, secret)
	return nil
}

func tokenList(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("token list")
	account := fs.String("account", "", "only this account's tokens")
	db := dbFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	ts, err := st.Tokens(ctx, *account)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACCOUNT\tNAME\tACCESS\tCREATED")
	for _, t := range ts {
		acct, access := t.Account, "read-write"
		if acct == "" {
			acct = "(admin)"
		}
		if t.ReadOnly {
			access = "read-only"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, acct, t.Name, access, t.Created.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("token revoke")
	db := dbFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: token revoke takes one ID (see token list)", errUsage)
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RevokeToken(ctx, pos[0]); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no token has the id %q", pos[0])
		}
		return err
	}
	fmt.Fprintf(out, "revoked token %s\n", pos[0])
	return nil
}
