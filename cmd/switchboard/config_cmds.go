package main

import (
	"context"
	"fmt"
	"io"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/store"
)

func cmdValidate(_ context.Context, args []string, out io.Writer) error {
	fs := newFlags("validate")
	file := fs.String("f", "", "configuration file (YAML or JSON)")
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
	fmt.Fprintf(out, "%s: account %q is valid (%d numbers, %d extensions, %d users)\n",
		*file, doc.Account, len(doc.Numbers), len(doc.Extensions), len(doc.Users))
	return nil
}

func cmdApply(ctx context.Context, args []string, out io.Writer) error {
	file, doc, st, err := fileAndStore(ctx, "apply", args)
	if err != nil {
		return err
	}
	defer st.Close()
	version, err := accounts.Apply(ctx, st, doc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "applied %s: account %q is at version %d\n", file, doc.Account, version)
	return nil
}

// fileAndStore parses the flags of apply and plan (-f FILE, --db URL),
// validates the file and opens the store; the caller closes it.
func fileAndStore(ctx context.Context, name string, args []string) (string, *config.Document, *store.Store, error) {
	fs := newFlags(name)
	file := fs.String("f", "", "configuration file (YAML or JSON)")
	db := dbFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return "", nil, nil, err
	}
	if *file == "" {
		return "", nil, nil, fmt.Errorf("%w: -f FILE is required", errUsage)
	}
	doc, err := accounts.ValidateFile(*file)
	if err != nil {
		return "", nil, nil, err
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return "", nil, nil, err
	}
	return *file, doc, st, nil
}

func cmdExport(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("export")
	secrets := fs.Bool("secrets", false, "include passwords")
	db := dbFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: export takes one ACCOUNT", errUsage)
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := accounts.Export(ctx, st, pos[0], *secrets)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}
