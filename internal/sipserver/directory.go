package sipserver

import (
	"net/netip"
	"strings"

	"github.com/switchboard/switchboard/internal/prompt"
	"github.com/switchboard/switchboard/internal/routing"
)

// directory indexes every account a node serves, for classifying requests:
// which account owns a number, a SIP domain, a trunk source address. It is
// rebuilt on every configuration change and swapped atomically.
type directory struct {
	snaps   map[string]*routing.Snapshot // account -> snapshot
	prompts map[string]*prompt.Library   // account -> its prompts
	numbers map[string]string            // E.164 -> account
	domains map[string]string            // SIP domain (lower case) -> account
	trunks  []trunkSource
}

type trunkSource struct {
	prefix  netip.Prefix
	account string
	trunk   string
}

func buildDirectory(snaps map[string]*routing.Snapshot, prompts map[string]*prompt.Library) *directory {
	d := &directory{
		snaps:   snaps,
		prompts: prompts,
		numbers: map[string]string{},
		domains: map[string]string{},
	}
	for acct, s := range snaps {
		doc := s.Doc()
		for n := range doc.Numbers {
			d.numbers[n] = acct
		}
		domain := doc.Domain
		if domain == "" {
			domain = doc.Account
		}
		d.domains[strings.ToLower(domain)] = acct
		for name, t := range doc.Trunks {
			for _, src := range t.InboundFrom {
				p, err := netip.ParsePrefix(src)
				if err != nil {
					a, err := netip.ParseAddr(src)
					if err != nil {
						continue
					}
					p = netip.PrefixFrom(a, a.BitLen())
				}
				d.trunks = append(d.trunks, trunkSource{prefix: p.Masked(), account: acct, trunk: name})
			}
		}
	}
	return d
}

// trunkAccounts returns the accounts that accept ip as one of their trunks.
func (d *directory) trunkAccounts(ip netip.Addr) map[string]string {
	var out map[string]string
	ip = ip.Unmap()
	for _, t := range d.trunks {
		if t.prefix.Contains(ip) {
			if out == nil {
				out = map[string]string{}
			}
			out[t.account] = t.trunk
		}
	}
	return out
}

// LookupUser implements registrar.Users: a user by domain and by name or
// extension number.
func (d *directory) LookupUser(domain, username string) (account, user, password string, ok bool) {
	acct, found := d.domains[strings.ToLower(domain)]
	if !found {
		return "", "", "", false
	}
	doc := d.snaps[acct].Doc()
	if u, found := doc.Users[username]; found {
		return acct, username, u.Password, true
	}
	for name, u := range doc.Users {
		if u.Extension != "" && u.Extension == username {
			return acct, name, u.Password, true
		}
	}
	return "", "", "", false
}
