package ui_test

import (
	"context"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestMessagesPage: an SMS a carrier sends over SIP to a number reaches
// the user's registered phone, and the console's message log and the
// message's page show it delivered, with the device that took it.
func TestMessagesPage(t *testing.T) {
	nodetest.EachDB(t, func(t *testing.T, db string) {
		smsDoc := strings.NewReplacer(`"+34910000001": { extension: "user:alice",`,
			`"+34910000001": { extension: "user:alice", sms_extension: alice,`,
			`alice: { extension: "101",`, `alice: { extension: "101", sms: true,`).Replace(doc)
		srv := nodetest.Run(t, smsDoc, nodetest.Options{DB: db})
		alice := userPhone(t, srv, "alice", alicePW)
		carrier := newPhone(t, testphone.Config{Name: "carrier", User: "carrier", IP: carrierIP})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		text := "Café at 5? <b>not bold</b>"
		if code, err := carrier.SendMessage(ctx, "sip:+34910000001@"+srv.SIPAddr, text, testphone.DialOptions{FromUser: "+34600111222"}); err != nil || code != 202 {
			t.Fatalf("MESSAGE from the carrier: %d %v", code, err)
		}
		select {
		case m := <-alice.Messages():
			if string(m.Body()) != text {
				t.Fatalf("alice's phone got %q", m.Body())
			}
		case <-ctx.Done():
			t.Fatal("alice's phone got no MESSAGE")
		}

		b := newBrowser(t, srv)
		if code, _ := b.signIn("acme", token(t, srv, true)); code != 200 {
			t.Fatalf("sign in: %d", code)
		}
		// The delivery settles just after the phone's 200 OK.
		var body string
		for deadline := time.Now().Add(5 * time.Second); ; {
			var code int
			code, body = b.get("/messages?direction=inbound&number=%2B34910000001")
			if code != 200 {
				t.Fatalf("/messages: %d", code)
			}
			if strings.Contains(body, "<td>delivered</td>") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		contains(t, body, "<td>&#43;34600111222</td>")
		contains(t, body, "<td>delivered</td>")
		contains(t, body, html.EscapeString(text)) // escaped, never markup
		i := strings.Index(body, `<a href="/messages/`)
		if i < 0 {
			t.Fatal("no link to the message's page")
		}
		link := body[i+len(`<a href="`):]
		link = link[:strings.IndexByte(link, '"')]
		code, page := b.get(link)
		if code != 200 {
			t.Fatalf("%s: %d", link, code)
		}
		contains(t, page, "user:alice")
		contains(t, page, "delivered, 1 attempt(s)")
		contains(t, page, "200")

		// A filter that matches nothing says so; a bad one names its field.
		if _, body := b.get("/messages?state=failed"); !strings.Contains(body, "None.") {
			t.Error("state=failed: the delivered message is listed")
		}
		if _, body := b.get("/messages?direction=sideways"); !strings.Contains(body, `id="f-direction"`) || !strings.Contains(body, "direction") {
			t.Error("a bad direction filter: the page is not shown")
		}
	})
}
