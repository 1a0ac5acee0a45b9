package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// The lazy handler writes what the text handler writes, with the same
// attributes and groups, and only for enabled levels.
func TestLazyHandler(t *testing.T) {
	logs := func(log *slog.Logger) {
		call := log.With("call_id", "c1", "sip_call_id", "x@y")
		leg := call.With("leg", "sip:b@h").WithGroup("rtp").With("port", 20000)
		call.Info("call ended", "outcome", "routed")
		leg.Warn("latched", "source", "127.0.0.1:4000")
		leg.Debug("hidden")
		call.WithGroup("").With().Error("plain")
	}
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	var want, got bytes.Buffer
	logs(slog.New(slog.NewTextHandler(&want, opts)))
	logs(slog.New(newLazyHandler(slog.NewTextHandler(&got, opts))))
	if got.String() != want.String() {
		t.Errorf("lazy handler wrote\n%s\nwant\n%s", got.String(), want.String())
	}
	if strings.Contains(got.String(), "hidden") || !strings.Contains(got.String(), "rtp.port=20000") {
		t.Errorf("unexpected output:\n%s", got.String())
	}
}
