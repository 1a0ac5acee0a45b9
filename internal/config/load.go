package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

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
	dec.KnownFields(true)
	var d Document
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: document is empty", name)
		}
		return nil, fmt.Errorf("%s: %s", name, cleanYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: only one document is allowed per file", name)
	}
	return &d, nil
}

var (
	yamlLinePrefix = regexp.MustCompile(`(?m)^\s*(yaml: )?line (\d+): `)
	yamlUnknown    = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)
	yamlTypeName   = regexp.MustCompile(`into config\.(\w+)`)
)

// cleanYAMLError rewrites the YAML library's messages into ours: one line per
// problem, "line N: ...", without Go type names.
func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = yamlLinePrefix.ReplaceAllString(msg, "line $2: ")
	msg = yamlUnknown.ReplaceAllString(msg, "unknown field \"$1\" in $2")
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
