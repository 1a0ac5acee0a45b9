package registrar

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// Nonces are stateless: version | issue time (Unix ms) | random | HMAC tag
// over those and the realm, base64url. Any node that shares the secret can
// check one without a database round trip, and an old one is recognised as
// stale without having been remembered.
const (
	nonceVersion = 1
	nonceTagLen  = 16
	nonceRawLen  = 1 + 8 + 8 + nonceTagLen
	// nonceSkew tolerates clocks of nodes that are slightly ahead.
	nonceSkew = 30 * time.Second
)

type nonceSigner struct {
	key []byte
}

func (s nonceSigner) tag(body []byte, realm string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(body)
	m.Write([]byte(strings.ToLower(realm)))
	return m.Sum(nil)[:nonceTagLen]
}

// issue makes a nonce for realm at now.
func (s nonceSigner) issue(realm string, now time.Time) string {
	raw := make([]byte, nonceRawLen)
	raw[0] = nonceVersion
	binary.BigEndian.PutUint64(raw[1:9], uint64(now.UnixMilli()))
	_, _ = rand.Read(raw[9:17]) // crypto/rand never fails on supported platforms
	copy(raw[17:], s.tag(raw[:17], realm))
	return base64.RawURLEncoding.EncodeToString(raw)
}

// check verifies that nonce was issued by us for realm and returns its issue
// time. It returns ErrInvalidNonce for a forged, mangled or foreign nonce and
// ErrStaleNonce (with the issue time) when it is older than ttl.
func (s nonceSigner) check(nonce, realm string, now time.Time, ttl time.Duration) (time.Time, error) {
	if base64.RawURLEncoding.DecodedLen(len(nonce)) != nonceRawLen {
		return time.Time{}, ErrInvalidNonce
	}
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen || raw[0] != nonceVersion {
		return time.Time{}, ErrInvalidNonce
	}
	if !hmac.Equal(raw[17:], s.tag(raw[:17], realm)) {
		return time.Time{}, ErrInvalidNonce
	}
	ms := binary.BigEndian.Uint64(raw[1:9])
	if ms > 1<<62 {
		return time.Time{}, ErrInvalidNonce
	}
	issued := time.UnixMilli(int64(ms))
	if issued.After(now.Add(nonceSkew)) {
		return time.Time{}, ErrInvalidNonce
	}
	if now.Sub(issued) > ttl {
		return issued, ErrStaleNonce
	}
	return issued, nil
}

// ncTracker remembers the highest nonce count used with each nonce, for
// replay protection. Memory is bounded: entries go when their nonce expires,
// and when the table is full the oldest entry is evicted and the "floor"
// raised, so a nonce issued before the floor that we no longer remember is
// answered as stale (the client simply gets a new nonce) instead of letting
// its nc history start over.
type ncTracker struct {
	mu    sync.Mutex
	max   int
	seen  map[string]ncEntry
	order []string // nonces in first-use order; order[head:] is live
	head  int
	floor time.Time
}

type ncEntry struct {
	issued time.Time
	nc     uint32
}

func newNCTracker(max int) *ncTracker {
	return &ncTracker{max: max, seen: make(map[string]ncEntry)}
}

// use records nc for nonce (issued at issued) and fails if it does not
// strictly increase.
func (t *ncTracker) use(nonce string, issued time.Time, nc uint32, now time.Time, ttl time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Drop expired entries from the front; first use roughly follows issue
	// order, so this keeps the table near the live set.
	for t.head < len(t.order) {
		e, ok := t.seen[t.order[t.head]]
		if ok && now.Sub(e.issued) <= ttl {
			break
		}
		delete(t.seen, t.order[t.head])
		t.order[t.head] = ""
		t.head++
	}
	if e, ok := t.seen[nonce]; ok {
		if nc <= e.nc {
			return ErrNonceReplay
		}
		e.nc = nc
		t.seen[nonce] = e
		return nil
	}
	if !issued.After(t.floor) {
		return ErrStaleNonce
	}
	for len(t.seen) >= t.max && t.head < len(t.order) {
		old := t.order[t.head]
		if e, ok := t.seen[old]; ok && e.issued.After(t.floor) {
			t.floor = e.issued
		}
		delete(t.seen, old)
		t.order[t.head] = ""
		t.head++
	}
	if !issued.After(t.floor) {
		// Evicting raised the floor past this nonce.
		return ErrStaleNonce
	}
	t.seen[nonce] = ncEntry{issued: issued, nc: nc}
	t.order = append(t.order, nonce)
	if t.head > 1024 && t.head > len(t.order)/2 {
		t.order = append([]string(nil), t.order[t.head:]...)
		t.head = 0
	}
	return nil
}

// len reports the number of remembered nonces.
func (t *ncTracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}
