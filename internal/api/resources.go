package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// The configuration resources of SPEC §7: every write is an edit of the
// account's document, validated as `apply` validates, stored as a new
// version in one transaction (with the token as author) and served at once.

// httpError is a refusal a handler's edit returns.
type httpError struct {
	status int
	detail string
	errs   []fieldError
}

func (e *httpError) Error() string { return e.detail }

func notFound(format string, args ...any) error {
	return &httpError{status: http.StatusNotFound, detail: fmt.Sprintf(format, args...)}
}

func badRequest(detail string, errs ...fieldError) error {
	return &httpError{status: http.StatusBadRequest, detail: detail, errs: errs}
}

// writeError answers an error of an edit or a store call.
func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeProblem(w, he.status, he.detail, he.errs...)
	case errors.Is(err, store.ErrVersionMismatch):
		writeProblem(w, http.StatusPreconditionFailed, "the configuration changed since the version in If-Match: reload it and try again")
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "no such account or object")
	case errors.Is(err, store.ErrInvalidCursor):
		writeProblem(w, http.StatusBadRequest, "the cursor is not one this server issued", fieldError{Path: "cursor", Message: "invalid"})
	case config.Fields(err) != nil:
		writeValidation(w, "the configuration is not valid", err)
	default:
		internalError(w, err) // logged: a store error's text may hold SQL
	}
}

func setETag(w http.ResponseWriter, version int64) {
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(version, 10)))
}

// ifMatch reads the version a write expects: If-Match: "N" (0: none).
func ifMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, badRequest(`If-Match must be the ETag of a read, e.g. "12"`, fieldError{Path: "If-Match", Message: "not a version"})
	}
	return n, nil
}

// edit applies change to the account's document as one new version: the
// If-Match precondition, then validation (a deletion that leaves
// references dangling is a 409 naming them), then the write and a reload.
// It returns the new version, or false after writing the problem.
func (a *server) edit(w http.ResponseWriter, r *http.Request, tok store.Token, deleting bool, change func(doc *config.Document) error) (int64, bool) {
	account := r.PathValue("account")
	want, err := ifMatch(r)
	if err != nil {
		writeError(w, err)
		return 0, false
	}
	version, err := a.o.Store.EditConfig(r.Context(), account, store.Change{Author: author(tok), IfVersion: want},
		func(doc *config.Document, _ int64) error {
			// What the checks compare with: a PUT of an object GET returned
			// carries its secrets redacted, which keeps them.
			old := &config.Document{Users: maps.Clone(doc.Users), Trunks: maps.Clone(doc.Trunks), Prompts: maps.Clone(doc.Prompts)}
			if err := change(doc); err != nil {
				return err
			}
			err := a.check(r.Context(), r.PathValue("account"), old, doc)
			if err != nil && deleting && config.Fields(err) != nil {
				return &httpError{status: http.StatusConflict, detail: "other objects refer to it: change or delete them first", errs: fieldErrors(err)}
			}
			return err
		})
	if err != nil {
		writeError(w, err)
		return 0, false
	}
	a.o.Accounts.Reload(r.Context(), account, version)
	setETag(w, version)
	return version, true
}

// check is what every API write of a document passes, beyond what apply
// checks: a secret left redacted must have a stored one to keep; a prompt
// file can only be one uploaded through the API (or one the document had
// already), never any file of the server; a say: prompt must render. Then
// the document is validated as apply validates it.
func (a *server) check(ctx context.Context, account string, old, doc *config.Document) error {
	var errs config.ValidationError
	fail := func(path, msg string) { errs = append(errs, config.FieldError{Path: path, Msg: msg}) }
	for name, u := range doc.Users {
		if u.Password == config.Redacted && old.Users[name].Password == "" {
			fail("users."+name+".password", config.Redacted+" keeps a stored password, and this user has none")
		}
	}
	for name, t := range doc.Trunks {
		if t.Password == config.Redacted && old.Trunks[name].Password == "" {
			fail("trunks."+name+".password", config.Redacted+" keeps a stored password, and this trunk has none")
		}
	}
	doc.KeepSecrets(old)
	uploads := a.promptDir(account)
	for name, p := range doc.Prompts {
		before, had := old.Prompts[name]
		if had && before == p {
			continue
		}
		if p.File != "" && !strings.HasPrefix(p.File, uploads+string(filepath.Separator)) {
			fail("prompts."+name+".file", "a prompt file is set by uploading it (PUT prompts/"+name+" with Content-Type: audio/wav), not by a path")
		}
		if p.Say != "" && a.o.TTS != nil {
			if _, err := a.o.TTS.Render(ctx, p.Say); err != nil {
				fail("prompts."+name+".say", "the text-to-speech engine cannot render it: "+err.Error())
			}
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(x, y config.FieldError) int { return strings.Compare(x.Path, y.Path) })
		return errs
	}
	if err := doc.Validate(""); err != nil {
		return err
	}
	_, err := routing.Compile(doc)
	return err
}

func fieldErrors(err error) []fieldError {
	var out []fieldError
	for _, f := range config.Fields(err) {
		out = append(out, fieldError{Path: f.Path, Message: f.Msg})
	}
	return out
}

// load reads the account's document, redacted, and sets the ETag.
func (a *server) load(w http.ResponseWriter, r *http.Request) (*config.Document, bool) {
	doc, version, err := a.o.Store.LoadConfig(r.Context(), r.PathValue("account"))
	if err != nil {
		writeError(w, err)
		return nil, false
	}
	setETag(w, version)
	return doc.Redact(), true
}

// section is one map of named objects of the document.
type section[T any] struct {
	name  string // URL segment, as in the document
	field func(*config.Document) *map[string]T
	// key normalises the name in the path (numbers: any accepted form to
	// E.164); false refuses it.
	key func(string) (string, bool)
}

func plainKey(s string) (string, bool) { return s, s != "" }

func numberKey(s string) (string, bool) { return routing.NormalizeNumber(s) }

func sectionRoutes[T any](a *server, s section[T]) []route {
	base := "/{account}/" + s.name
	one := base + "/{name}"
	key := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		k, ok := s.key(r.PathValue("name"))
		if !ok {
			writeProblem(w, http.StatusNotFound, fmt.Sprintf("no %s %q", s.name, r.PathValue("name")))
		}
		return k, ok
	}
	return []route{
		{method: "GET", path: base, h: func(w http.ResponseWriter, r *http.Request, _ store.Token) {
			doc, ok := a.load(w, r)
			if !ok {
				return
			}
			m := *s.field(doc)
			if m == nil {
				m = map[string]T{}
			}
			writeJSON(w, m)
		}},
		{method: "GET", path: one, h: func(w http.ResponseWriter, r *http.Request, _ store.Token) {
			k, ok := key(w, r)
			if !ok {
				return
			}
			doc, ok := a.load(w, r)
			if !ok {
				return
			}
			v, found := (*s.field(doc))[k]
			if !found {
				writeProblem(w, http.StatusNotFound, fmt.Sprintf("no %s %q", s.name, k))
				return
			}
			writeJSON(w, v)
		}},
		{method: "PUT", path: one, h: func(w http.ResponseWriter, r *http.Request, tok store.Token) {
			k, ok := s.key(r.PathValue("name"))
			if !ok { // creating one: the name is the first thing to validate
				writeProblem(w, http.StatusUnprocessableEntity, "not a valid name for one of "+s.name,
					fieldError{Path: s.name + "[" + strconv.Quote(r.PathValue("name")) + "]", Message: "not a valid name (numbers: E.164)"})
				return
			}
			var v T
			if !decodeJSON(w, r, &v) {
				return
			}
			created := false
			if _, ok := a.edit(w, r, tok, false, func(doc *config.Document) error {
				m := s.field(doc)
				if *m == nil {
					*m = map[string]T{}
				}
				_, exists := (*m)[k]
				created = !exists
				(*m)[k] = v
				return nil
			}); !ok {
				return
			}
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			a.writeObject(w, r, status, func(doc *config.Document) any { return (*s.field(doc))[k] })
		}},
		{method: "DELETE", path: one, h: func(w http.ResponseWriter, r *http.Request, tok store.Token) {
			k, ok := key(w, r)
			if !ok {
				return
			}
			if _, ok := a.edit(w, r, tok, true, func(doc *config.Document) error {
				m := s.field(doc)
				if _, found := (*m)[k]; !found {
					return notFound("no %s %q", s.name, k)
				}
				delete(*m, k)
				return nil
			}); ok {
				w.WriteHeader(http.StatusNoContent)
			}
		}},
	}
}

// writeObject writes an object of the stored document after a write,
// secrets redacted.
func (a *server) writeObject(w http.ResponseWriter, r *http.Request, status int, pick func(*config.Document) any) {
	doc, _, err := a.o.Store.LoadConfig(r.Context(), r.PathValue("account"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONStatus(w, status, pick(doc.Redact()))
}

func (a *server) configRoutes() []route {
	rs := []route{
		{method: "GET", path: "/{account}/config", h: a.getConfig},
		{method: "PUT", path: "/{account}/config", h: a.putConfig},
		{method: "PUT", path: "/{account}/locations/{name}/forward", h: a.putForward},
		{method: "GET", path: "/{account}/numbers/{name}/rules", h: a.getRules},
		{method: "PUT", path: "/{account}/numbers/{name}/rules", h: a.putRules},
		{method: "GET", path: "/{account}/numbers/{name}/rules/{i}", h: a.getRule},
		{method: "PUT", path: "/{account}/numbers/{name}/rules/{i}", h: a.putRule},
		{method: "DELETE", path: "/{account}/numbers/{name}/rules/{i}", h: a.deleteRule},
		{method: "PUT", path: "/{account}/prompts/{name}", h: a.putPrompt},
		{method: "GET", path: "/{account}/reputation", h: a.getReputations},
		{method: "GET", path: "/{account}/reputation/{caller}", h: a.getReputation},
		{method: "PUT", path: "/{account}/reputation/{caller}", h: a.putReputation},
		{method: "DELETE", path: "/{account}/reputation/{caller}", h: a.deleteReputation},
		{method: "GET", path: "/{account}/route", h: a.getRoute},
	}
	// GET numbers is listNumbers (search and pages); the rest is the section's.
	rs = append(rs, route{method: "GET", path: "/{account}/numbers", h: a.listNumbers})
	for _, rt := range sectionRoutes(a, section[config.Number]{"numbers", func(d *config.Document) *map[string]config.Number { return &d.Numbers }, numberKey}) {
		if rt.method != "GET" || rt.path != "/{account}/numbers" {
			rs = append(rs, rt)
		}
	}
	rs = append(rs, sectionRoutes(a, section[config.Extension]{"extensions", func(d *config.Document) *map[string]config.Extension { return &d.Extensions }, plainKey})...)
	rs = append(rs, sectionRoutes(a, section[config.User]{"users", func(d *config.Document) *map[string]config.User { return &d.Users }, plainKey})...)
	rs = append(rs, sectionRoutes(a, section[config.Trunk]{"trunks", func(d *config.Document) *map[string]config.Trunk { return &d.Trunks }, plainKey})...)
	rs = append(rs, sectionRoutes(a, section[config.Location]{"locations", func(d *config.Document) *map[string]config.Location { return &d.Locations }, plainKey})...)
	rs = append(rs, sectionRoutes(a, section[config.IVR]{"ivrs", func(d *config.Document) *map[string]config.IVR { return &d.IVRs }, plainKey})...)
	rs = append(rs, sectionRoutes(a, section[config.Park]{"parks", func(d *config.Document) *map[string]config.Park { return &d.Parks }, plainKey})...)
	rs = append(rs, sectionRoutes(a, section[config.Fax]{"faxes", func(d *config.Document) *map[string]config.Fax { return &d.Faxes }, plainKey})...)
	// Prompts are read and deleted like the others; PUT takes a WAV upload
	// or {"say": "..."} (putPrompt), never a server-side file path.
	for _, rt := range sectionRoutes(a, section[config.Prompt]{"prompts", func(d *config.Document) *map[string]config.Prompt { return &d.Prompts }, plainKey}) {
		if rt.method != "PUT" {
			rs = append(rs, rt)
		}
	}
	return rs
}

// listNumbers is every number of the account by name, or, with any of
// ?q=, ?limit=, ?cursor=, one page of them: the numbers matching q (a part
// of the number, in any form numbers are written, or of its extension,
// SMS extension, location or a tag; case-insensitive), in order, at most
// limit (default 50), after the cursor. The body is the same object of
// numbers by name; X-Total-Count is how many match, and a Link rel="next"
// carries the next page's query (its cursor) when there are more. An
// account of 10,000 numbers is then never sent whole to a console.
func (a *server) listNumbers(w http.ResponseWriter, r *http.Request, _ store.Token) {
	doc, ok := a.load(w, r)
	if !ok {
		return
	}
	all := doc.Numbers
	if all == nil {
		all = map[string]config.Number{}
	}
	q := r.URL.Query()
	if !q.Has("q") && !q.Has("limit") && !q.Has("cursor") {
		writeJSON(w, all)
		return
	}
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		writeError(w, err)
		return
	}
	if limit == 0 {
		limit = 50
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || !strings.HasPrefix(string(b), "n:") {
			writeError(w, store.ErrInvalidCursor)
			return
		}
		after = strings.TrimPrefix(string(b), "n:")
	}
	match := numberMatcher(strings.TrimSpace(q.Get("q")))
	keys := make([]string, 0, len(all))
	for k, n := range all {
		if match(k, n) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	from, _ := slices.BinarySearch(keys, after)
	if from < len(keys) && keys[from] == after && after != "" {
		from++
	}
	to := min(from+limit, len(keys))
	page := make(map[string]config.Number, to-from)
	for _, k := range keys[from:to] {
		page[k] = all[k]
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(keys)))
	if to < len(keys) {
		next := url.Values{"limit": {strconv.Itoa(limit)}, "cursor": {base64.RawURLEncoding.EncodeToString([]byte("n:" + keys[to-1]))}}
		if v := q.Get("q"); v != "" {
			next.Set("q", v)
		}
		w.Header().Set("Link", "<"+r.URL.Path+"?"+next.Encode()+`>; rel="next"`)
	}
	writeJSON(w, page)
}

// numberMatcher is the search of listNumbers ("" matches all).
func numberMatcher(q string) func(string, config.Number) bool {
	if q == "" {
		return func(string, config.Number) bool { return true }
	}
	lq := strings.ToLower(q)
	// "+34 910 000 001", "0034910000001": the number's E.164 form too.
	norm, isNumber := routing.NormalizeNumber(q)
	has := func(s string) bool { return s != "" && strings.Contains(strings.ToLower(s), lq) }
	return func(k string, n config.Number) bool {
		if strings.Contains(k, q) || (isNumber && strings.Contains(k, norm)) ||
			has(n.Extension) || has(n.SMSExtension) || has(n.Location) {
			return true
		}
		return slices.ContainsFunc(n.Tags, has)
	}
}

// getConfig is the whole document, passwords redacted; YAML when asked
// for (Accept: application/yaml).
func (a *server) getConfig(w http.ResponseWriter, r *http.Request, _ store.Token) {
	doc, ok := a.load(w, r)
	if !ok {
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "yaml") {
		b, err := doc.Marshal()
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b)
		return
	}
	writeJSON(w, doc)
}

// putConfig replaces the whole document (JSON or YAML), as apply does;
// passwords left redacted keep the stored ones.
func (a *server) putConfig(w http.ResponseWriter, r *http.Request, tok store.Token) {
	account := r.PathValue("account")
	b, err := readBody(r, config.MaxDocumentSize)
	if errors.Is(err, errTooLarge) {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the document is over %d bytes", config.MaxDocumentSize))
		return
	}
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "the body could not be read")
		return
	}
	doc, err := config.Parse(b, "body")
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "the body is not a configuration document", fieldError{Message: err.Error()})
		return
	}
	if doc.Account != account {
		writeProblem(w, http.StatusUnprocessableEntity, "the document is for another account",
			fieldError{Path: "account", Message: fmt.Sprintf("must be %q, the account of the URL", account)})
		return
	}
	want, err := ifMatch(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, _, err := a.o.Store.LoadConfig(r.Context(), account); err != nil {
		writeError(w, err) // PUT config edits an account; creating one is apply's
		return
	}
	version, err := a.o.Store.EditConfig(r.Context(), account, store.Change{Author: author(tok), IfVersion: want},
		func(stored *config.Document, _ int64) error {
			if err := a.check(r.Context(), account, stored, doc); err != nil {
				return err
			}
			*stored = *doc
			return nil
		})
	if err != nil {
		writeError(w, err)
		return
	}
	a.o.Accounts.Reload(r.Context(), account, version)
	setETag(w, version)
	writeJSON(w, doc.Redact())
}

func (a *server) putForward(w http.ResponseWriter, r *http.Request, tok store.Token) {
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	if body.Enabled == nil {
		writeProblem(w, http.StatusBadRequest, `the body must be {"enabled": true|false}`, fieldError{Path: "enabled", Message: "required"})
		return
	}
	name := r.PathValue("name")
	if _, ok := a.edit(w, r, tok, false, func(doc *config.Document) error {
		loc, found := doc.Locations[name]
		if !found {
			return notFound("no location %q", name)
		}
		loc.Forward = *body.Enabled
		doc.Locations[name] = loc
		return nil
	}); ok {
		a.writeObject(w, r, http.StatusOK, func(doc *config.Document) any { return doc.Locations[name] })
	}
}

// rulesOf finds the number of the path in doc.
func rulesOf(doc *config.Document, raw string) (string, config.Number, error) {
	n, ok := routing.NormalizeNumber(raw)
	num, found := doc.Numbers[n]
	if !ok || !found {
		return "", config.Number{}, notFound("no number %q", raw)
	}
	return n, num, nil
}

func ruleIndex(r *http.Request, rules []config.Rule, appendOK bool) (int, error) {
	i, err := strconv.Atoi(r.PathValue("i"))
	limit := len(rules)
	if appendOK {
		limit++
	}
	if err != nil || i < 0 || i >= limit {
		return 0, notFound("no rule %s (the number has %d)", r.PathValue("i"), len(rules))
	}
	return i, nil
}

func (a *server) getRules(w http.ResponseWriter, r *http.Request, _ store.Token) {
	doc, ok := a.load(w, r)
	if !ok {
		return
	}
	_, num, err := rulesOf(doc, r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, append([]config.Rule{}, num.Rules...))
}

func (a *server) getRule(w http.ResponseWriter, r *http.Request, _ store.Token) {
	doc, ok := a.load(w, r)
	if !ok {
		return
	}
	_, num, err := rulesOf(doc, r.PathValue("name"))
	if err == nil {
		var i int
		if i, err = ruleIndex(r, num.Rules, false); err == nil {
			writeJSON(w, num.Rules[i])
			return
		}
	}
	writeError(w, err)
}

// putRules replaces the number's whole rule list (to reorder, say).
func (a *server) putRules(w http.ResponseWriter, r *http.Request, tok store.Token) {
	var rules []config.Rule
	if !decodeJSON(w, r, &rules) {
		return
	}
	a.editRules(w, r, tok, false, func(num *config.Number) error {
		num.Rules = rules
		return nil
	})
}

// putRule replaces rule i, or appends one at i = the number of rules.
func (a *server) putRule(w http.ResponseWriter, r *http.Request, tok store.Token) {
	var rule config.Rule
	if !decodeJSON(w, r, &rule) {
		return
	}
	a.editRules(w, r, tok, false, func(num *config.Number) error {
		i, err := ruleIndex(r, num.Rules, true)
		if err != nil {
			return err
		}
		if i == len(num.Rules) {
			num.Rules = append(num.Rules, rule)
		} else {
			num.Rules[i] = rule
		}
		return nil
	})
}

func (a *server) deleteRule(w http.ResponseWriter, r *http.Request, tok store.Token) {
	a.editRules(w, r, tok, true, func(num *config.Number) error {
		i, err := ruleIndex(r, num.Rules, false)
		if err != nil {
			return err
		}
		num.Rules = slices.Delete(num.Rules, i, i+1)
		return nil
	})
}

func (a *server) editRules(w http.ResponseWriter, r *http.Request, tok store.Token, deleting bool, change func(*config.Number) error) {
	var key string
	if _, ok := a.edit(w, r, tok, deleting, func(doc *config.Document) error {
		k, num, err := rulesOf(doc, r.PathValue("name"))
		if err != nil {
			return err
		}
		if err := change(&num); err != nil {
			return err
		}
		key = k
		doc.Numbers[k] = num
		return nil
	}); !ok {
		return
	}
	if deleting {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.writeObject(w, r, http.StatusOK, func(doc *config.Document) any { return append([]config.Rule{}, doc.Numbers[key].Rules...) })
}

// putPrompt stores a prompt: a WAV upload (Content-Type audio/wav), checked
// as a prompt file is checked on load and written under PromptDir, or
// {"say": "..."} for the TTS engine.
func (a *server) putPrompt(w http.ResponseWriter, r *http.Request, tok store.Token) {
	account, name := r.PathValue("account"), r.PathValue("name")
	if err := config.CheckVariableName(name); err != nil || strings.Trim(name, ".") == "" {
		writeProblem(w, http.StatusUnprocessableEntity, "not a prompt name", fieldError{Path: "name", Message: "1-64 letters, digits, '-', '_' or '.'"})
		return
	}
	var p config.Prompt
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	switch {
	case strings.HasPrefix(ct, "audio/"):
		b, err := readBody(r, maxUpload)
		if errors.Is(err, errTooLarge) {
			writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a prompt upload is at most %d bytes", maxUpload))
			return
		}
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "the body could not be read")
			return
		}
		if _, err := media.DecodeWAV(b); err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "the upload is not a usable WAV file", fieldError{Path: "body", Message: err.Error()})
			return
		}
		if p.File, err = a.savePrompt(account, name, b); err != nil {
			a.o.Log.Error("save prompt", "account", account, "prompt", name, "err", err)
			writeProblem(w, http.StatusInternalServerError, "the prompt could not be stored")
			return
		}
	default:
		var body struct {
			Say string `json:"say"`
		}
		if !decodeJSON(w, r, &body) {
			return
		}
		if strings.TrimSpace(body.Say) == "" {
			writeProblem(w, http.StatusUnprocessableEntity, `a prompt is a WAV upload (Content-Type: audio/wav) or {"say": "text"}`, fieldError{Path: "say", Message: "required"})
			return
		}
		p.Say = body.Say
	}
	created := false
	if _, ok := a.edit(w, r, tok, false, func(doc *config.Document) error {
		if doc.Prompts == nil {
			doc.Prompts = map[string]config.Prompt{}
		}
		_, exists := doc.Prompts[name]
		created = !exists
		doc.Prompts[name] = p
		return nil
	}); !ok {
		if p.File != "" {
			os.Remove(p.File) // the write was refused: the upload is nobody's
		}
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSONStatus(w, status, p)
}

// promptDir is the absolute directory of an account's uploaded prompts.
func (a *server) promptDir(account string) string {
	dir := a.o.PromptDir
	if dir == "" {
		dir = filepath.Join("switchboard-data", "prompts")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return filepath.Join(dir, filepath.Base(account))
}

// savePrompt writes an uploaded prompt where every node reads prompts:
// PromptDir/ACCOUNT/NAME-VERSIONTAG.wav, a new file for each upload so
// that older configuration versions keep theirs.
func (a *server) savePrompt(account, name string, b []byte) (string, error) {
	dir := a.promptDir(account)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, name+"-*.wav")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

func (a *server) getReputations(w http.ResponseWriter, r *http.Request, _ store.Token) {
	list, err := a.o.Store.Reputations(r.Context(), r.PathValue("account"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := make(map[string]string, len(list))
	for c, l := range list {
		out[c] = l.String()
	}
	writeJSON(w, out)
}

func (a *server) getReputation(w http.ResponseWriter, r *http.Request, _ store.Token) {
	caller := accounts.ListKey(r.PathValue("caller"))
	level, err := a.o.Store.Reputation(r.Context(), r.PathValue("account"), caller)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, map[string]string{"caller": caller, "level": level.String()})
}

func (a *server) putReputation(w http.ResponseWriter, r *http.Request, _ store.Token) {
	var body struct {
		Level string `json:"level"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	level, err := config.ParseLevel(body.Level)
	if err != nil || body.Level == "" {
		writeProblem(w, http.StatusUnprocessableEntity, "not a reputation level", fieldError{Path: "level", Message: "one of none, low, medium, high"})
		return
	}
	a.setReputation(w, r, level)
}

func (a *server) deleteReputation(w http.ResponseWriter, r *http.Request, _ store.Token) {
	a.setReputation(w, r, config.LevelNone)
}

func (a *server) setReputation(w http.ResponseWriter, r *http.Request, level config.Level) {
	account, caller := r.PathValue("account"), accounts.ListKey(r.PathValue("caller"))
	if !a.accountExists(w, r.Context(), account) {
		return
	}
	if err := a.o.Store.SetReputation(r.Context(), account, caller, level); err != nil {
		writeError(w, err)
		return
	}
	if level == config.LevelNone {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, map[string]string{"caller": caller, "level": level.String()})
}

func (a *server) accountExists(w http.ResponseWriter, ctx context.Context, account string) bool {
	if _, _, err := a.o.Store.LoadConfig(ctx, account); err != nil {
		writeError(w, err)
		return false
	}
	return true
}

// getRoute is the explain of SPEC §6 over HTTP: ?number=N&from=C[&name=S]
// [&reputation=LEVEL][&captcha=pass|fail], the same JSON as `route --json`.
func (a *server) getRoute(w http.ResponseWriter, r *http.Request, _ store.Token) {
	q := r.URL.Query()
	req := routing.Request{Number: q.Get("number"), Caller: q.Get("from"), CallerName: q.Get("name"), Captcha: routing.CaptchaPassed}
	if req.Number == "" {
		writeProblem(w, http.StatusBadRequest, "number is required", fieldError{Path: "number", Message: "required"})
		return
	}
	level, err := config.ParseLevel(q.Get("reputation"))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "not a reputation level", fieldError{Path: "reputation", Message: "one of none, low, medium, high"})
		return
	}
	req.Reputation = level
	switch q.Get("captcha") {
	case "", "pass":
	case "fail":
		req.Captcha = routing.CaptchaFailed
	default:
		writeProblem(w, http.StatusBadRequest, "captcha must be pass or fail", fieldError{Path: "captcha", Message: "pass or fail"})
		return
	}
	ex, err := a.o.Accounts.Explain(r.Context(), r.PathValue("account"), req)
	if errors.Is(err, accounts.ErrUnknownAccount) {
		writeProblem(w, http.StatusNotFound, "no such account")
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, ex)
}
