package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/switchboard/switchboard/examples"
	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/demo"
	"github.com/switchboard/switchboard/internal/node"
	"github.com/switchboard/switchboard/internal/store"
)

// cmdDemo starts a real server on loopback with the sample account and a
// throw-away database, registers simulated phones, places the sample calls
// over SIP and prints what happened to each; then it keeps the server up
// until Ctrl-C (--once: exits).
func cmdDemo(ctx context.Context, args []string, out io.Writer) error {
	fset := newFlags("demo")
	once := fset.Bool("once", false, "exit after the sample calls")
	httpAddr := fset.String("http", "127.0.0.1:8080", "HTTP address (health, metrics); a free port if taken")
	verbose := fset.Bool("v", false, "log the server's activity")
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
	doc, err := accounts.ValidateFile(filepath.Join(dir, "acme.yaml"))
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		n, err := demo.ToneForSpeech(doc, dir)
		if err != nil {
			return err
		}
		if n > 0 {
			fmt.Fprintf(out, "espeak-ng is not installed: the sample's %d spoken prompt(s) play a short tone instead\n", n)
		}
	}
	world, err := demo.NewWorld(ctx, doc)
	if err != nil {
		return err
	}
	defer world.Close()
	cfgFile := filepath.Join(dir, "demo.yaml")
	b, err := doc.Marshal()
	if err == nil {
		err = os.WriteFile(cfgFile, b, 0o600)
	}
	if err != nil {
		return err
	}
	if l, err := net.Listen("tcp", *httpAddr); err == nil {
		l.Close()
	} else {
		*httpAddr = "127.0.0.1:0"
	}

	level := slog.LevelWarn + 4 // quiet unless -v
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	up := make(chan *node.Node, 1)
	done := make(chan error, 1)
	dbURL := "sqlite:" + filepath.Join(dir, "demo.db")
	go func() {
		done <- serve(sctx, serveOptions{
			db: dbURL, sip: "127.0.0.1:0", http: *httpAddr, config: cfgFile,
			rtpPorts: "17000-17999", drain: 2e9, rtpTimeout: 60e9, recordings: filepath.Join(dir, "recordings"),
		}, log, func(n *node.Node) { up <- n })
	}()
	var n *node.Node
	select {
	case n = <-up:
	case err := <-done:
		return err
	}
	sipAddr := n.SIP.UDPAddr().String()
	fmt.Fprintf(out, "Switchboard demo: account %q on a throw-away SQLite database\n", doc.Account)
	fmt.Fprintf(out, "SIP on %s (UDP and TCP), HTTP on http://%s (/metrics, /healthz)\n", sipAddr, n.HTTPAddr)
	fmt.Fprintf(out, "phones: carrier %s, PSTN %s, users on 127.0.0.1\n\n", demo.CarrierIP, world.PSTN.Addr())

	if err := world.Register(ctx, sipAddr); err != nil {
		return err
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := world.Run(ctx, out, sipAddr, st, demo.Calls); err != nil {
		return err
	}
	secret, _, err := st.NewToken(ctx, doc.Account, "demo", false)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nWeb console: http://%s/ — sign in with account %q and token %s\n", n.HTTPAddr, doc.Account, secret)
	if !*once {
		fmt.Fprintf(out, "\nThe server keeps running: metrics at http://%s/metrics. Ctrl-C to stop.\n", n.HTTPAddr)
		<-ctx.Done()
	}
	stop()
	return <-done
}
