package registrar

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemContacts is an in-memory [Contacts] for tests and single-node use.
// The zero value is not usable; call [NewMemContacts].
type MemContacts struct {
	mu sync.Mutex
	m  map[memKey]map[string]Contact // (account, user) -> URI -> binding
}

type memKey struct{ account, user string }

var _ Contacts = (*MemContacts)(nil)

// NewMemContacts returns an empty store.
func NewMemContacts() *MemContacts {
	return &MemContacts{m: make(map[memKey]map[string]Contact)}
}

// PutContact inserts or replaces the binding (Account, User, URI).
func (s *MemContacts) PutContact(_ context.Context, c Contact) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{c.Account, c.User}
	if s.m[k] == nil {
		s.m[k] = make(map[string]Contact)
	}
	s.m[k][c.URI] = c
	return nil
}

// DeleteContact removes one binding.
func (s *MemContacts) DeleteContact(_ context.Context, account, user, uri string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{account, user}
	delete(s.m[k], uri)
	if len(s.m[k]) == 0 {
		delete(s.m, k)
	}
	return nil
}

// Contacts lists the user's bindings that have not expired at now, ordered by
// URI; expired ones are dropped from memory as a side effect.
func (s *MemContacts) Contacts(_ context.Context, account, user string, now time.Time) ([]Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{account, user}
	var out []Contact
	for uri, c := range s.m[k] {
		if !c.Expires.After(now) {
			delete(s.m[k], uri)
			continue
		}
		out = append(out, c)
	}
	if len(s.m[k]) == 0 {
		delete(s.m, k)
	}
	slices.SortFunc(out, func(a, b Contact) int { return strings.Compare(a.URI, b.URI) })
	return out, nil
}
