package ui

import (
	"net/http"
	"sort"
	"strings"
)

// form is what a page's form shows: the values (as typed, after an error)
// and the errors beside the fields they name.
type form struct {
	Values map[string]string
	Errors map[string]string
	// Other are the errors that name no field of the form.
	Other []string
	// Stale: the configuration changed since the form was loaded (412).
	Stale bool
}

func newForm() *form { return &form{Values: map[string]string{}, Errors: map[string]string{}} }

// V is a field's value.
func (f *form) V(name string) string {
	if f == nil {
		return ""
	}
	return f.Values[name]
}

// E is a field's error ("" when none).
func (f *form) E(name string) string {
	if f == nil {
		return ""
	}
	return f.Errors[name]
}

// HasErrors reports whether anything is wrong.
func (f *form) HasErrors() bool {
	return f != nil && (len(f.Errors) > 0 || len(f.Other) > 0 || f.Stale)
}

// fromRequest keeps every posted field as typed.
func fromRequest(r *http.Request) *form {
	f := newForm()
	for k, v := range r.PostForm {
		if k != "csrf" && len(v) > 0 {
			f.Values[k] = v[0]
		}
	}
	return f
}

// apply puts an API refusal on the form: each field error goes beside the
// field its path names, once one of prefixes (the object's path in the
// document, as SPEC §2 writes it: `numbers["+34910000000"].`) is cut off;
// a path already relative to the body (a 400's "weight") names the field
// as it is. Errors naming no field of the form are listed above it.
func (f *form) apply(p problem, fields []string, prefixes ...string) {
	switch p.Status {
	case http.StatusPreconditionFailed:
		f.Stale = true
		return
	case http.StatusForbidden:
		f.Other = append(f.Other, "This token is read-only: nothing was changed. ("+p.Detail+")")
		return
	}
	known := map[string]bool{}
	for _, k := range fields {
		known[k] = true
	}
	placed := false
	for _, e := range p.Errors {
		name := e.Path
		for _, pre := range prefixes {
			if rest, ok := strings.CutPrefix(e.Path, pre); ok {
				name = rest
				break
			}
		}
		// A list's element ("tags[1]") belongs to the list's field.
		if i := strings.IndexByte(name, '['); i > 0 && !known[name] {
			name = name[:i]
		}
		if known[name] {
			if f.Errors[name] != "" {
				f.Errors[name] += "; "
			}
			f.Errors[name] += e.Message
			placed = true
			continue
		}
		msg := e.Message
		if e.Path != "" {
			msg = e.Path + ": " + e.Message
		}
		f.Other = append(f.Other, msg)
		placed = true
	}
	if !placed {
		f.Other = append(f.Other, p.Detail)
	}
	sort.Strings(f.Other)
}
