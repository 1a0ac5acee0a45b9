package api_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/api"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/store"
)

// apiRoutes is every route the node's API serves, as "METHOD /path".
func apiRoutes(srv *nodetest.Server) []string {
	return api.Routes(api.Options{Tokens: srv.Store, Calls: srv.Engine, Store: srv.Store, Accounts: srv.Accounts})
}

// concrete fills a route pattern's wildcards with objects of acmeDoc (and
// the synthetic call "auth-1", the token tokenID) and gives a body a
// write would take.
func concrete(pattern, account, tokenID string) (method, path, body string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.TrimPrefix(path, "/api/v1")
	names := map[string]string{
		"numbers": "+34910000002", "extensions": "support", "users": "alice", "trunks": "carrier", "locations": "madrid",
		"ivrs": "front", "parks": "lot1", "faxes": "fax1", "prompts": "bye", "variables": "dest",
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch s {
		case "{account}":
			segs[i] = account
		case "{name}":
			segs[i] = names[segs[i-1]]
		case "{i}":
			segs[i] = "0"
		case "{v}":
			segs[i] = "1"
		case "{caller}":
			segs[i] = "+34600111222"
		case "{id}":
			segs[i] = "auth-1"
			if segs[i-1] == "tokens" {
				segs[i] = tokenID
			}
		}
	}
	path = strings.Join(segs, "/")
	if strings.HasSuffix(path, "/route") {
		path += "?number=%2B34910000002&from=%2B34600000001"
	}
	switch {
	case method == "GET" || method == "DELETE":
	case strings.HasSuffix(path, "/config"):
		body = "{}" // replaced by the caller with the document
	case strings.HasSuffix(path, "/forward"):
		body = `{"enabled":true}`
	case strings.Contains(path, "/rules/"):
		body = `{"prefix":"*","weight":1,"action":"reject-503"}`
	case strings.HasSuffix(path, "/rules"):
		body = `[]`
	case strings.Contains(path, "/prompts/"):
		body = `{"say":"hello"}`
	case strings.Contains(path, "/reputation/"):
		body = `{"level":"high"}`
	case strings.HasSuffix(path, "/rollback"):
		body = `{"version":1}`
	case strings.Contains(path, "/voicemails/"):
		body = `{"heard":true}`
	case strings.Contains(path, "/variables/"):
		body = `{"value":"101"}`
	case strings.HasSuffix(path, "/tokens"):
		body = `{"account":"acme","name":"x"}`
	case strings.Contains(path, "/numbers/"):
		body = `{"extension":"support"}`
	case strings.Contains(path, "/extensions/"):
		body = `{"destination":"user:bob"}`
	case strings.Contains(path, "/users/"):
		body = `{"extension":"101","password":"<redacted>"}`
	case strings.Contains(path, "/trunks/"):
		body = `{"address":"sip:127.0.0.3:5060","password":"<redacted>","inbound_from":["127.0.0.2/32"]}`
	case strings.Contains(path, "/locations/"):
		body = `{"forward":false,"forward_destination":"user:bob"}`
	case strings.Contains(path, "/ivrs/"):
		body = `{"prompt":"prompt:bye","options":{"1":"support"}}`
	case strings.Contains(path, "/parks/"):
		body = `{"orbits":"701-709"}`
	case strings.Contains(path, "/faxes/"):
		body = `{"destination":"sip:fax@127.0.0.1:5090"}`
	default:
		body = `{}`
	}
	return method, path, body
}

// TestAPIAuth: tokens, account scoping without existence leaks, read-only
// tokens, the admin token endpoints, tokens stored hashed, and the
// per-token rate limit.
func TestAPIAuth(t *testing.T) {
	t.Parallel()
	nodetest.EachDB(t, func(t *testing.T, db string) {
		ctx := context.Background()
		srv := startNode(t, db)
		c := newClient(t, srv, "acme", "ops", false, 4)
		audio := filepath.Join(t.TempDir(), "a.wav")
		if err := os.WriteFile(audio, wavStereo8k(t, sine(300, 8000, 800), sine(600, 8000, 800)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*store.CallRecord{
			{ID: "auth-1", Account: "acme", Number: "+34910000001", Caller: "+34600000001", Start: time.Now(), Outcome: "routed", Recording: audio, Voicemail: audio, VoicemailUser: "alice"},
			{ID: "globex-1", Account: "globex", Number: "+34930000001", Caller: "+34600000001", Start: time.Now(), Outcome: "routed", Recording: audio},
		} {
			if err := srv.Store.InsertCall(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := srv.Store.InsertMessage(ctx, &store.Message{ID: "auth-1", Account: "acme", Direction: store.DirectionInbound,
			Number: "+34910000001", From: "+34600000001", To: "+34910000001", ContentType: "text/plain", Body: "hi",
			State: store.MessageQueued, Created: time.Now()}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := srv.Store.SetReputation(ctx, "acme", "+34600111222", config.LevelLow); err != nil {
			t.Fatal(err)
		}
		_, adminTok, err := srv.Store.NewToken(ctx, "", "spare", false)
		if err != nil {
			t.Fatal(err)
		}
		routes := apiRoutes(srv)
		if len(routes) < 60 {
			t.Fatalf("only %d routes: %q", len(routes), routes)
		}
		t.Run("no-token", func(t *testing.T) {
			anon := c.at(t).with()
			for _, h := range [][]header{
				nil,
				hdr("Authorization", "Basic YWxpY2U6cGE="),
				hdr("Authorization", "Bearer "),
				hdr("Authorization", "Bearer    "),
				hdr("Authorization", "bearer-token"),
			} {
				r := want(t, anon.do("GET", "/acme/config", nil, h...), 401)
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: Bearer: %q", r.Header.Get("WWW-Authenticate"))
				}
			}
			r := want(t, c.at(t).with("not-a-token").do("GET", "/acme/config", nil), 401)
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("bad token: WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
			for _, p := range routes {
				method, path, body := concrete(p, "acme", adminTok.ID)
				if strings.HasSuffix(path, "openapi.json") {
					continue
				}
				var b any
				if body != "" {
					b = body
				}
				want(t, anon.do(method, path, b), 401)
			}
		})
		t.Run("other-account", func(t *testing.T) { testOtherAccount(t, srv, c, routes, adminTok.ID) })
		t.Run("read-only", func(t *testing.T) { testReadOnly(t, srv, c, routes, adminTok.ID) })
		t.Run("admin-tokens", func(t *testing.T) { testTokens(t, srv, c, db) })
		t.Run("rate-limit", func(t *testing.T) { testRateLimit(t, srv, c) })
	})
}

// testOtherAccount: a token of another account gets 404 on every route of
// this account, the same 404 whether the object exists or not.
func testOtherAccount(t *testing.T, srv *nodetest.Server, c *client, routes []string, tokenID string) {
	c = c.at(t)
	globex := newClient(t, srv, "globex", "globex", false, 12)
	globex.secrets = c.secrets
	v := version(t, srv)
	for _, p := range routes {
		method, path, body := concrete(p, "acme", tokenID)
		if strings.HasSuffix(path, "openapi.json") || strings.HasPrefix(path, "/tokens") {
			continue
		}
		var b any
		if body != "" {
			b = body
		}
		r := want(t, globex.do(method, path, b), 404)
		// The same answer for an account that does not exist, and for an
		// object that does not exist.
		_, nope, _ := concrete(p, "nope", tokenID)
		if n := globex.do(method, nope, b); n.Status != r.Status || string(n.Body) != string(r.Body) {
			t.Errorf("%s: an existing account answers %s, a missing one %s", p, r, n)
		}
		missing := strings.NewReplacer("auth-1", "no-such-call", "support", "nosuch", "alice", "nosuch", "+34910000002", "+34910000077").Replace(path)
		if n := globex.do(method, missing, b); n.Status != r.Status || string(n.Body) != string(r.Body) {
			t.Errorf("%s: an existing object answers %s, a missing one %s", p, r, n)
		}
	}
	// A token of acme on another account's call: not found either.
	want(t, c.do("GET", "/globex/calls/globex-1", nil), 404)
	want(t, c.do("GET", "/acme/calls/globex-1", nil), 404)
	want(t, c.do("GET", "/acme/calls/globex-1/recording", nil), 404)
	unchanged(t, srv, v, "writes with another account's token")
	if l, _ := srv.Store.Reputation(context.Background(), "acme", "+34600111222"); l != config.LevelLow {
		t.Errorf("another account's token changed the reputation list: %v", l)
	}
	// An admin token reaches every account.
	admin := newClient(t, srv, "", "root", false, 1)
	admin.secrets = c.secrets
	want(t, admin.at(t).do("GET", "/acme/config", nil), 200)
}

// testReadOnly: a read-only token reads everything (200) and gets 403 on
// every write; nothing is stored.
func testReadOnly(t *testing.T, srv *nodetest.Server, c *client, routes []string, tokenID string) {
	ctx := context.Background()
	c = c.at(t)
	ro := newClient(t, srv, "acme", "viewer", true, 4)
	ro.secrets = c.secrets
	ro = ro.at(t)
	v := version(t, srv)
	tokens, _ := srv.Store.Tokens(ctx, "")
	doc := want(t, c.do("GET", "/acme/config", nil), 200)
	for _, p := range routes {
		method, path, body := concrete(p, "acme", tokenID)
		if strings.HasSuffix(path, "openapi.json") {
			continue
		}
		var b any
		if body != "" {
			b = body
		}
		if strings.HasSuffix(path, "/config") && method == "PUT" {
			b = doc.Body
		}
		r := ro.do(method, path, b)
		switch {
		case strings.HasPrefix(path, "/tokens"):
			want(t, r, 404) // admin only
		case method == "GET":
			want(t, r, 200)
		default:
			want(t, r, 403)
		}
	}
	unchanged(t, srv, v, "writes with a read-only token")
	if l, _ := srv.Store.Reputation(ctx, "acme", "+34600111222"); l != config.LevelLow {
		t.Errorf("a read-only token changed the reputation list: %v", l)
	}
	if rec, err := srv.Store.GetCall(ctx, "acme", "auth-1"); err != nil || rec.VoicemailHeard {
		t.Errorf("a read-only token marked the voicemail heard (%v)", err)
	}
	if after, _ := srv.Store.Tokens(ctx, ""); len(after) != len(tokens) {
		t.Errorf("tokens: %d before, %d after the read-only writes", len(tokens), len(after))
	}
}

// testTokens: the admin token endpoints.
func testTokens(t *testing.T, srv *nodetest.Server, c *client, db string) {
	ctx := context.Background()
	c = c.at(t)
	admin := newClient(t, srv, "", "root", false, 1)
	admin.secrets = c.secrets
	admin = admin.at(t)
	type tokenJSON struct {
		ID       string    `json:"id"`
		Account  string    `json:"account"`
		Name     string    `json:"name"`
		ReadOnly bool      `json:"read_only"`
		Created  time.Time `json:"created"`
		Token    string    `json:"token"`
	}
	// Create: 201 with the secret, once. (The secret is checked by hand
	// here: the response guard must not see it as a leak.)
	create := func(body string) tokenJSON {
		t.Helper()
		g := &client{t: t, base: admin.base, tokens: admin.tokens, secrets: newSecrets()}
		r := want(t, g.do("POST", "/tokens", body), 201)
		var tj tokenJSON
		r.decode(t, &tj)
		if tj.Token == "" || len(tj.ID) != 12 || tj.Created.IsZero() {
			t.Errorf("POST /tokens: %s", r)
		}
		c.secrets.add(tj.Token) // from now on no response may contain it
		return tj
	}
	crm := create(`{"account":"acme","name":"crm","read_only":true}`)
	if crm.Account != "acme" || crm.Name != "crm" || !crm.ReadOnly {
		t.Errorf("the crm token: %+v", crm)
	}
	rw := create(`{"account":"acme","name":"rw"}`)
	root2 := create(`{"name":"root2"}`)
	if root2.Account != "" || root2.ReadOnly {
		t.Errorf("an admin token: %+v", root2)
	}
	// The new tokens work as they say.
	want(t, c.with(crm.Token).do("GET", "/acme/config", nil), 200)
	want(t, c.with(crm.Token).do("PUT", "/acme/reputation/+34600999999", `{"level":"high"}`), 403)
	want(t, c.with(rw.Token).do("PUT", "/acme/reputation/+34600999999", `{"level":"high"}`), 200)
	want(t, c.with(rw.Token).do("DELETE", "/acme/reputation/+34600999999", nil), 204)
	want(t, c.with(root2.Token).do("GET", "/tokens", nil), 200)
	// List: never a secret.
	var list struct {
		Tokens []tokenJSON `json:"tokens"`
	}
	r := want(t, admin.do("GET", "/tokens", nil), 200)
	r.decode(t, &list)
	ids := map[string]tokenJSON{}
	for _, tj := range list.Tokens {
		ids[tj.ID] = tj
		if tj.Token != "" {
			t.Errorf("GET /tokens shows a secret for %s", tj.ID)
		}
	}
	if ids[crm.ID].Name != "crm" || !ids[crm.ID].ReadOnly || ids[root2.ID].Name != "root2" {
		t.Errorf("GET /tokens: %s", r)
	}
	list.Tokens = nil
	want(t, admin.do("GET", "/tokens?account=acme", nil), 200).decode(t, &list)
	for _, tj := range list.Tokens {
		if tj.Account != "acme" {
			t.Errorf("GET /tokens?account=acme lists %+v", tj)
		}
	}
	if !slices.ContainsFunc(list.Tokens, func(tj tokenJSON) bool { return tj.ID == rw.ID }) {
		t.Errorf("GET /tokens?account=acme does not list rw")
	}
	// Refusals.
	n, _ := srv.Store.Tokens(ctx, "")
	wantPaths(t, admin.do("POST", "/tokens", `{"account":"nope"}`), 422, "account")
	wantPaths(t, admin.do("POST", "/tokens", `{"account":"acme","name":"`+strings.Repeat("n", 65)+`"}`), 422, "name")
	want(t, admin.do("POST", "/tokens", `{"account":"acme","admin":true}`), 400)
	want(t, admin.do("POST", "/tokens", `{"read_only":"yes"}`), 400)
	for _, m := range []string{"GET", "POST", "DELETE"} {
		path := "/tokens"
		if m == "DELETE" {
			path += "/" + crm.ID
		}
		want(t, c.do(m, path, `{"account":"acme"}`), 404) // an account token
		want(t, c.with(crm.Token).do(m, path, `{"account":"acme"}`), 404)
	}
	roAdmin := create(`{"name":"auditor","read_only":true}`)
	want(t, c.with(roAdmin.Token).do("GET", "/tokens", nil), 200)
	want(t, c.with(roAdmin.Token).do("POST", "/tokens", `{"account":"acme"}`), 403)
	want(t, c.with(roAdmin.Token).do("DELETE", "/tokens/"+crm.ID, nil), 403)
	if after, _ := srv.Store.Tokens(ctx, ""); len(after) != len(n)+1 {
		t.Errorf("%d tokens after the refusals, want %d", len(after), len(n)+1)
	}
	// Stored hashed: the database holds SHA-256s, never a secret.
	hashes := tokenHashes(t, db)
	for _, tj := range []tokenJSON{crm, rw, root2, roAdmin} {
		sum := sha256.Sum256([]byte(tj.Token))
		if !slices.Contains(hashes, hex.EncodeToString(sum[:])) {
			t.Errorf("token %s: its SHA-256 is not stored", tj.ID)
		}
		for _, h := range hashes {
			if strings.Contains(h, tj.Token) {
				t.Errorf("token %s is stored in clear", tj.ID)
			}
		}
	}
	// Revoke: 204, the secret stops working, a second revoke is 404.
	want(t, admin.do("DELETE", "/tokens/"+crm.ID, nil), 204)
	want(t, c.with(crm.Token).do("GET", "/acme/config", nil), 401)
	want(t, admin.do("DELETE", "/tokens/"+crm.ID, nil), 404)
	want(t, admin.do("DELETE", "/tokens/nope", nil), 404)
	want(t, admin.do("DELETE", "/tokens/"+strings.Repeat("0", 12), nil), 404)
	want(t, c.with(rw.Token).do("GET", "/acme/config", nil), 200)
}

// tokenHashes reads api_tokens.token_hash from the node's database.
func tokenHashes(t testing.TB, db string) []string {
	t.Helper()
	driver, dsn := "pgx", db
	if path, ok := strings.CutPrefix(db, "sqlite:"); ok {
		driver, dsn = "sqlite", path
	}
	d, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.Query(`SELECT token_hash FROM api_tokens`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		t.Fatal("no token in the database")
	}
	return out
}

// testRateLimit: a burst beyond the limit (20/s, burst 40) gets 429 with
// Retry-After; other tokens are not affected; after the wait it passes.
func testRateLimit(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	one := newClient(t, srv, "acme", "burst", false, 1)
	one.secrets = c.secrets
	one = one.at(t)
	statuses := make([]int, 60)
	retry := make([]string, 60)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(statuses) {
					return
				}
				r := one.do("GET", "/acme/numbers", nil)
				statuses[i], retry[i] = r.Status, r.Header.Get("Retry-After")
			}
		}()
	}
	wg.Wait()
	ok, limited := 0, 0
	wait := 0
	for i, s := range statuses {
		switch s {
		case 200:
			ok++
		case 429:
			limited++
			n, err := strconv.Atoi(retry[i])
			if err != nil || n < 1 {
				t.Errorf("429 with Retry-After %q", retry[i])
			}
			wait = max(wait, n)
		default:
			t.Errorf("request %d: %d", i, s)
		}
	}
	t.Logf("60 quick requests: %d passed, %d limited (Retry-After up to %ds)", ok, limited, wait)
	if limited == 0 || ok < 40 {
		t.Errorf("60 quick requests with one token: %d passed, %d got 429; want the burst of 40 to pass and the rest limited", ok, limited)
	}
	// Another token of the same account is not limited.
	want(t, c.do("GET", "/acme/numbers", nil), 200)
	time.Sleep(time.Duration(wait) * time.Second)
	want(t, one.do("GET", "/acme/numbers", nil), 200)
}
