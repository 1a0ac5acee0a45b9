package prompt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// TestValidateDecodesPrompts: with package prompt linked in (as in the
// switchboard binary), validation decodes every prompt file with the WAV
// decoder that will play it: a file with a RIFF/WAVE header and nothing
// playable in it is refused at validate time, a real WAV passes.
func TestValidateDecodesPrompts(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile("builtin/goodbye.wav")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ file, want string }{
		{write("good.wav", good), ""},
		{write("header.wav", []byte("RIFF\x04\x00\x00\x00WAVE")), "wav:"},
		{write("text.wav", []byte("hello, this is text")), "not a RIFF/WAVE file"},
		{write("truncated.wav", good[:60]), "wav:"},
		{"/dev/zero", "not a regular file"},
	}
	for _, tc := range cases {
		doc := &config.Document{Account: "acme", Prompts: map[string]config.Prompt{"hold": {File: tc.file}}}
		err := doc.Validate("")
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s refused: %v", tc.file, err)
			}
			continue
		}
		f := config.Fields(err)
		if len(f) != 1 || f[0].Path != "prompts.hold.file" || !strings.Contains(f[0].Msg, tc.want) {
			t.Errorf("%s: %v, want prompts.hold.file: ...%s", tc.file, err, tc.want)
		}
	}
}

// TestLoadRefusesSpecialFiles: loading an account's prompts (serve,
// reload) applies the same rules as validation: a named pipe or a device
// fails that prompt at once instead of hanging or filling memory.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe.wav")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	doc := &config.Document{Prompts: map[string]config.Prompt{"a": {File: fifo}, "b": {File: "/dev/zero"}}}
	done := make(chan error, 1)
	go func() {
		_, err := Load(context.Background(), doc, "", nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || strings.Count(err.Error(), "not a regular file") != 2 {
			t.Errorf("Load: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Load hung on a named pipe or /dev/zero")
	}
}
