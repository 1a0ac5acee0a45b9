package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// The account operations of SPEC §2 and §6, shared by the command line and
// the API: one implementation of each, whatever the front door.

// ErrUnknownAccount is returned for an account the store does not hold
// (wrapped: `account "acme" not found`).
var ErrUnknownAccount = errors.New("not found")

// ConfigStore is what the configuration operations read and write.
type ConfigStore interface {
	LoadConfig(ctx context.Context, account string) (*config.Document, int64, error)
	ApplyConfig(ctx context.Context, doc *config.Document) (int64, error)
}

// ExplainStore is what Explain reads besides the configuration.
type ExplainStore interface {
	LoadConfig(ctx context.Context, account string) (*config.Document, int64, error)
	Reputation(ctx context.Context, account, caller string) (config.Level, error)
	PeekRotation(ctx context.Context, account, extension string) (uint64, error)
}

// ValidateFile reads and validates a configuration file. Prompt files are
// resolved against the file's directory, as apply stores them. The error
// lists every problem, one per line, each with its path.
func ValidateFile(file string) (*config.Document, error) {
	doc, err := config.LoadFile(file)
	if err != nil {
		return nil, fileErr(file, err)
	}
	doc.ResolvePaths(filepath.Dir(file))
	return doc, nil
}

// fileErr prefixes validation errors, one per line, with the file name.
func fileErr(file string, err error) error {
	if fields := config.Fields(err); fields != nil {
		msg := fmt.Sprintf("%s: %d errors", file, len(fields))
		if len(fields) == 1 {
			msg = file + ": 1 error"
		}
		for _, f := range fields {
			msg += "\n  " + f.Error()
		}
		return errors.New(msg)
	}
	return err
}

// Apply replaces the account's whole configuration with a validated
// document in one transaction and returns the new version.
func Apply(ctx context.Context, st ConfigStore, doc *config.Document) (int64, error) {
	return st.ApplyConfig(ctx, doc)
}

// Export returns the account's document as YAML, passwords redacted
// unless secrets.
func Export(ctx context.Context, st ConfigStore, account string, secrets bool) ([]byte, error) {
	doc, err := load(ctx, st, account)
	if err != nil {
		return nil, err
	}
	if !secrets {
		doc = doc.Redact()
	}
	return doc.Marshal()
}

func load(ctx context.Context, st interface {
	LoadConfig(ctx context.Context, account string) (*config.Document, int64, error)
}, account string) (*config.Document, error) {
	doc, _, err := st.LoadConfig(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("account %q %w", account, ErrUnknownAccount)
	}
	return doc, err
}

// ExplainDoc explains the routing of req by a document alone (`route -f`):
// no reputation list, no flood history, rotating groups at counter 0.
func ExplainDoc(doc *config.Document, req routing.Request) (*routing.Explanation, error) {
	snap, err := routing.Compile(doc)
	if err != nil {
		return nil, err
	}
	return routing.Explain(snap, &req, nil)
}

// Explain explains the routing of req by an account in the store (`route
// --account`): the account's reputation list applies and rotating groups
// show their next start without advancing. It has no flood history: that
// lives in a running node (Directory.Explain).
func Explain(ctx context.Context, st ExplainStore, account string, req routing.Request) (*routing.Explanation, error) {
	doc, err := load(ctx, st, account)
	if err != nil {
		return nil, err
	}
	snap, err := routing.Compile(doc)
	if err != nil {
		return nil, err
	}
	sc := &Screener{List: st, Log: slog.Default()}
	return explain(ctx, sc, snap, req, st.PeekRotation)
}

// Explain explains the routing of req by an account as this node serves
// it: the reputation list and the node's flood guard apply exactly as they
// would to a call placed now, and rotating groups show their next start
// without advancing.
func (d *Directory) Explain(ctx context.Context, account string, req routing.Request) (*routing.Explanation, error) {
	a, ok := d.View().Account(account)
	if !ok {
		return nil, fmt.Errorf("account %q %w", account, ErrUnknownAccount)
	}
	return explain(ctx, d.Screener, a.Snap, req, d.cfg.Store.PeekRotation)
}

func explain(ctx context.Context, sc *Screener, snap *routing.Snapshot, req routing.Request, peek func(ctx context.Context, account, extension string) (uint64, error)) (*routing.Explanation, error) {
	notes := sc.Screen(ctx, snap.Account(), &req, false)
	ex, err := routing.Explain(snap, &req, func(ext string) (uint64, error) { return peek(ctx, snap.Account(), ext) })
	if err != nil {
		return nil, err
	}
	ex.Trace = append(notes, ex.Trace...)
	return ex, nil
}

// HistoryStore is what Rollback reads and writes.
type HistoryStore interface {
	ConfigAt(ctx context.Context, account string, version int64) (*config.Document, store.ConfigVersion, error)
	PutConfig(ctx context.Context, doc *config.Document, ch store.Change) (int64, error)
}

// Rollback makes an earlier version of the account's configuration the
// current one, as a new version written as ch says (author, If-Match):
// history is only ever added to.
// The old document is validated again first (a prompt file it names may be
// gone).
func Rollback(ctx context.Context, st HistoryStore, account string, version int64, ch store.Change) (int64, error) {
	doc, _, err := st.ConfigAt(ctx, account, version)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("account %q has no version %d: %w", account, version, err)
	}
	if err != nil {
		return 0, err
	}
	if err := doc.Validate(""); err != nil {
		return 0, err
	}
	if _, err := routing.Compile(doc); err != nil {
		return 0, err
	}
	return st.PutConfig(ctx, doc, ch)
}
