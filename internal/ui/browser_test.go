package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

// chrome starts headless Chromium for the test, failing it (not skipping
// it) when Chromium is not installed: apt-get install chromium (.ci/run
// does).
func chrome(t *testing.T) *tab {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the browser tests need Chromium, which is not installed: apt-get install chromium: %v", err)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.WindowSize(1440, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &tab{t: t, ctx: ctx}
}

// tab drives one browser tab, mostly with JavaScript in the page.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func (b *tab) nav(url string) {
	b.t.Helper()
	c, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("navigate %s: %v", url, err)
	}
}

// js evaluates expr (awaiting a promise) and returns its value.
func js[T any](b *tab, expr string) T {
	b.t.Helper()
	c, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// wait waits up to 10 s until expr is true, across page loads.
func (b *tab) wait(expr string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("not within 10 s: %s (%v)", expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// set types a value into the field with id.
func (b *tab) set(id, value string) {
	b.t.Helper()
	js[bool](b, fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q; return true })()`, id, value))
}

// click clicks the element with id, after the page is told to accept
// any confirm().
func (b *tab) click(id string) {
	b.t.Helper()
	js[bool](b, fmt.Sprintf(`(() => { window.confirm = () => true; document.getElementById(%q).click(); return true })()`, id))
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	return js[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// shot saves a screenshot of the page into SWITCHBOARD_SCREENSHOTS (when set).
func (b *tab) shot(name string) {
	dir := os.Getenv("SWITCHBOARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
	if err != nil {
		b.t.Error(err)
	}
}

func (b *tab) signIn(srv *nodetest.Server, account, tok string) {
	b.t.Helper()
	b.nav(srv.HTTPURL + "/")
	b.wait(`document.getElementById("token")`)
	b.set("account", account)
	b.set("token", tok)
	b.click("signin")
	time.Sleep(100 * time.Millisecond)
}

// TestBrowser drives the console in Chromium against a real node, with
// real SIP calls from test phones.
func TestBrowser(t *testing.T) {
	b := chrome(t)
	srv := start(t, "")
	userPhone(t, srv, "alice", alicePW)
	userPhone(t, srv, "bob", bobPW)
	carrier := newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: carrierIP})

	t.Run("wrong token", func(t *testing.T) {
		b.t = t
		b.signIn(srv, "acme", "wrong")
		b.wait(`document.querySelector(".errors")`)
		if msg := b.text(".errors"); !strings.Contains(msg, "do not sign in") {
			t.Errorf("wrong token: %q", msg)
		}
	})
	b.t = t
	b.signIn(srv, "acme", token(t, srv, false))
	b.wait(`document.getElementById("live-calls")`)

	t.Run("live call", func(t *testing.T) {
		b.t = t
		b.nav(srv.HTTPURL + "/")
		b.wait(`document.body.dataset.live === "open" && document.getElementById("no-live")`)
		c, err := dial(t, srv, carrier, "+34910000001", "+34911222333")
		if err != nil {
			t.Fatal(err)
		}
		// The row comes with call.started; the answered leg with call.answered.
		b.wait(`document.querySelector("tr.live-call") && document.getElementById("live-calls").textContent.includes("user:alice: talking")`)
		if text := b.text("#live-calls"); !strings.Contains(text, "+34911222333") || !strings.Contains(text, "user:alice") {
			t.Errorf("live call row: %q", text)
		}
		b.shot("dashboard")
		hangup(t, c)
		b.wait(`document.getElementById("no-live")`)
	})

	t.Run("validation error beside its field", func(t *testing.T) {
		b.t = t
		b.nav(srv.HTTPURL + "/numbers/+34910000002")
		b.set("new-prefix", "12a*")
		b.click("add-rule")
		b.wait(`document.getElementById("new-prefix-err")`)
		if v := js[string](b, `document.getElementById("new-prefix").value + "|" + document.getElementById("new-prefix").getAttribute("aria-invalid")`); v != "12a*|true" {
			t.Errorf("after the error: %q", v)
		}
	})

	t.Run("add a rule, try a call, real call", func(t *testing.T) {
		b.t = t
		b.nav(srv.HTTPURL + "/numbers/+34910000002")
		b.set("new-prefix", "+4420*")
		b.set("new-weight", "5")
		b.set("new-action", "route")
		b.set("new-extension", "rec")
		b.set("new-tags", "uk")
		b.click("add-rule")
		b.wait(`document.querySelector(".flash")`)
		b.shot("number")
		b.nav(srv.HTTPURL + "/try")
		b.set("f-number", "+34910000002")
		b.set("f-from", "+442071234567")
		b.click("try")
		b.wait(`document.getElementById("result")`)
		if dest := b.text("#destination"); dest != "rec" {
			t.Errorf("try a call: destination %q, rules fired %q", dest, b.text("#rules-fired"))
		}
		c, err := dial(t, srv, carrier, "+34910000002", "+442071234567")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // a recording of some length
		hangup(t, c)
		r := srv.WaitCalls(t, "acme", 2)[0]
		if r.Extension != "rec" || r.AnsweredBy != "user:bob" || !slices.Contains(r.Tags, "uk") {
			t.Errorf("the real call: extension %q answered by %q tags %v", r.Extension, r.AnsweredBy, r.Tags)
		}
	})

	t.Run("recording plays", func(t *testing.T) {
		b.t = t
		var id string
		deadline := time.Now().Add(10 * time.Second)
		for id == "" && time.Now().Before(deadline) {
			for _, r := range srv.Calls("acme") {
				if r.Recording != "" {
					id = r.ID
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if id == "" {
			t.Fatal("no call was recorded")
		}
		b.nav(srv.HTTPURL + "/calls/" + id)
		b.wait(`document.getElementById("recording") && document.getElementById("recording").readyState >= 1`)
		duration := js[float64](b, `document.getElementById("recording").duration`)
		played := js[bool](b, `document.getElementById("recording").play().then(() => true)`)
		b.wait(`document.getElementById("recording").currentTime > 0`)
		if !(duration > 0) || !played {
			t.Errorf("recording: duration %v, played %v", duration, played)
		}
		// Seekable: the server answers Range requests, so the player can
		// jump to the middle.
		seek := fmt.Sprintf(`new Promise(ok => { const a = document.getElementById("recording");
			a.pause(); a.addEventListener("seeked", () => ok(a.currentTime), {once: true}); a.currentTime = %v })`, duration/2)
		if js[float64](b, `(() => { const s = document.getElementById("recording").seekable; return s.length ? s.end(0) : 0 })()`) < duration*0.9 {
			t.Errorf("recording: not seekable to its end (%v s)", duration)
		}
		if at := js[float64](b, seek); at < duration/2-0.1 || at > duration/2+0.1 {
			t.Errorf("recording: seeked to %v s, want %v", at, duration/2)
		}
		b.shot("call")
		b.nav(srv.HTTPURL + "/calls")
		b.wait(`document.getElementById("calls")`)
		b.shot("activity")
	})

	t.Run("forwarding switch", func(t *testing.T) {
		b.t = t
		b.nav(srv.HTTPURL + "/locations")
		b.click("forward-madrid")
		b.wait(`document.querySelector('#forward-madrid[aria-pressed="true"]')`)
		c, err := dial(t, srv, carrier, "+34910000001", "+34911222444")
		if err != nil {
			t.Fatal(err)
		}
		hangup(t, c)
		if rec := srv.WaitCalls(t, "acme", 3)[0]; rec.AnsweredBy != "user:bob" {
			t.Errorf("forwarded call answered by %q (outcome %s), want user:bob", rec.AnsweredBy, rec.Outcome)
		}
	})

	t.Run("voicemail plays and is marked heard", func(t *testing.T) {
		b.t = t
		c, err := dial(t, srv, carrier, "+34910000004", "+34911222555")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // the greeting, the beep, a message
		hangup(t, c)
		var id string
		for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			for _, r := range srv.Calls("acme") {
				if r.Voicemail != "" && r.Caller == "+34911222555" {
					id = r.ID
				}
			}
		}
		if id == "" {
			t.Fatal("the call left no voicemail")
		}
		b.nav(srv.HTTPURL + "/voicemail?user=alice&heard=false")
		player := fmt.Sprintf(`document.querySelector('audio[src="/calls/%s/voicemail"]')`, id)
		b.wait(player + ` && ` + player + `.readyState >= 1`)
		if d := js[float64](b, player+`.duration`); !(d > 0) {
			t.Errorf("voicemail: duration %v", d)
		}
		if !js[bool](b, player+`.play().then(() => true)`) {
			t.Error("voicemail does not play")
		}
		b.wait(player + `.currentTime > 0`)
		js[bool](b, fmt.Sprintf(`(() => { document.querySelector('form[action="/voicemail/%s/heard"] button').click(); return true })()`, id))
		b.wait(`document.querySelector(".flash")`)
		b.nav(srv.HTTPURL + "/voicemail?user=alice&heard=true")
		b.wait(player)
		for _, r := range srv.Calls("acme") {
			if r.ID == id && !r.VoicemailHeard {
				t.Errorf("voicemail %s not marked heard in the store", id)
			}
		}
	})

	t.Run("edit a group's members and timeout", func(t *testing.T) {
		b.t = t
		b.nav(srv.HTTPURL + "/extensions")
		b.wait(`document.querySelector('a[href="/extensions/support"]')`)
		js[bool](b, `(() => { document.querySelector('a[href="/extensions/support"]').click(); return true })()`)
		b.wait(`document.getElementById("f-members")`)
		if v := js[string](b, `document.getElementById("f-members").value`); v != "user:alice\nuser:bob" {
			t.Errorf("members as loaded: %q", v)
		}
		b.set("f-members", "user:bob\nuser:alice\n")
		b.set("f-timeout", "3s")
		b.click("save-extension")
		b.wait(`document.querySelector(".flash")`)
		if v := js[string](b, `document.getElementById("f-members").value + "|" + document.getElementById("f-timeout").value`); v != "user:bob\nuser:alice|3s" {
			t.Errorf("after the save, the page shows %q", v)
		}
		var e config.Extension
		apiGet(t, srv, "/extensions/support", &e)
		if strings.Join(e.Members, " ") != "user:bob user:alice" || e.Timeout.D() != 3*time.Second {
			t.Errorf("through the API: members %v timeout %v", e.Members, e.Timeout)
		}
		b.nav(srv.HTTPURL + "/extensions")
		b.wait(`document.getElementById("ext-support")`)
		if got := js[string](b, `[...document.querySelectorAll("#ext-support li")].map(e => e.textContent).join(" ")`); got != "user:bob user:alice" {
			t.Errorf("the list shows members %q", got)
		}
	})

	t.Run("unknown member beside the members field", func(t *testing.T) {
		b.t = t
		b.nav(srv.HTTPURL + "/extensions/support")
		b.wait(`document.getElementById("f-members")`)
		b.set("f-members", "user:bob\nuser:nobody")
		b.set("f-timeout", "4s")
		b.click("save-extension")
		b.wait(`document.getElementById("f-members-err")`)
		if v := js[string](b, `(() => { const e = document.getElementById("f-members"); return [e.value, e.getAttribute("aria-invalid"), e.getAttribute("aria-describedby"), document.getElementById("f-timeout").value].join("|") })()`); v != "user:bob\nuser:nobody|true|f-members-err|4s" {
			t.Errorf("after the error: %q", v)
		}
		if msg := b.text("#f-members-err"); !strings.Contains(msg, "nobody") {
			t.Errorf("the error beside the members: %q", msg)
		}
		var e config.Extension
		apiGet(t, srv, "/extensions/support", &e)
		if e.Timeout.D() != 3*time.Second {
			t.Errorf("a refused save changed the timeout to %v", e.Timeout)
		}
	})

	t.Run("edit a user's extension", func(t *testing.T) {
		b.t = t
		b.nav(srv.HTTPURL + "/users")
		b.wait(`document.querySelector('a[href="/users/alice"]')`)
		js[bool](b, `(() => { document.querySelector('a[href="/users/alice"]').click(); return true })()`)
		b.wait(`document.getElementById("f-extension")`)
		if v := js[string](b, `document.getElementById("f-password").value`); v != "" {
			t.Errorf("the password field holds %q", v)
		}
		b.set("f-extension", "111")
		b.click("save-user")
		b.wait(`document.querySelector(".flash")`)
		if v := js[string](b, `document.getElementById("f-extension").value`); v != "111" {
			t.Errorf("after the save: extension %q", v)
		}
		var u config.User
		apiGet(t, srv, "/users/alice", &u)
		if u.Extension != "111" || u.Password != config.Redacted {
			t.Errorf("through the API: extension %q, password %q (want it kept)", u.Extension, u.Password)
		}
		b.nav(srv.HTTPURL + "/users")
		b.wait(`document.querySelector('a[href="/users/alice"]')`)
		if row := js[string](b, `document.querySelector('a[href="/users/alice"]').closest("tr").textContent`); !strings.Contains(row, "111") {
			t.Errorf("the users page shows %q", row)
		}
	})

	t.Run("a read-only token cannot save", func(t *testing.T) {
		b.t = t
		signOut := func() {
			js[bool](b, `(() => { document.querySelector('form[action="/signout"] button').click(); return true })()`)
			b.wait(`document.getElementById("token")`)
		}
		b.nav(srv.HTTPURL + "/")
		signOut()
		b.signIn(srv, "acme", token(t, srv, true))
		b.nav(srv.HTTPURL + "/extensions/support")
		b.wait(`document.querySelector(".readonly") && document.getElementById("f-timeout")`)
		b.set("f-timeout", "7s")
		b.click("save-extension")
		b.wait(`document.querySelector("#h-fields ~ .errors")`)
		if msg := b.text("#h-fields ~ .errors"); !strings.Contains(msg, "read-only") {
			t.Errorf("the refusal: %q", msg)
		}
		if v := js[string](b, `document.getElementById("f-timeout").value`); v != "7s" {
			t.Errorf("what was typed: %q", v)
		}
		var e config.Extension
		apiGet(t, srv, "/extensions/support", &e)
		if e.Timeout.D() != 3*time.Second {
			t.Errorf("a read-only token changed the timeout to %v", e.Timeout)
		}
		b.nav(srv.HTTPURL + "/")
		signOut()
		b.signIn(srv, "acme", token(t, srv, false))
		b.wait(`document.getElementById("live-calls")`)
	})

	t.Run("375 and 1440 px, labels, keyboard", func(t *testing.T) {
		b.t = t
		defer func() { _ = chromedp.Do(b.ctx, chromedp.ResetViewport()) }()
		pages := []string{"/", "/numbers", "/numbers/+34910000002", "/extensions", "/extensions/support", "/extensions/new", "/users", "/users/alice", "/locations", "/calls", "/missed", "/voicemail", "/try", "/history"}
		for _, width := range []int64{375, 1440} {
			vp := chromedp.EmulateViewport(width, 900)
			if width == 375 {
				vp = chromedp.EmulateViewport(width, 800, chromedp.EmulateMobile)
			}
			if err := chromedp.Do(b.ctx, vp); err != nil {
				t.Fatal(err)
			}
			for _, p := range pages {
				b.nav(srv.HTTPURL + p)
				b.wait(`document.readyState === "complete"`)
				if w := js[float64](b, `document.documentElement.scrollWidth`); w > float64(width)+5 {
					t.Errorf("%s is %v px wide at %d px", p, w, width)
				}
				// Every control a person types into or chooses from has a label.
				if bad := js[string](b, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")].filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.name).join(",")`); bad != "" {
					t.Errorf("%s: unlabelled controls: %s", p, bad)
				}
				// No control is kept out of the keyboard's reach.
				if bad := js[string](b, `[...document.querySelectorAll("a, button, input, select, textarea")].filter(e => e.tabIndex < 0 && e.type !== "hidden").map(e => e.outerHTML.slice(0, 60)).join(" | ")`); bad != "" {
					t.Errorf("%s: controls out of the tab order: %s", p, bad)
				}
			}
		}
		b.nav(srv.HTTPURL + "/locations")
		b.shot("locations-1440")
		// The keyboard alone adds a rule: Tab reaches each field of the
		// form in order, and Enter on the button submits it.
		b.nav(srv.HTTPURL + "/numbers/+34910000003")
		b.wait(`document.getElementById("add-rule")`)
		var order []string
		for range 80 {
			if err := chromedp.Do(b.ctx, chromedp.KeyEvent("\t")); err != nil {
				t.Fatal(err)
			}
			id := js[string](b, `document.activeElement.id || ""`)
			order = append(order, id)
			if id == "add-rule" {
				break
			}
		}
		if i := slices.Index(order, "new-prefix"); i < 0 || !slices.Contains(order[i:], "add-rule") {
			t.Fatalf("Tab does not reach the rule form's prefix and then its button: %v", order)
		}
		if outline := js[string](b, `getComputedStyle(document.activeElement).outlineStyle`); outline == "none" {
			t.Error("the focused button shows no outline")
		}
		b.set("new-prefix", "+33*")
		b.set("new-weight", "7")
		b.set("new-action", "reject-busy")
		js[bool](b, `(() => { document.getElementById("add-rule").focus(); return true })()`)
		if err := chromedp.Do(b.ctx, chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		b.wait(`document.querySelector(".flash")`)
		if !strings.Contains(b.text("main"), "+33*") {
			t.Error("the rule added from the keyboard is not on the page")
		}
		if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		b.nav(srv.HTTPURL + "/locations")
		b.shot("locations-375")
	})
}

// apiGet reads an object of acme through the REST API, with a token of its own.
func apiGet(t *testing.T, srv *nodetest.Server, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL+"/api/v1/acme"+path, nil)
	req.Header.Set("Authorization", "Bearer "+token(t, srv, true))
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
