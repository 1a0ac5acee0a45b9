package main

import (
	"context"
	"log/slog"
	"sync"
)

// lazyHandler defers WithAttrs and WithGroup to the first record that is
// actually handled. Every call derives child loggers (the call, each leg,
// each RTP session and relay direction) and slog's text handler formats
// their attributes at once: a few KB and a dozen allocations per call for
// lines that at the usual info or warn level are mostly never written.
//
// Its level must not depend on attributes (true of slog's text and JSON
// handlers): Enabled asks the root handler.
type lazyHandler struct {
	root   slog.Handler
	parent *lazyHandler // nil for the root
	attrs  []slog.Attr
	group  string

	once sync.Once
	h    slog.Handler // the derived handler, once made
}

var _ slog.Handler = (*lazyHandler)(nil)

func newLazyHandler(h slog.Handler) *lazyHandler {
	return &lazyHandler{root: h, h: h}
}

func (l *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.root.Enabled(ctx, level)
}

func (l *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.handler().Handle(ctx, r)
}

func (l *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return l
	}
	return &lazyHandler{root: l.root, parent: l, attrs: attrs}
}

func (l *lazyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	return &lazyHandler{root: l.root, parent: l, group: name}
}

// handler derives the real handler from the parent's, once.
func (l *lazyHandler) handler() slog.Handler {
	if l.parent == nil {
		return l.h
	}
	l.once.Do(func() {
		p := l.parent.handler()
		if l.group != "" {
			l.h = p.WithGroup(l.group)
		} else {
			l.h = p.WithAttrs(l.attrs)
		}
	})
	return l.h
}
