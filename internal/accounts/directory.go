// Package accounts is the node's room for the accounts it serves: the
// compiled routing snapshots, prompts and config versions, kept current
// from the store (reload and watch), the indexes that classify a request
// (which account owns a number, a SIP domain, a trunk address), the
// reputation inputs of SPEC §3 that need state (the account's list, the
// flood guard), and the account operations that the command line and the
// API share (validate, apply, export, explain).
//
// The SIP server, the API and later SMS and events all read the same
// Directory; none of them keeps account state of its own.
package accounts

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// Store is what the directory reads.
type Store interface {
	Accounts(ctx context.Context) ([]string, error)
	LoadConfig(ctx context.Context, account string) (*config.Document, int64, error)
	WatchConfig(ctx context.Context, interval time.Duration, changed func(account string, version int64)) error
	ReputationList
	PeekRotation(ctx context.Context, account, extension string) (uint64, error)
}

// Account is one account as the node serves it: immutable once published.
type Account struct {
	Snap    *routing.Snapshot
	Prompts *prompt.Library // nil when none loaded
	Version int64
}

// Config configures a Directory.
type Config struct {
	Store Store
	// TTS renders say: prompts (default espeak-ng).
	TTS prompt.TTS
	Log *slog.Logger
	// Now is the clock of the flood guard (default time.Now).
	Now func() time.Time
	// Flood counts the calls for the flood guard (default: this process's
	// own, LocalFlood); nodes sharing a database share it (SharedFlood).
	Flood FloodCounter
}

// Directory holds every account the node serves.
type Directory struct {
	cfg  Config
	view atomic.Pointer[View]
	// Screener applies the account's reputation list and the node's flood
	// guard to the calls of every account.
	*Screener

	mu       sync.Mutex // serialises reloads
	accounts map[string]*Account
}

// New returns an empty directory; LoadAll fills it.
func New(cfg Config) *Directory {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.TTS == nil {
		cfg.TTS = prompt.ESpeak{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Flood == nil {
		cfg.Flood = LocalFlood(routing.NewFloodGuard())
	}
	d := &Directory{cfg: cfg, accounts: map[string]*Account{},
		Screener: &Screener{List: cfg.Store, Flood: cfg.Flood, Now: cfg.Now, Log: cfg.Log}}
	d.view.Store(buildView(map[string]*Account{}))
	return d
}

// View returns the current index of every account; it is immutable, and a
// configuration change publishes a new one.
func (d *Directory) View() *View { return d.view.Load() }

// LoadAll compiles every account in the store.
func (d *Directory) LoadAll(ctx context.Context) error {
	names, err := d.cfg.Store.Accounts(ctx)
	if err != nil {
		return err
	}
	for _, a := range names {
		d.Reload(ctx, a, -1)
	}
	return nil
}

// Reload compiles one account's configuration and publishes it, unless
// version (>= 0) is the one served already. A document that does not
// compile leaves the previous snapshot serving; an account gone from the
// store is removed.
func (d *Directory) Reload(ctx context.Context, account string, version int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.accounts[account]; ok && version >= 0 && a.Version == version {
		return
	}
	doc, v, err := d.cfg.Store.LoadConfig(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		delete(d.accounts, account)
		d.view.Store(buildView(maps.Clone(d.accounts)))
		return
	}
	if err != nil {
		d.cfg.Log.Error("load config", "account", account, "err", err)
		return
	}
	snap, err := routing.Compile(doc)
	if err != nil {
		d.cfg.Log.Error("compile config: keeping the previous one", "account", account, "version", v, "err", err)
		return
	}
	lib, err := prompt.Load(ctx, doc, "", d.cfg.TTS)
	if err != nil {
		d.cfg.Log.Error("prompts: calls will go on without these", "account", account, "err", err)
	}
	d.accounts[account] = &Account{Snap: snap, Prompts: lib, Version: v}
	d.view.Store(buildView(maps.Clone(d.accounts)))
	d.cfg.Log.Info("configuration loaded", "account", account, "version", v, "numbers", snap.Len())
}

// Watch keeps the directory current until ctx ends: an account is
// recompiled when its version changes (polling, plus LISTEN/NOTIFY on
// PostgreSQL).
func (d *Directory) Watch(ctx context.Context) {
	for ctx.Err() == nil {
		err := d.cfg.Store.WatchConfig(ctx, time.Second, func(account string, version int64) {
			d.Reload(ctx, account, version)
		})
		if ctx.Err() != nil {
			return
		}
		d.cfg.Log.Error("config watch stopped; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// View indexes every account a node serves, for classifying requests.
type View struct {
	accounts map[string]*Account
	numbers  map[string]string // E.164 -> account
	domains  map[string]string // SIP domain (lower case) -> account
	trunks   []trunkSource     // sorted by account, trunk, prefix
}

type trunkSource struct {
	prefix  netip.Prefix
	account string
	trunk   string
}

func buildView(accounts map[string]*Account) *View {
	v := &View{accounts: accounts, numbers: map[string]string{}, domains: map[string]string{}}
	// In name order, and the first claim wins: nothing stops two accounts
	// from configuring the same number or domain, and which one serves it
	// must not depend on map order.
	for _, name := range slices.Sorted(maps.Keys(accounts)) {
		a := accounts[name]
		doc := a.Snap.Doc()
		for n := range doc.Numbers {
			if _, taken := v.numbers[n]; !taken {
				v.numbers[n] = name
			}
		}
		if d := strings.ToLower(Domain(doc)); v.domains[d] == "" {
			v.domains[d] = name
		}
		for trunk, t := range doc.Trunks {
			for _, src := range t.InboundFrom {
				p, err := netip.ParsePrefix(src)
				if err != nil {
					a, err := netip.ParseAddr(src)
					if err != nil {
						continue
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				v.trunks = append(v.trunks, trunkSource{prefix: p.Masked(), account: name, trunk: trunk})
			}
		}
	}
	slices.SortFunc(v.trunks, func(a, b trunkSource) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.trunk, b.trunk),
			cmp.Compare(a.prefix.String(), b.prefix.String()))
	})
	return v
}

// Domain is the SIP domain of an account (SPEC §1: default the account name).
func Domain(doc *config.Document) string {
	if doc.Domain != "" {
		return doc.Domain
	}
	return doc.Account
}

// Account returns an account by name.
func (v *View) Account(name string) (*Account, bool) {
	a, ok := v.accounts[name]
	return a, ok
}

// Names returns the accounts served, sorted.
func (v *View) Names() []string { return slices.Sorted(maps.Keys(v.accounts)) }

// ByDomain returns the account whose SIP domain is domain (any case).
func (v *View) ByDomain(domain string) (*Account, bool) {
	name, ok := v.domains[strings.ToLower(domain)]
	if !ok {
		return nil, false
	}
	return v.accounts[name], true
}

// IsTrunk reports whether ip is an inbound_from address of any account's trunk.
func (v *View) IsTrunk(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, t := range v.trunks {
		if t.prefix.Contains(ip) {
			return true
		}
	}
	return false
}

// TrunkMatch is the account and trunk a request from a trunk address
// belongs to.
type TrunkMatch struct {
	Account *Account
	Trunk   string
}

// FromTrunk returns the account and trunk that a call from ip to the
// called number belongs to. A trunk address shared by several accounts is
// resolved by the number's owner; when the number belongs to none of
// them, the first of them in name order takes the call (so that its 404
// gets a record and a trace), never a random one.
func (v *View) FromTrunk(ip netip.Addr, number string) (TrunkMatch, bool) {
	ip = ip.Unmap()
	owner := ""
	if n, ok := routing.NormalizeNumber(number); ok {
		owner = v.numbers[n]
	}
	var first *trunkSource
	for i := range v.trunks {
		t := &v.trunks[i]
		if !t.prefix.Contains(ip) {
			continue
		}
		if t.account == owner {
			return TrunkMatch{Account: v.accounts[t.account], Trunk: t.trunk}, true
		}
		if first == nil {
			first = t
		}
	}
	if first == nil {
		return TrunkMatch{}, false
	}
	return TrunkMatch{Account: v.accounts[first.account], Trunk: first.trunk}, true
}

// LookupUser implements the registrar's user directory: a user by domain
// and by name or extension number.
func (v *View) LookupUser(domain, username string) (account, user, password string, ok bool) {
	a, found := v.ByDomain(domain)
	if !found {
		return "", "", "", false
	}
	doc := a.Snap.Doc()
	if u, found := doc.Users[username]; found {
		return doc.Account, username, u.Password, true
	}
	if t, found := a.Snap.LookupCode(username); found {
		if name, isUser := strings.CutPrefix(t, "user:"); isUser {
			return doc.Account, name, doc.Users[name].Password, true
		}
	}
	return "", "", "", false
}
