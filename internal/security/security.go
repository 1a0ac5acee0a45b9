// Package security defines Switchboard's security events: one structured
// log line per event, in a fixed format that deploy/fail2ban's filter
// matches, and a count of each kind for /metrics. It does no I/O of its
// own: events go to the logger they are given.
//
// An event is logged at WARN as
//
//	msg="security event" event=KIND source=ADDR [key=value ...]
//
// with the text handler (and the same keys with the JSON one). KIND is one
// of the Kind constants; ADDR is the IP address the request came from.
package security

import (
	"context"
	"log/slog"
	"net/netip"
)

// Msg is the message of every security event's log record.
const Msg = "security event"

// Kind names a class of security event.
type Kind string

// The kinds of event, as they appear after event=.
const (
	// AuthFailure: a request's digest credentials were wrong (or named a
	// user that does not exist: the two are not told apart).
	AuthFailure Kind = "auth_failure"
	// Lockout: a source failed authentication too often and is refused
	// for a while, for every method.
	Lockout Kind = "lockout"
	// Ban: a source sent requests faster than its limit and is ignored
	// for a while.
	Ban Kind = "ban"
	// ScannerDropped: a request from a known scanner's User-Agent was
	// dropped without an answer.
	ScannerDropped Kind = "scanner_dropped"
	// TollFraud: an outbound call or message was refused: a destination
	// not allowed, a source neither trunk nor registered user, or an
	// account's cap on outbound calls reached.
	TollFraud Kind = "toll_fraud"
)

// Kinds lists every kind, in the order /metrics shows them.
var Kinds = []Kind{AuthFailure, Lockout, Ban, ScannerDropped, TollFraud}

// Log writes one security event of kind from source to l, with extra
// key-value attributes after the source.
func Log(l *slog.Logger, kind Kind, source netip.Addr, args ...any) {
	attrs := append([]any{slog.String("event", string(kind)), slog.String("source", sourceString(source))}, args...)
	l.Log(context.Background(), slog.LevelWarn, Msg, attrs...)
}

func sourceString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.Unmap().String()
}

func known(kind Kind) bool {
	for _, k := range Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Counting returns a handler that passes records on to h and calls count
// for each security event among them, whatever h's level: a node logging
// only errors still counts every event.
func Counting(h slog.Handler, count func(Kind)) slog.Handler {
	return &counting{h: h, count: count}
}

type counting struct {
	h     slog.Handler
	count func(Kind)
}

func (c *counting) Enabled(ctx context.Context, level slog.Level) bool {
	return level == slog.LevelWarn || c.h.Enabled(ctx, level)
}

func (c *counting) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && r.Message == Msg {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "event" {
				return true
			}
			if k := Kind(a.Value.String()); known(k) {
				c.count(k)
			}
			return false
		})
	}
	if !c.h.Enabled(ctx, r.Level) {
		return nil
	}
	return c.h.Handle(ctx, r)
}

func (c *counting) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &counting{h: c.h.WithAttrs(attrs), count: c.count}
}

func (c *counting) WithGroup(name string) slog.Handler {
	return &counting{h: c.h.WithGroup(name), count: c.count}
}
