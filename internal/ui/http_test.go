package ui_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node/nodetest"
)

// TestSignIn: a wrong token, a token of another account and an unknown
// account all get the one message; a good token opens the dashboard;
// signing out ends the session.
func TestSignIn(t *testing.T) {
	nodetest.EachDB(t, func(t *testing.T, db string) {
		srv := start(t, db)
		tok := token(t, srv, false)
		b := newBrowser(t, srv)
		if code, body := b.get("/"); code != 200 || !strings.Contains(body, `id="token"`) {
			t.Fatalf("/ without a session: %d, not the sign-in page", code)
		}
		var msgs []string
		for _, c := range [][2]string{{"acme", "not-a-token"}, {"nosuch", tok}, {"nosuch", "not-a-token"}} {
			code, body := b.signIn(c[0], c[1])
			if code != http.StatusUnauthorized {
				t.Errorf("sign in %s: %d", c[0], code)
			}
			i := strings.Index(body, `class="errors"`)
			if i < 0 {
				t.Fatalf("sign in %s: no error shown", c[0])
			}
			msgs = append(msgs, body[i:i+120])
		}
		if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
			t.Errorf("the messages differ: %q", msgs)
		}
		code, body := b.signIn("acme", tok)
		if code != 200 || !strings.Contains(body, "<h1>Dashboard</h1>") {
			t.Fatalf("sign in: %d", code)
		}
		for _, p := range []string{"/numbers", "/numbers/+34910000002", "/extensions", "/extensions/support", "/extensions/new?name=x", "/users", "/users/alice", "/locations", "/calls", "/missed", "/voicemail", "/messages", "/try?number=%2B34910000002&from=%2B34666000000", "/history", "/history/1"} {
			if code, _ := b.get(p); code != 200 {
				t.Errorf("%s: %d", p, code)
			}
		}
		// The API is still served behind the console.
		if code, _ := b.get("/healthz"); code != 200 {
			t.Errorf("/healthz: %d", code)
		}
		b.post("/signout", url.Values{"csrf": {b.csrf("/")}})
		if _, body := b.get("/numbers"); !strings.Contains(body, `id="token"`) {
			t.Error("still signed in after signing out")
		}
	})
}

// TestCSRF: a POST without the session's CSRF token, or with another's,
// changes nothing.
func TestCSRF(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	for _, v := range []url.Values{{"enabled": {"true"}}, {"enabled": {"true"}, "csrf": {"forged"}}} {
		if code, _ := b.post("/locations/madrid/forward", v); code != http.StatusForbidden {
			t.Errorf("forged POST: %d, want 403", code)
		}
	}
	// Nor may a sign-in form be posted from elsewhere.
	other := newBrowser(t, srv)
	if code, _ := other.post("/signin", url.Values{"account": {"acme"}, "token": {"x"}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("forged sign-in: %d", code)
	}
	doc, _, err := srv.Store.LoadConfig(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Locations["madrid"].Forward {
		t.Error("a forged POST turned forwarding on")
	}
	// With the token it works.
	if code, body := b.post("/locations/madrid/forward", url.Values{"enabled": {"true"}, "csrf": {b.csrf("/locations")}}); code != 200 || !strings.Contains(body, "Forwarding of madrid is on") {
		t.Errorf("POST with the CSRF token: %d", code)
	}
}

// TestReadOnly: a read-only token sees the pages and cannot save.
func TestReadOnly(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	_, body := b.signIn("acme", token(t, srv, true))
	contains(t, body, "read-only")
	csrf := b.csrf("/numbers/+34910000002")
	code, body := b.post("/numbers/+34910000002/rules", url.Values{"csrf": {csrf}, "prefix": {"+4420*"}, "weight": {"40"}, "action": {"route"}, "extension": {"support"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "This token is read-only") {
		t.Errorf("read-only save: %d", code)
	}
	contains(t, body, `value="&#43;4420*"`) // what was typed is kept
	doc, _, _ := srv.Store.LoadConfig(context.Background(), "acme")
	if n := len(doc.Numbers["+34910000002"].Rules); n != 1 {
		t.Errorf("read-only token saved a rule: %d rules", n)
	}
}

// TestStaleEdit: saving a form loaded before someone else's change says
// so, keeps what was typed and saves nothing.
func TestStaleEdit(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	_, page := b.get("/numbers/+34910000002")
	csrf := csrfRE.FindStringSubmatch(page)[1]
	version := strings.Split(strings.SplitN(page, `name="version" value="`, 2)[1], `"`)[0]
	// Someone else changes the configuration.
	if code, _ := b.post("/locations/madrid/forward", url.Values{"csrf": {csrf}, "enabled": {"true"}}); code != 200 {
		t.Fatal(code)
	}
	code, body := b.post("/numbers/+34910000002", url.Values{"csrf": {csrf}, "version": {version}, "extension": {"rec"}, "cnam_prefix": {"TYPED "}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "Someone else changed the configuration") {
		t.Errorf("stale save: %d", code)
	}
	contains(t, body, `value="TYPED "`)
}

// TestManyNumbers: 10,000 numbers are listed a page at a time.
func TestManyNumbers(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(doc)
	for i := range 10000 {
		sb.WriteString("  \"+3492" + pad(i) + "\": { extension: support }\n")
	}
	srv := nodetest.Run(t, sb.String())
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	_, body := b.get("/numbers")
	contains(t, body, "1–50 of 10004")
	if n := strings.Count(body, `<a href="/numbers/`); n != 50 {
		t.Errorf("%d numbers on the first page", n)
	}
	// The next page, through the API's cursor.
	m := regexp.MustCompile(`href="(/numbers\?[^"]*cursor=[^"]*)">Next page`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no next page link")
	}
	_, body = b.get(html.UnescapeString(m[1]))
	contains(t, body, "51–100 of 10004")
	contains(t, body, `<a href="/numbers/&#43;34920000047">`)
	_, body = b.get("/numbers?q=%2B34920000123")
	contains(t, body, "1–1 of 1")
	_, body = b.get("/numbers?q=0000123")
	contains(t, body, "1–1 of 1")
}

func pad(i int) string {
	s := "0000000" + itoa(i)
	return s[len(s)-7:]
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestRulesAndHistory: a rule is moved earlier (weights swapped), deleted,
// and the deletion rolled back from the history page.
func TestRulesAndHistory(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	csrf := b.csrf("/numbers/+34910000002")
	if code, _ := b.post("/numbers/+34910000002/rules", url.Values{"csrf": {csrf}, "prefix": {"+4420*"}, "weight": {"40"}, "action": {"route"}, "extension": {"rec"}}); code != 200 {
		t.Fatalf("add: %d", code)
	}
	if code, _ := b.post("/numbers/+34910000002/rules/1/move", url.Values{"csrf": {csrf}, "dir": {"up"}}); code != 200 {
		t.Fatalf("move: %d", code)
	}
	rules := func() []string {
		doc, _, _ := srv.Store.LoadConfig(context.Background(), "acme")
		var out []string
		for _, i := range byWeightOf(doc.Numbers["+34910000002"].Rules) {
			out = append(out, i)
		}
		return out
	}
	if got := strings.Join(rules(), " "); got != "+4420* 34666*" {
		t.Errorf("after the move: %s", got)
	}
	if code, _ := b.post("/numbers/+34910000002/rules/0/delete", url.Values{"csrf": {csrf}}); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if got := len(rules()); got != 1 {
		t.Errorf("after the delete: %d rules", got)
	}
	_, hist := b.get("/history")
	contains(t, hist, "Roll back to")
	_, _, err := srv.Store.LoadConfig(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := srv.Store.ConfigHistory(context.Background(), "acme")
	cur := vs[len(vs)-1].Version
	if vs[0].Version > cur {
		cur = vs[0].Version
	}
	_, diff := b.get("/history/" + itoa(int(cur)))
	contains(t, diff, "rules")
	if !strings.Contains(diff, "removed") && !strings.Contains(diff, "changed") {
		t.Error("the diff names no change")
	}
	if code, body := b.post("/history/rollback", url.Values{"csrf": {csrf}, "version": {itoa(int(cur - 1))}, "current": {itoa(int(cur))}}); code != 200 || !strings.Contains(body, "Rolled back") {
		t.Errorf("rollback: %d", code)
	}
	if got := len(rules()); got != 2 {
		t.Errorf("after the rollback: %d rules", got)
	}
}

// TestEditCSRF: the extension and user forms' POSTs without the session's
// CSRF token, or with another's, are refused and change nothing.
func TestEditCSRF(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	posts := map[string]url.Values{
		"/extensions/support":        {"type": {"group"}, "members": {"user:bob"}, "timeout": {"9s"}},
		"/extensions":                {"name": {"new1"}, "type": {"group"}, "members": {"user:bob"}},
		"/extensions/support/delete": {},
		"/users/alice":               {"extension": {"199"}, "password": {"stolen"}},
	}
	for path, v := range posts {
		for _, csrf := range []string{"", "forged"} {
			if csrf != "" {
				v.Set("csrf", csrf)
			}
			if code, _ := b.post(path, v); code != http.StatusForbidden {
				t.Errorf("POST %s with CSRF %q: %d, want 403", path, csrf, code)
			}
		}
	}
	doc, _, err := srv.Store.LoadConfig(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := doc.Extensions["support"]; !ok || e.Timeout.D() != 2*time.Second || len(e.Members) != 2 {
		t.Errorf("a forged POST changed support: %+v", e)
	}
	if _, ok := doc.Extensions["new1"]; ok {
		t.Error("a forged POST created an extension")
	}
	if u := doc.Users["alice"]; u.Extension != "101" || u.Password != alicePW {
		t.Errorf("a forged POST changed alice: extension %q", u.Extension)
	}
	// With the token it works.
	csrf := b.csrf("/extensions/support")
	posts["/extensions/support"].Set("csrf", csrf)
	if code, body := b.post("/extensions/support", posts["/extensions/support"]); code != 200 || !strings.Contains(body, "Saved support") {
		t.Errorf("POST with the CSRF token: %d", code)
	}
}

// TestUserPassword: the password is write-only. It is never in the page;
// saving with the field empty keeps it; a typed one replaces it.
func TestUserPassword(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	_, page := b.get("/users/alice")
	if strings.Contains(page, alicePW) || strings.Contains(page, "redacted") {
		t.Error("the user's page shows the password")
	}
	contains(t, page, `value="101"`)
	csrf := csrfRE.FindStringSubmatch(page)[1]
	stored := func() config.User {
		doc, _, err := srv.Store.LoadConfig(context.Background(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		return doc.Users["alice"]
	}
	code, body := b.post("/users/alice", url.Values{"csrf": {csrf}, "extension": {"111"}, "password": {""}, "sms": {"on"}})
	if code != 200 || !strings.Contains(body, "Saved alice") {
		t.Fatalf("save: %d", code)
	}
	if u := stored(); u.Extension != "111" || u.Password != alicePW || !u.SMS {
		t.Errorf("after a save with no password: extension %q sms %v, password kept %v", u.Extension, u.SMS, u.Password == alicePW)
	}
	// A refused save with a new password typed: the error beside its
	// field, the extension as typed, the password not rendered back.
	code, body = b.post("/users/alice", url.Values{"csrf": {csrf}, "extension": {"12x"}, "password": {"typed-secret-1"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `aria-describedby="f-extension-err"`) {
		t.Errorf("bad extension: %d, no error beside the field", code)
	}
	contains(t, body, `value="12x"`)
	if strings.Contains(body, "typed-secret-1") {
		t.Error("the typed password is rendered back")
	}
	if code, _ := b.post("/users/alice", url.Values{"csrf": {csrf}, "extension": {"111"}, "password": {"new-pw-5Tr"}}); code != 200 {
		t.Fatalf("save a password: %d", code)
	}
	if u := stored(); u.Password != "new-pw-5Tr" {
		t.Error("the new password was not saved")
	}
}

// TestNewAndDeleteExtension: a group is created under a typed name (a name
// taken is refused beside the name field), deleted; one a number still
// uses is not, and the page says why.
func TestNewAndDeleteExtension(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	_, page := b.get("/extensions/new?name=night")
	contains(t, page, `value="night"`)
	csrf := csrfRE.FindStringSubmatch(page)[1]
	version := strings.Split(strings.SplitN(page, `name="version" value="`, 2)[1], `"`)[0]
	code, body := b.post("/extensions", url.Values{"csrf": {csrf}, "version": {version}, "name": {"support"}, "type": {"group"}, "members": {"user:bob"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="f-name-err"`) {
		t.Errorf("a name taken: %d", code)
	}
	code, body = b.post("/extensions", url.Values{"csrf": {csrf}, "version": {version}, "name": {"night"}, "type": {"group"}, "members": {"user:bob\nuser:alice"}, "distribution": {"multi-ring"}})
	if code != 200 || !strings.Contains(body, "Created night") {
		t.Fatalf("create: %d", code)
	}
	doc, _, _ := srv.Store.LoadConfig(context.Background(), "acme")
	if e := doc.Extensions["night"]; strings.Join(e.Members, " ") != "user:bob user:alice" || e.Distribution != "multi-ring" {
		t.Errorf("created: %+v", e)
	}
	// support is a number's extension: the API refuses, the page says so.
	code, body = b.post("/extensions/support/delete", url.Values{"csrf": {csrf}})
	if code != 200 || !strings.Contains(body, "Not deleted: other objects refer to it") || !strings.Contains(body, "&#43;34910000002&#34;].extension") {
		t.Errorf("delete of a used extension: %d", code)
	}
	if code, body := b.post("/extensions/night/delete", url.Values{"csrf": {csrf}}); code != 200 || !strings.Contains(body, "Deleted night") {
		t.Errorf("delete: %d", code)
	}
	doc, _, _ = srv.Store.LoadConfig(context.Background(), "acme")
	if _, ok := doc.Extensions["night"]; ok {
		t.Error("night was not deleted")
	}
	if _, ok := doc.Extensions["support"]; !ok {
		t.Error("support was deleted")
	}
}

// TestStaleExtensionEdit: an extension's or a user's form loaded before
// someone else's change gets the 412 message, keeps what was typed and
// saves nothing.
func TestStaleExtensionEdit(t *testing.T) {
	srv := start(t, "")
	b := newBrowser(t, srv)
	b.signIn("acme", token(t, srv, false))
	_, page := b.get("/extensions/support")
	csrf := csrfRE.FindStringSubmatch(page)[1]
	version := strings.Split(strings.SplitN(page, `name="version" value="`, 2)[1], `"`)[0]
	if code, _ := b.post("/locations/madrid/forward", url.Values{"csrf": {csrf}, "enabled": {"true"}}); code != 200 {
		t.Fatal(code)
	}
	code, body := b.post("/extensions/support", url.Values{"csrf": {csrf}, "version": {version}, "type": {"group"}, "members": {"user:bob"}, "timeout": {"13s"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "Someone else changed the configuration") {
		t.Errorf("stale extension save: %d", code)
	}
	contains(t, body, `value="13s"`)
	code, body = b.post("/users/bob", url.Values{"csrf": {csrf}, "version": {version}, "extension": {"177"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "Someone else changed the configuration") {
		t.Errorf("stale user save: %d", code)
	}
	contains(t, body, `value="177"`)
	doc, _, _ := srv.Store.LoadConfig(context.Background(), "acme")
	if doc.Extensions["support"].Timeout.D() != 2*time.Second || doc.Users["bob"].Extension != "102" {
		t.Error("a stale save changed something")
	}
}
