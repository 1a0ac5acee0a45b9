package registrar

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestNonceSigner(t *testing.T) {
	s := nonceSigner{key: []byte("0123456789abcdef")}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ttl := 5 * time.Minute
	n := s.issue("acme.test", now)
	if n2 := s.issue("acme.test", now); n == n2 {
		t.Fatal("two nonces are equal")
	}
	if issued, err := s.check(n, "ACME.test", now.Add(ttl), ttl); err != nil || !issued.Equal(now) {
		t.Fatalf("check = %v, %v", issued, err)
	}
	// Another node with the same secret accepts it.
	if _, err := (nonceSigner{key: []byte("0123456789abcdef")}).check(n, "acme.test", now, ttl); err != nil {
		t.Fatalf("other node: %v", err)
	}
	for name, tc := range map[string]struct {
		nonce, realm string
		signer       nonceSigner
		at           time.Time
		want         error
	}{
		"stale":        {n, "acme.test", s, now.Add(ttl + time.Millisecond), ErrStaleNonce},
		"other realm":  {n, "other.test", s, now, ErrInvalidNonce},
		"other secret": {n, "acme.test", nonceSigner{key: []byte("fedcba9876543210")}, now, ErrInvalidNonce},
		"future":       {n, "acme.test", s, now.Add(-time.Minute), ErrInvalidNonce},
		"truncated":    {n[:len(n)-1], "acme.test", s, now, ErrInvalidNonce},
		"tampered":     {"B" + n[1:], "acme.test", s, now, ErrInvalidNonce},
		"empty":        {"", "acme.test", s, now, ErrInvalidNonce},
		"not base64":   {"!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "acme.test", s, now, ErrInvalidNonce},
		"garbage long": {n + n, "acme.test", s, now, ErrInvalidNonce},
	} {
		if _, err := tc.signer.check(tc.nonce, tc.realm, tc.at, ttl); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestNCTracker(t *testing.T) {
	ttl := 5 * time.Minute
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := newNCTracker(3)
	use := func(nonce string, issued time.Time, nc uint32) error {
		return tr.use(nonce, issued, nc, now, ttl)
	}
	if err := use("a", now, 1); err != nil {
		t.Fatal(err)
	}
	if err := use("a", now, 1); !errors.Is(err, ErrNonceReplay) {
		t.Fatalf("replay: %v", err)
	}
	if err := use("a", now, 5); err != nil {
		t.Fatal(err)
	}
	if err := use("a", now, 4); !errors.Is(err, ErrNonceReplay) {
		t.Fatalf("lower nc: %v", err)
	}
	// Filling the table evicts the oldest and forgets it safely: its nonce
	// is then answered as stale rather than accepted afresh.
	for i := 1; i <= 3; i++ {
		if err := use(fmt.Sprint("n", i), now.Add(time.Duration(i)*time.Second), 1); err != nil {
			t.Fatal(err)
		}
	}
	if tr.len() != 3 {
		t.Fatalf("len = %d, want 3", tr.len())
	}
	if err := use("a", now, 6); !errors.Is(err, ErrStaleNonce) {
		t.Fatalf("evicted nonce: %v, want stale", err)
	}
	if err := use("n3", now.Add(3*time.Second), 1); !errors.Is(err, ErrNonceReplay) {
		t.Fatalf("n3 replay: %v", err)
	}
	// Entries go away once their nonce has expired.
	now = now.Add(ttl + 10*time.Second)
	if err := use("fresh", now, 1); err != nil {
		t.Fatal(err)
	}
	if tr.len() != 1 {
		t.Fatalf("len after expiry = %d, want 1", tr.len())
	}
	// Bounded under load.
	tr = newNCTracker(100)
	for i := range 10000 {
		_ = tr.use(fmt.Sprint(i), now.Add(time.Duration(i)*time.Millisecond), 1, now.Add(10*time.Second), ttl)
	}
	if tr.len() > 100 || len(tr.order)-tr.head > 100 || len(tr.order) > 2200 {
		t.Fatalf("len %d, order %d (head %d)", tr.len(), len(tr.order), tr.head)
	}
}
