package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/store"
)

// besideSample writes a variant of the sample next to it, so that its
// prompt files resolve to the same paths as the sample's.
func besideSample(t *testing.T, src []byte) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	path := filepath.Join(filepath.Dir(sample), "plan-test-"+hex.EncodeToString(b)+".yaml")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return path
}

// storedVersion is the account's version in the database, 0 for none.
func storedVersion(t *testing.T, db, account string) int64 {
	t.Helper()
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, v, err := st.LoadConfig(context.Background(), account)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return v
}

func TestPlan(t *testing.T) {
	src, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			// An empty database: a new account, every object added.
			code, out, errOut := sb(t, "plan", "-f", sample, "--db", db)
			if code != 2 || errOut != "" {
				t.Fatalf("plan of a new account: exit %d, stderr %q", code, errOut)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			for _, l := range lines[:len(lines)-1] {
				if !strings.HasPrefix(l, "+ ") {
					t.Errorf("new account: %q is not an addition", l)
				}
			}
			for _, want := range []string{`+ account: "acme"`, "+ users.alice\n", "+ extensions.support\n", `+ numbers["+34910000000"]` + "\n", "+ trunks.carrier\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("plan of a new account lacks %q:\n%s", want, out)
				}
			}
			if sum := lines[len(lines)-1]; !strings.HasSuffix(sum, " to add, 0 to change, 0 to remove.") {
				t.Errorf("summary: %q", sum)
			}
			for _, secret := range []string{"s3cret", "pw2", "secret\n", `"secret"`} {
				if strings.Contains(out, secret) {
					t.Errorf("plan shows a password (%q):\n%s", secret, out)
				}
			}
			if v := storedVersion(t, db, "acme"); v != 0 {
				t.Fatalf("plan created the account (version %d)", v)
			}

			// After apply of the same file: nothing to do.
			if code, _, e := sb(t, "apply", "-f", sample, "--db", db); code != 0 {
				t.Fatalf("apply: %s", e)
			}
			if code, out, e := sb(t, "plan", "-f", sample, "--db", db); code != 0 || out != "No changes.\n" || e != "" {
				t.Fatalf("plan after apply: exit %d\n%s%s", code, out, e)
			}
			// An export, passwords redacted, keeps the stored passwords: no change either.
			_, exported, _ := sb(t, "export", "acme", "--db", db)
			if code, out, e := sb(t, "plan", "-f", besideSample(t, []byte(exported)), "--db", db); code != 0 || out != "No changes.\n" {
				t.Fatalf("plan of the redacted export: exit %d\n%s%s", code, out, e)
			}

			// An edited file: exactly its changes.
			edited := bytes.Replace(src, []byte(`{ prefix: "888*", weight: 10, action: reject-busy }`), []byte(`{ prefix: "889*", weight: 10, action: reject-busy }`), 1)
			edited = bytes.Replace(edited, []byte("  sales:\n"), []byte("  lobby:\n    type: individual\n    destination: \"user:bob\"\n  sales:\n"), 1)
			file := besideSample(t, edited)
			want := `+ extensions.lobby
~ numbers["+34910000000"].rules[0].prefix: "888*" -> "889*"
1 to add, 1 to change, 0 to remove.
`
			_, before, _ := sb(t, "export", "acme", "--secrets", "--db", db)
			for range 2 {
				if code, out, e := sb(t, "plan", "-f", file, "--db", db); code != 2 || out != want || e != "" {
					t.Fatalf("plan of the edited file: exit %d\n%s\nwant:\n%s\nstderr: %s", code, out, want, e)
				}
			}
			// plan never writes.
			if v := storedVersion(t, db, "acme"); v != 1 {
				t.Errorf("plan changed the stored version to %d", v)
			}
			if _, after, _ := sb(t, "export", "acme", "--secrets", "--db", db); after != before {
				t.Errorf("plan changed the stored document:\n%s\n---\n%s", before, after)
			}
			if code, _, e := sb(t, "apply", "-f", file, "--db", db); code != 0 {
				t.Fatalf("apply of the edited file: %s", e)
			}
			if code, out, _ := sb(t, "plan", "-f", file, "--db", db); code != 0 || out != "No changes.\n" {
				t.Fatalf("plan after applying the edit: exit %d\n%s", code, out)
			}
		})
	}
}

func TestPlanInvalidFile(t *testing.T) {
	src, _ := os.ReadFile(sample)
	src = bytes.Replace(src, []byte(`code: "21"`), []byte(`code: "2x"`), 1)
	src = bytes.Replace(src, []byte(`prefix: "888*", weight: 10, action: reject-busy }`), []byte(`prefix: "8*8", weight: 10, action: reject-busy }`), 1)
	bad := besideSample(t, src)
	db := "sqlite:" + filepath.Join(t.TempDir(), "sb.db")
	code, out, errOut := sb(t, "plan", "-f", bad, "--db", db)
	if code != 1 || out != "" {
		t.Fatalf("plan of an invalid file: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"switchboard plan: ", "2 errors", "extensions.support.code:", `numbers["+34910000000"].rules[0].prefix:`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, errOut := sb(t, "plan", "-f", filepath.Join(t.TempDir(), "missing.yaml"), "--db", db); code != 1 || errOut == "" {
		t.Errorf("plan of a missing file: exit %d %q", code, errOut)
	}
}

func TestPlanUsage(t *testing.T) {
	for _, args := range [][]string{{"plan"}, {"plan", "--nope"}, {"plan", "-f"}} {
		if code, _, errOut := sb(t, args...); code != 2 || !strings.HasPrefix(errOut, "switchboard plan: usage") {
			t.Errorf("%v: want exit 2 with a usage message, got %d %q", args, code, errOut)
		}
	}
	if _, out, _ := sb(t, "help"); !strings.Contains(out, "switchboard plan -f FILE [--db URL]") {
		t.Errorf("usage lacks plan:\n%s", out)
	}
}
