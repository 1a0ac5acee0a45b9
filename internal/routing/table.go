package routing

import (
	"sync"
	"sync/atomic"
)

// Table holds the current snapshot of every account a node serves. Reads
// are lock-free (a call looks up its account's snapshot once); a
// configuration change compiles a new snapshot and stores it, and calls in
// progress keep the one they loaded. The zero Table is ready to use.
type Table struct {
	mu       sync.Mutex // serialises Store and Delete, so neither is lost to the other
	accounts sync.Map   // account -> *atomic.Pointer[Snapshot]
}

// Load returns the account's current snapshot, or nil if it has none.
func (t *Table) Load(account string) *Snapshot {
	p, ok := t.accounts.Load(account)
	if !ok {
		return nil
	}
	return p.(*atomic.Pointer[Snapshot]).Load()
}

// Store makes s the account's current snapshot. Storing nil deletes it.
func (t *Table) Store(account string, s *Snapshot) {
	if s == nil {
		t.Delete(account)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.accounts.Load(account)
	if !ok {
		p = new(atomic.Pointer[Snapshot])
		t.accounts.Store(account, p)
	}
	p.(*atomic.Pointer[Snapshot]).Store(s)
}

// Delete removes the account's snapshot.
func (t *Table) Delete(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accounts.Delete(account)
}

// Accounts returns the names of the accounts that have a snapshot, in no
// particular order.
func (t *Table) Accounts() []string {
	var out []string
	t.accounts.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	return out
}
