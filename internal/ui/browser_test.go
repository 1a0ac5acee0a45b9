package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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

	t.Run("375 px and labels", func(t *testing.T) {
		b.t = t
		if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = chromedp.Do(b.ctx, chromedp.ResetViewport()) }()
		for _, p := range []string{"/", "/numbers", "/numbers/+34910000002", "/locations", "/calls", "/try", "/history"} {
			b.nav(srv.HTTPURL + p)
			b.wait(`document.readyState === "complete"`)
			if w := js[float64](b, `document.documentElement.scrollWidth`); w > 380 {
				t.Errorf("%s is %v px wide at 375 px", p, w)
			}
			// Every control a person types into or chooses from has a label.
			if bad := js[string](b, `[...document.querySelectorAll("input:not([type=hidden]), select")].filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map(e => e.name).join(",")`); bad != "" {
				t.Errorf("%s: unlabelled controls: %s", p, bad)
			}
		}
		b.nav(srv.HTTPURL + "/locations")
		b.shot("locations-375")
	})
}
