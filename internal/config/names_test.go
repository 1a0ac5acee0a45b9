package config_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// TestUnsafeNames: account and object names end up in file paths, URLs
// and SIP URIs, so validation refuses anything outside the safe set, each
// refusal naming the field path.
func TestUnsafeNames(t *testing.T) {
	bad := []struct{ name, why string }{
		{"..", "starts with '.'"},
		{".", "starts with '.'"},
		{".hidden", "starts with '.'"},
		{"a..b", `contains ".."`},
		{"a/b", "path separator"},
		{"../etc", "starts with '.'"},
		{`a\b`, "path separator"},
		{"a\x00b", "control character"},
		{"a\nb", "control character"},
		{"a\x7fb", "control character"},
		{"a b", `contains ' '`},
		{"a%2fb", `contains '%'`},
		{"é", `contains 'é'`},
		{strings.Repeat("a", 65), "longer than 64"},
		{"", "empty"},
	}
	// where puts a name in one place of a valid document and says at
	// which path the error must be reported.
	where := []struct {
		section string
		put     func(d *config.Document, n string)
	}{
		{"account", func(d *config.Document, n string) { d.Account = n }},
		{"users", func(d *config.Document, n string) { d.Users[n] = config.User{Password: "pw"} }},
		{"extensions", func(d *config.Document, n string) {
			d.Extensions[n] = config.Extension{Destination: "user:alice"}
		}},
		{"prompts", func(d *config.Document, n string) { d.Prompts[n] = config.Prompt{Say: "hi"} }},
		{"trunks", func(d *config.Document, n string) { d.Trunks[n] = config.Trunk{Address: "sip:127.0.0.1"} }},
		{"locations", func(d *config.Document, n string) { d.Locations[n] = config.Location{} }},
		{"faxes", func(d *config.Document, n string) { d.Faxes[n] = config.Fax{Destination: "sip:f@127.0.0.1"} }},
		{"parks", func(d *config.Document, n string) { d.Parks[n] = config.Park{Orbits: "701-702"} }},
		{"ivrs", func(d *config.Document, n string) {
			d.IVRs[n] = config.IVR{Options: map[string]string{"1": "user:alice"}}
		}},
	}
	for _, w := range where {
		for _, b := range bad {
			if b.name == "" && w.section != "account" {
				continue // an empty map key is a different document
			}
			t.Run(w.section+"/"+b.name, func(t *testing.T) {
				d := baseDoc(t)
				w.put(d, b.name)
				err := d.Validate("")
				want := w.section
				if w.section != "account" {
					want = w.section + "[" + strconv.Quote(b.name) + "]"
				}
				for _, f := range config.Fields(err) {
					if f.Path == want {
						if b.name == "" && f.Msg == "required" {
							return
						}
						if !strings.Contains(f.Msg, b.why) {
							t.Errorf("%s: %q, want it to say %q", f.Path, f.Msg, b.why)
						}
						return
					}
				}
				t.Fatalf("no error at %s for %q; got %v", want, b.name, err)
			})
		}
	}
	for _, good := range []string{"acme", "alice.smith", "a-b_c", "101", "A.1", strings.Repeat("z", 64), "x."} {
		d := baseDoc(t)
		d.Account = good
		d.Users[good] = config.User{Password: "pw"}
		if err := d.Validate(""); err != nil {
			t.Errorf("safe name %q refused: %v", good, err)
		}
		if !config.SafeName(good) {
			t.Errorf("SafeName(%q) = false", good)
		}
	}
}

func TestUnsafeDomain(t *testing.T) {
	for _, dom := range []string{"../x", "a/b", "a..b", ".a", "a b", "a\x00b", "a@b", strings.Repeat("a", 64) + ".com"} {
		d := baseDoc(t)
		d.Domain = dom
		fields := config.Fields(d.Validate(""))
		if len(fields) != 1 || fields[0].Path != "domain" {
			t.Errorf("domain %q: %v", dom, fields)
		}
	}
	for _, dom := range []string{"acme.example.com", "PBX.Acme.example", "127.0.0.1", "[::1]", "acme_test"} {
		d := baseDoc(t)
		d.Domain = dom
		if err := d.Validate(""); err != nil {
			t.Errorf("domain %q refused: %v", dom, err)
		}
	}
}

// TestPromptFileKinds: a prompt file must be a regular RIFF/WAVE file;
// a named pipe is refused at once (opening it would block until a writer
// came), and so are a device, a directory and a file over the size limit.
// (The full WAV decode runs when package prompt is linked in: see
// internal/prompt's TestValidateDecodesPrompts.)
func TestPromptFileKinds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.wav")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.wav")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("RIFF\x00\x00\x00\x00WAVE")
	if err := f.Truncate(config.MaxPromptFileSize + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	text := filepath.Join(dir, "notes.wav")
	if err := os.WriteFile(text, []byte("this is not audio"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{fifo, "not a regular file (a named pipe)"},
		{"/dev/zero", "not a regular file (a character device)"},
		{dir, "not a regular file (a directory)"},
		{big, "larger than"},
		{text, "not a RIFF/WAVE file"},
		{filepath.Join(dir, "missing.wav"), "no such file"},
	} {
		d := baseDoc(t)
		d.Prompts["hold"] = config.Prompt{File: tc.file}
		done := make(chan error, 1)
		go func() { done <- d.Validate("") }()
		select {
		case err := <-done:
			fields := config.Fields(err)
			if len(fields) != 1 || fields[0].Path != "prompts.hold.file" || !strings.Contains(fields[0].Msg, tc.want) {
				t.Errorf("%s: %v, want prompts.hold.file: ...%s", tc.file, err, tc.want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("validating a prompt file %s hung", tc.file)
		}
	}
}

func baseDoc(t *testing.T) *config.Document {
	t.Helper()
	d, err := config.Parse([]byte(`
account: acme
users: { alice: { password: pw } }
extensions: { front: { destination: "user:alice" } }
numbers: { "+34910000000": { extension: front } }
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d.Prompts, d.Trunks, d.Locations = map[string]config.Prompt{}, map[string]config.Trunk{}, map[string]config.Location{}
	d.Faxes, d.Parks, d.IVRs = map[string]config.Fax{}, map[string]config.Park{}, map[string]config.IVR{}
	return d
}
