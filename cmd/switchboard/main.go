// Command switchboard is the Switchboard call-routing server and its tools:
// configuration as code (validate, apply, export), the routing explainer
// (route), API tokens and the demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/switchboard/switchboard/internal/store"
)

const usage = `Switchboard routes the calls and messages that reach a business's phone numbers.

Usage:
  switchboard serve [--db URL] [--sip ADDR] [--http ADDR] [--config FILE]
                    [--drain-timeout D] [--rtp-timeout D] [--rtp-ports LO-HI] [--media-ip IP]
  switchboard demo [--once]                   sample account, sample calls, explained
  switchboard validate -f FILE                check a configuration file
  switchboard apply -f FILE [--db URL]        replace an account's configuration
  switchboard plan -f FILE [--db URL]         show what apply would change (exit 0: none, 2: changes)
  switchboard export ACCOUNT [--secrets] [--db URL]
  switchboard route (-f FILE | --account A [--db URL]) --number N --from C
                    [--name S] [--reputation LEVEL] [--captcha pass|fail] [--json]
  switchboard history ACCOUNT [--db URL]     every configuration version, newest first
  switchboard rollback ACCOUNT VERSION [--db URL]
  switchboard token create (--account A | --admin) [--name N] [--read-only] [--db URL]
  switchboard token list [--account A] [--db URL]
  switchboard token revoke ID [--db URL]

--db defaults to $SWITCHBOARD_DB, else ` + store.DefaultURL + `
`

// errUsage marks command-line mistakes: exit status 2 instead of 1.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer) error{
		"validate": cmdValidate,
		"apply":    cmdApply,
		"plan":     cmdPlan,
		"export":   cmdExport,
		"route":    cmdRoute,
		"token":    cmdToken,
		"history":  cmdHistory,
		"rollback": cmdRollback,
		"demo":     cmdDemo,
		"serve":    cmdServe,
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n%s", name, usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		var h *helpText
		if errors.As(err, &h) {
			fmt.Fprintf(stdout, "Usage of switchboard %s:\n%s", name, h.flags)
		}
		return 0
	case errors.Is(err, errChanges):
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "switchboard %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "switchboard %s: %v\n", name, err)
		return 1
	}
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args, turning flag errors into usage errors. Positional
// arguments may come before or after the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				var b strings.Builder
				fs.SetOutput(&b)
				fs.PrintDefaults()
				fs.SetOutput(io.Discard)
				return nil, &helpText{flags: b.String()}
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// helpText is -h's answer: the command's flags and what they do.
type helpText struct{ flags string }

func (h *helpText) Error() string { return "help requested" }
func (h *helpText) Unwrap() error { return flag.ErrHelp }

// dbFlag registers --db with its environment default.
func dbFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("SWITCHBOARD_DB")
	if def == "" {
		def = store.DefaultURL
	}
	return fs.String("db", def, "database URL: sqlite:PATH or postgres://...")
}
