package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decodeDocument decodes the document's top-level maps (numbers, users,
// extensions, ...) one entry at a time: the YAML decoder's duplicate-key
// check is quadratic in a mapping's size, which a 100,000-number account
// cannot afford. Duplicate keys are checked here instead, with a set.
func decodeDocument(root *yaml.Node, d *Document) error {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return root.Decode(d) // reports the type error with its line
	}
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: n.Tag, Line: n.Line, Column: n.Column}
	dv := reflect.ValueOf(d).Elem()
	fields := map[string]int{}
	for i := range dv.NumField() {
		name, _, _ := strings.Cut(dv.Type().Field(i).Tag.Get("yaml"), ",")
		fields[name] = i
	}
	seen := map[string]bool{}
	type entry struct {
		field int
		value *yaml.Node
	}
	var maps []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return fmt.Errorf("line %d: mapping key %q already defined", k.Line, k.Value)
		}
		seen[k.Value] = true
		if f, ok := fields[k.Value]; ok && dv.Field(f).Kind() == reflect.Map && v.Kind == yaml.MappingNode {
			maps = append(maps, entry{f, v})
			continue
		}
		rest.Content = append(rest.Content, k, v)
	}
	if err := rest.Decode(d); err != nil {
		return err
	}
	var errs []string
	for _, e := range maps {
		fv := dv.Field(e.field)
		m := reflect.MakeMapWithSize(fv.Type(), len(e.value.Content)/2)
		keys := make(map[string]bool, len(e.value.Content)/2)
		for i := 0; i+1 < len(e.value.Content); i += 2 {
			k, v := e.value.Content[i], e.value.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Sprintf("line %d: a name must be a string", k.Line))
				continue
			}
			if keys[k.Value] {
				errs = append(errs, fmt.Sprintf("line %d: mapping key %q already defined", k.Line, k.Value))
				continue
			}
			keys[k.Value] = true
			elem := reflect.New(fv.Type().Elem())
			if err := v.Decode(elem.Interface()); err != nil {
				errs = append(errs, cleanYAMLError(err))
				continue
			}
			m.SetMapIndex(reflect.ValueOf(k.Value), elem.Elem())
		}
		fv.Set(m)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// maxExpandedNodes bounds what YAML aliases may expand a document to (a
// "billion laughs" document is refused), while still letting a large account
// share rule lists through anchors.
const maxExpandedNodes = 20_000_000

// inlineAliases replaces every alias node by the node it refers to, so the
// decoder sees shared subtrees instead of aliases (its own alias guard refuses
// large documents that use anchors legitimately and is slow on them). It
// refuses recursive aliases and expansions beyond maxExpandedNodes.
func inlineAliases(root *yaml.Node) error {
	sizes := map[*yaml.Node]int{}
	visiting := map[*yaml.Node]bool{}
	var size func(n *yaml.Node) (int, error)
	size = func(n *yaml.Node) (int, error) {
		if s, ok := sizes[n]; ok {
			return s, nil
		}
		if visiting[n] {
			return 0, fmt.Errorf("line %d: recursive alias", n.Line)
		}
		visiting[n] = true
		total := 1
		for i, c := range n.Content {
			if c.Kind == yaml.AliasNode {
				if c.Alias == nil {
					return 0, fmt.Errorf("line %d: unknown alias", c.Line)
				}
				n.Content[i] = c.Alias
				c = c.Alias
			}
			s, err := size(c)
			if err != nil {
				return 0, err
			}
			total += s
			if total > maxExpandedNodes {
				return 0, fmt.Errorf("line %d: aliases expand the document beyond %d values", n.Line, maxExpandedNodes)
			}
		}
		delete(visiting, n)
		sizes[n] = total
		return total, nil
	}
	if root.Kind == yaml.AliasNode {
		return fmt.Errorf("line %d: the document cannot be an alias", root.Line)
	}
	_, err := size(root)
	return err
}

// unknownFields reports mapping keys that name no field of the struct type
// they decode into ("line 12: unknown field \"distrbution\" in Extension"),
// at any depth, so that a typo is never silently ignored.
func unknownFields(n *yaml.Node, t reflect.Type, seen map[*yaml.Node]bool) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return unknownFields(n.Content[0], t, seen)
	}
	if seen == nil {
		seen = map[*yaml.Node]bool{}
	}
	if seen[n] { // a shared (anchored) subtree is checked once
		return nil
	}
	seen[n] = true
	var errs []string
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, fmt.Sprintf("line %d: unknown field %q in %s", k.Line, k.Value, t.Name()))
				continue
			}
			errs = append(errs, unknownFields(v, ft, seen)...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, unknownFields(n.Content[i+1], t.Elem(), seen)...)
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for _, c := range n.Content {
			errs = append(errs, unknownFields(c, t.Elem(), seen)...)
		}
	}
	return errs
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// yamlFields maps the yaml names of a struct's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}

// ErrTooLarge is returned for documents over MaxDocumentSize.
var ErrTooLarge = fmt.Errorf("document is larger than %d MiB", MaxDocumentSize>>20)

// LoadFile reads, parses and validates a document from a file. Relative
// prompt paths are resolved against the file's directory.
func LoadFile(path string) (*Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	doc, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(filepath.Dir(path)); err != nil {
		return doc, err
	}
	return doc, nil
}

// Parse decodes a YAML or JSON document (JSON is read as YAML, so both get the
// same strict checks: unknown fields, duplicate keys, wrong types). name labels
// error messages. Parse does not validate references; call Validate.
func Parse(data []byte, name string) (doc *Document, err error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%s: %w", name, ErrTooLarge)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%s: document is not valid UTF-8 (at byte %d)", name, invalidUTF8At(data))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: document is empty", name)
	}
	// The YAML library has panicked on hostile input in the past; a bad file
	// must never take the process down.
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("%s: malformed document: %v", name, r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: document is empty", name)
		}
		return nil, fmt.Errorf("%s: %s", name, cleanYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: only one document is allowed per file", name)
	}
	if err := inlineAliases(&root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if errs := unknownFields(&root, reflect.TypeFor[Document](), nil); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", name, strings.Join(errs, "\n"))
	}
	var d Document
	if err := decodeDocument(&root, &d); err != nil {
		return nil, fmt.Errorf("%s: %s", name, cleanYAMLError(err))
	}
	return &d, nil
}

var (
	yamlLinePrefix = regexp.MustCompile(`(?m)^\s*(yaml: )?line (\d+): `)
	yamlTypeName   = regexp.MustCompile(`into config\.(\w+)`)
)

// cleanYAMLError rewrites the YAML library's messages into ours: one line per
// problem, "line N: ...", without Go type names.
func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = yamlLinePrefix.ReplaceAllString(msg, "line $2: ")
	msg = yamlTypeName.ReplaceAllString(msg, "into $1")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// Marshal writes the document as YAML.
func (d *Document) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ResolvePaths makes relative prompt file paths absolute against baseDir
// (the directory of the file the document was read from), so that a server
// reading the document from the database finds the files.
func (d *Document) ResolvePaths(baseDir string) {
	for name, p := range d.Prompts {
		if p.File != "" && !filepath.IsAbs(p.File) {
			if abs, err := filepath.Abs(filepath.Join(baseDir, p.File)); err == nil {
				p.File = abs
				d.Prompts[name] = p
			}
		}
	}
}

// Redacted is what export shows instead of a secret. Applying a document whose
// secret is Redacted keeps the stored secret.
const Redacted = "<redacted>"

// Redact returns a copy of the document with every password replaced by Redacted.
func (d *Document) Redact() *Document {
	c := *d
	if d.Users != nil {
		c.Users = make(map[string]User, len(d.Users))
		for k, u := range d.Users {
			if u.Password != "" {
				u.Password = Redacted
			}
			c.Users[k] = u
		}
	}
	if d.Trunks != nil {
		c.Trunks = make(map[string]Trunk, len(d.Trunks))
		for k, t := range d.Trunks {
			if t.Password != "" {
				t.Password = Redacted
			}
			c.Trunks[k] = t
		}
	}
	return &c
}

// KeepSecrets copies into d every secret that d leaves as Redacted from old.
func (d *Document) KeepSecrets(old *Document) {
	if old == nil {
		return
	}
	for k, u := range d.Users {
		if u.Password == Redacted {
			u.Password = old.Users[k].Password
			d.Users[k] = u
		}
	}
	for k, t := range d.Trunks {
		if t.Password == Redacted {
			t.Password = old.Trunks[k].Password
			d.Trunks[k] = t
		}
	}
}
