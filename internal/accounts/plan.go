package accounts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
)

// Op is the kind of a change.
type Op byte

// The kinds of change.
const (
	Added   Op = '+'
	Removed Op = '-'
	Changed Op = '~'
)

// String returns the op's sign.
func (o Op) String() string { return string(rune(o)) }

// Secret stands in for a password in a Change: secrets are compared, never shown.
const Secret = "(secret)"

// Change is one difference between two documents.
type Change struct {
	Op   Op
	Path string // as validation errors write it: numbers["+34910000000"].rules[0].prefix
	// Old and New are JSON values (nil when absent); a password is Secret.
	Old, New any
}

// Plan returns the changes that applying doc would make to its account's
// stored configuration. An account the store does not hold is new: every
// object is added. Nothing is written.
func Plan(ctx context.Context, st interface {
	LoadConfig(ctx context.Context, account string) (*config.Document, int64, error)
}, doc *config.Document) ([]Change, error) {
	old, err := load(ctx, st, doc.Account)
	if err != nil && !errors.Is(err, ErrUnknownAccount) {
		return nil, err
	}
	return Diff(old, doc), nil
}

// Diff returns the changes that turn old into new, in path order (map keys
// sorted, list indexes in numeric order). old may be nil: a new account,
// every object is added.
//
// Both documents are compared in their JSON form, so a field left out and
// a field set to its zero value are the same. The sections (users,
// numbers, ...) are maps of named objects: an object on one side only is
// one change for the whole object; on both sides, it is compared field by
// field. Rules are compared by index. A list of scalars (members, tags)
// that differs is one change. Passwords are compared but shown as Secret;
// a password left as config.Redacted in new keeps the stored one, as apply
// does, so it is no change.
func Diff(old, new *config.Document) []Change {
	o, n := generic(old), generic(new)
	keepRedacted(o, n)
	d := &differ{}
	// The top level is the account itself: its sections and defaults are
	// always compared member by member, even when one side has none.
	for _, k := range unionKeys(o, n) {
		ov, nv := o[k], n[k]
		om, oIsMap := ov.(map[string]any)
		nm, nIsMap := nv.(map[string]any)
		if (oIsMap || ov == nil) && (nIsMap || nv == nil) && (oIsMap || nIsMap) {
			d.object(k, om, nm)
			continue
		}
		d.value(k, ov, nv)
	}
	return d.changes
}

// generic returns the document's JSON form as generic maps; nil is empty.
func generic(doc *config.Document) map[string]any {
	m := map[string]any{}
	if doc == nil {
		return m
	}
	b, err := json.Marshal(doc)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		// A Document holds only strings, numbers, booleans, lists and maps.
		panic(fmt.Sprintf("accounts: document does not round-trip through JSON: %v", err))
	}
	return m
}

// keepRedacted replaces in n every password left as config.Redacted by the
// stored one in o, so that it compares equal. A redacted password with no
// stored one stays: apply refuses it, and plan shows it as added.
func keepRedacted(o, n map[string]any) {
	for _, section := range []string{"users", "trunks"} {
		news, _ := n[section].(map[string]any)
		olds, _ := o[section].(map[string]any)
		for name, v := range news {
			obj, _ := v.(map[string]any)
			if obj["password"] != config.Redacted {
				continue
			}
			if prev, _ := olds[name].(map[string]any); prev["password"] != nil {
				obj["password"] = prev["password"]
			}
		}
	}
}

type differ struct{ changes []Change }

func (d *differ) add(op Op, path string, old, new any) {
	d.changes = append(d.changes, Change{Op: op, Path: path, Old: hide(path, old), New: hide(path, new)})
}

// object compares two objects field by field (or two maps key by key).
func (d *differ) object(path string, old, new map[string]any) {
	for _, k := range unionKeys(old, new) {
		d.value(key(path, k), old[k], new[k])
	}
}

// value compares two JSON values at path; nil is absent.
func (d *differ) value(path string, old, new any) {
	ol, oIsList := old.([]any)
	nl, nIsList := new.([]any)
	if (oIsList || old == nil) && (nIsList || new == nil) && (hasObjects(ol) || hasObjects(nl)) {
		d.list(path, ol, nl)
		return
	}
	switch {
	case old == nil && new == nil:
	case old == nil:
		d.add(Added, path, nil, new)
	case new == nil:
		d.add(Removed, path, old, nil)
	default:
		om, oIsMap := old.(map[string]any)
		nm, nIsMap := new.(map[string]any)
		if oIsMap && nIsMap {
			d.object(path, om, nm)
		} else if !reflect.DeepEqual(old, new) {
			d.add(Changed, path, old, new)
		}
	}
}

// list compares a list of objects index by index.
func (d *differ) list(path string, old, new []any) {
	for i := range max(len(old), len(new)) {
		p := path + "[" + strconv.Itoa(i) + "]"
		switch {
		case i >= len(old):
			d.add(Added, p, nil, new[i])
		case i >= len(new):
			d.add(Removed, p, old[i], nil)
		default:
			d.value(p, old[i], new[i])
		}
	}
}

func hasObjects(l []any) bool {
	return slices.ContainsFunc(l, func(v any) bool { _, ok := v.(map[string]any); return ok })
}

func unionKeys(a, b map[string]any) []string {
	keys := make([]string, 0, max(len(a), len(b)))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// hide replaces a password, or the password inside a user or trunk, by Secret.
func hide(path string, v any) any {
	if v == nil {
		return nil
	}
	if isSecret(path) {
		return Secret
	}
	if m, ok := v.(map[string]any); ok && m["password"] != nil && isSecret(key(path, "password")) {
		c := make(map[string]any, len(m))
		for k, x := range m {
			c[k] = x
		}
		c["password"] = Secret
		return c
	}
	return v
}

// isSecret reports whether path is a user's or a trunk's password.
func isSecret(path string) bool {
	for _, section := range []string{"users", "trunks"} {
		rest, ok := strings.CutPrefix(path, section)
		if !ok {
			continue
		}
		if rest, ok = strings.CutSuffix(rest, ".password"); !ok {
			continue
		}
		name := strings.TrimPrefix(rest, ".")
		if q, ok := strings.CutPrefix(rest, "["); ok {
			if q, ok = strings.CutSuffix(q, "]"); ok {
				name, _ = strconv.Unquote(q)
			}
		}
		// The name must be written back exactly as key writes it: a user
		// named "password" (users.password) is not a secret.
		if name != "" && key(section, name) == section+rest {
			return true
		}
	}
	return false
}

// key appends a map key to a path the way validation errors write it
// (internal/config): .name when it is a plain word, ["..."] otherwise.
func key(path, k string) string {
	if plainName(k) {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	return path + "[" + strconv.Quote(k) + "]"
}

func plainName(s string) bool {
	if s == "" || len(s) > 64 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// FormatPlan writes changes one per line, then a summary:
//
//	$ switchboard plan -f acme.yaml
//	+ numbers["+34910000000"].rules[2]
//	~ extensions.support.members: ["user:alice"] -> ["user:alice","user:bob"]
//	~ users.alice.password: (secret changed)
//	- users.carol
//	1 to add, 2 to change, 1 to remove.
//
// An added or removed object is its path alone; a scalar or a list of
// scalars shows its value. No changes is "No changes.".
func FormatPlan(w io.Writer, changes []Change) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	count := map[Op]int{}
	for _, c := range changes {
		count[c.Op]++
		switch c.Op {
		case Changed:
			if isSecret(c.Path) {
				fmt.Fprintf(bw, "~ %s: (secret changed)\n", c.Path)
			} else {
				fmt.Fprintf(bw, "~ %s: %s -> %s\n", c.Path, show(c.Path, c.Old), show(c.Path, c.New))
			}
		case Added, Removed:
			v := c.New
			if c.Op == Removed {
				v = c.Old
			}
			if isObject(v) {
				fmt.Fprintf(bw, "%s %s\n", c.Op, c.Path)
			} else {
				fmt.Fprintf(bw, "%s %s: %s\n", c.Op, c.Path, show(c.Path, v))
			}
		default:
			fmt.Fprintf(bw, "%s %s\n", c.Op, c.Path)
		}
	}
	if len(changes) == 0 {
		fmt.Fprintln(bw, "No changes.")
		return
	}
	fmt.Fprintf(bw, "%d to add, %d to change, %d to remove.\n", count[Added], count[Changed], count[Removed])
}

// isObject reports whether v is an object or a list of objects: shown by
// its path alone.
func isObject(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return true
	case []any:
		return hasObjects(v)
	}
	return false
}

// show writes a value as compact JSON; a secret as Secret, whatever it holds.
func show(path string, v any) string {
	if isSecret(path) {
		return Secret
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a webhook URL's & stays readable
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}
