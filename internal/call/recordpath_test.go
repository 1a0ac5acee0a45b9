package call

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecordingPathStaysInside: recordings and voicemail are written only
// under the recordings directory, whatever the account and user names.
func TestRecordingPathStaysInside(t *testing.T) {
	base := t.TempDir()
	good := []struct{ dirs []string }{
		{[]string{"acme"}},
		{[]string{"acme", "voicemail", "alice"}},
		{[]string{"a.b-c_d", "voicemail", "x."}},
	}
	for _, g := range good {
		dir, path, err := recordingPath(base, "c1.wav", g.dirs...)
		if err != nil {
			t.Fatalf("%v: %v", g.dirs, err)
		}
		if want := filepath.Join(append([]string{base}, g.dirs...)...); dir != want || path != filepath.Join(want, "c1.wav") {
			t.Errorf("%v: dir %s path %s", g.dirs, dir, path)
		}
	}
	bad := [][]string{
		{".."},
		{"."},
		{""},
		{"../../etc"},
		{"acme", "voicemail", ".."},
		{"acme", "voicemail", "../../../tmp"},
		{"acme/../../x"},
		{`..\..\x`},
		{"acme", "voicemail", "a\x00b"},
		{"/etc"},
	}
	for _, b := range bad {
		_, path, err := recordingPath(base, "c1.wav", b...)
		if !errors.Is(err, errUnsafePath) {
			t.Errorf("%q: path %q, err %v; want errUnsafePath", b, path, err)
		}
	}
	if _, _, err := recordingPath(base, "../c1.wav", "acme"); !errors.Is(err, errUnsafePath) {
		t.Errorf("a file name with a separator: %v", err)
	}
	if _, _, err := recordingPath(base, "c1.wav", "acme"); err != nil || strings.Contains(base, "..") {
		t.Errorf("base %s: %v", base, err)
	}
}
