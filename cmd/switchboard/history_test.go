package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/store"
)

// TestHistoryAndRollback: every apply is a version with its author;
// rollback makes an old one current again as a new version, and the
// routing follows it.
func TestHistoryAndRollback(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			if code, _, e := sb(t, "apply", "-f", sample, "--db", db); code != 0 {
				t.Fatalf("apply: %s", e)
			}
			b, err := os.ReadFile(sample)
			if err != nil {
				t.Fatal(err)
			}
			// Version 2 sends every caller of +34910000000 away busy.
			edited := strings.Replace(string(b), `- { prefix: "888*", weight: 10, action: reject-busy }`, `- { prefix: "*", weight: 1, action: reject-busy }`, 1)
			if edited == string(b) {
				t.Fatal("the sample's first rule is not where this test expects it")
			}
			file := filepath.Join(filepath.Dir(sample), "history-test-"+name+".yaml")
			if err := os.WriteFile(file, []byte(edited), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(file) })
			if code, _, e := sb(t, "apply", "-f", file, "--db", db); code != 0 {
				t.Fatalf("apply the edit: %s", e)
			}
			if r := route(t, "--account", "acme", "--db", db, "--number", "+34910000000", "--from", "+34911222333", "--json"); r.Outcome != "rejected" {
				t.Fatalf("after the edit: %s, want rejected", r.Outcome)
			}

			code, out, e := sb(t, "history", "acme", "--db", db)
			if code != 0 || !regexp.MustCompile(`(?m)^2\s+\S+\s+cli$`).MatchString(out) || !regexp.MustCompile(`(?m)^1\s+\S+\s+cli$`).MatchString(out) ||
				strings.Index(out, "\n2 ") > strings.Index(out, "\n1 ") {
				t.Fatalf("history: %d %q %s", code, out, e)
			}
			if code, out, _ := sb(t, "rollback", "acme", "1", "--db", db); code != 0 || !strings.Contains(out, "now at version 3") {
				t.Fatalf("rollback: %d %q", code, out)
			}
			if r := route(t, "--account", "acme", "--db", db, "--number", "+34910000000", "--from", "+34911222333", "--json"); r.Outcome == "rejected" {
				t.Fatalf("after the rollback: still rejected")
			}
			if _, out, _ := sb(t, "history", "acme", "--db", db); !regexp.MustCompile(`(?m)^3\s+\S+\s+cli$`).MatchString(out) {
				t.Errorf("history after rollback: %q", out)
			}
			for _, tc := range []struct {
				args []string
				code int
				want string
			}{
				{[]string{"rollback", "acme", "9"}, 1, "has no version 9"},
				{[]string{"rollback", "acme", "x"}, 2, "VERSION must be a version number"},
				{[]string{"rollback", "acme"}, 2, "ACCOUNT VERSION"},
				{[]string{"history", "nobody"}, 1, `account "nobody" not found`},
				{[]string{"history"}, 2, "one ACCOUNT"},
			} {
				if code, _, e := sb(t, append(tc.args, "--db", db)...); code != tc.code || !strings.Contains(e, tc.want) {
					t.Errorf("%v: %d %q, want %d with %q", tc.args, code, e, tc.code, tc.want)
				}
			}
		})
	}
}

// TestTokens: create with a name and read-only, list (never the secret),
// revoke by id.
func TestTokens(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			if code, _, e := sb(t, "apply", "-f", sample, "--db", db); code != 0 {
				t.Fatalf("apply: %s", e)
			}
			code, secret, e := sb(t, "token", "create", "--account", "acme", "--name", "crm", "--read-only", "--db", db)
			if code != 0 || len(strings.TrimSpace(secret)) < 32 {
				t.Fatalf("token create: %d %q %s", code, secret, e)
			}
			secret = strings.TrimSpace(secret)
			if code, _, e := sb(t, "token", "create", "--admin", "--name", "ops", "--db", db); code != 0 {
				t.Fatalf("admin token: %s", e)
			}
			code, out, _ := sb(t, "token", "list", "--db", db)
			if code != 0 || strings.Contains(out, secret) ||
				!regexp.MustCompile(`(?m)^[0-9a-f]{12}\s+acme\s+crm\s+read-only\s`).MatchString(out) ||
				!regexp.MustCompile(`(?m)^[0-9a-f]{12}\s+\(admin\)\s+ops\s+read-write\s`).MatchString(out) {
				t.Fatalf("token list: %d\n%s", code, out)
			}
			if _, only, _ := sb(t, "token", "list", "--account", "acme", "--db", db); strings.Contains(only, "ops") || !strings.Contains(only, "crm") {
				t.Errorf("token list --account acme:\n%s", only)
			}
			id := regexp.MustCompile(`(?m)^([0-9a-f]{12})\s+acme`).FindStringSubmatch(out)[1]
			st, err := store.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if tok, err := st.Authenticate(context.Background(), secret); err != nil || !tok.ReadOnly || tok.Name != "crm" || tok.ID != id {
				t.Fatalf("the token as stored: %+v %v", tok, err)
			}
			if code, out, e := sb(t, "token", "revoke", id, "--db", db); code != 0 || !strings.Contains(out, id) {
				t.Fatalf("revoke: %d %q %s", code, out, e)
			}
			if _, err := st.Authenticate(context.Background(), secret); err == nil {
				t.Error("a revoked token still authenticates")
			}
			for _, tc := range []struct {
				args []string
				code int
				want string
			}{
				{[]string{"token", "revoke", id}, 1, "no token has the id"},
				{[]string{"token", "revoke"}, 2, "one ID"},
				{[]string{"token", "create", "--account", "nobody"}, 1, `account "nobody" not found`},
				{[]string{"token", "create"}, 2, "--account A or --admin"},
				{[]string{"token", "frob"}, 2, "create, list or revoke"},
			} {
				if code, _, e := sb(t, append(tc.args, "--db", db)...); code != tc.code || !strings.Contains(e, tc.want) {
					t.Errorf("%v: %d %q, want %d with %q", tc.args, code, e, tc.code, tc.want)
				}
			}
		})
	}
}
