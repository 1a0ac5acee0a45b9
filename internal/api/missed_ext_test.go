package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestMissedCallLedger places real calls and reads the ledger: a call a
// multi-ring group's other member answered, a rejected call and an
// answered call are not missed; unanswered calls to a group and to a user
// are, each with a call.missed webhook; a later answered call of the same
// caller to the same number resolves one, the business calling a caller
// back through the trunk resolves another, and the owner marks the last
// one done.
func TestMissedCallLedger(t *testing.T) {
	nodetest.EachDB(t, func(t *testing.T, db string) {
		var (
			mu     sync.Mutex
			missed []events.Payload
			types  []string
		)
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var p events.Payload
			if json.Unmarshal(b, &p) == nil {
				mu.Lock()
				types = append(types, p.Type)
				if p.Type == events.TypeCallMissed {
					missed = append(missed, p)
				}
				mu.Unlock()
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer recv.Close()
		pstn := newPhone(t, testphone.Config{Name: "pstn", User: "pstn", IP: netip.MustParseAddr("127.0.0.3")})
		doc := fmt.Sprintf(acmeDoc, builtinDir(t))
		doc = strings.Replace(doc, "defaults: { caller_id: original,",
			`defaults: { webhook: "`+recv.URL+`/hook", caller_id: original,`, 1)
		doc = strings.Replace(doc, "sip:127.0.0.3:5060", "sip:"+pstn.Addr().String(), 1)
		doc = strings.Replace(doc, "extensions:\n", "extensions:\n  team: { members: [\"user:alice\", \"user:bob\"], distribution: multi-ring, timeout: 5s }\n", 1)
		doc += `  "+34910000006": { extension: team }` + "\n"
		srv := nodetest.Run(t, doc, nodetest.Options{DB: db, TTS: stubTTS{}})
		c := newClient(t, srv, "acme", "ledger", false, 1)
		ro := newClient(t, srv, "acme", "ledger-ro", true, 1)
		alice := userPhone(t, srv, "alice", alicePW, testphone.Behavior{Mode: testphone.NeverAnswer})
		bob := userPhone(t, srv, "bob", bobPW, testphone.Behavior{Mode: testphone.NeverAnswer})
		carrier := carrierPhone(t)
		const (
			team, aliceNo    = "+34910000006", "+34910000001"
			x, y, w, spammer = "+34911000001", "+34911000002", "+34911000004", "+34666000003"
			ring             = 1200 * time.Millisecond
		)
		// unanswered rings number from caller for a while, then the caller
		// hangs up.
		unanswered := func(number, caller string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			call, err := carrier.StartCall(ctx, "sip:"+number+"@"+srv.SIPAddr, testphone.DialOptions{FromUser: caller})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(ring)
			hangup(t, call)
		}
		answered := func(call *testphone.Call, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			hangup(t, call)
		}
		// lastCall waits for the record of the newest call and returns its id.
		var seen int
		lastCall := func() string {
			t.Helper()
			var page struct {
				Calls []struct{ ID, AnsweredBy string }
			}
			for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				want(t, c.do("GET", "/acme/calls", nil), 200).decode(t, &page)
				if len(page.Calls) > seen {
					seen = len(page.Calls)
					return page.Calls[0].ID
				}
				if time.Now().After(end) {
					t.Fatalf("no new call record (have %d)", seen)
				}
			}
		}

		// The group rings alice and bob; bob answers: not missed.
		bob.SetBehavior(testphone.Behavior{Mode: testphone.Answer, AnswerAfter: 300 * time.Millisecond})
		answered(dial(t, srv, carrier, team, x))
		lastCall()
		// Nobody answers the group: missed.
		bob.SetBehavior(testphone.Behavior{Mode: testphone.NeverAnswer})
		unanswered(team, y)
		missedY := lastCall()
		// A rule rejects the call: not missed.
		if call, err := dial(t, srv, carrier, "+34910000002", spammer); err == nil || call.Status() != 486 {
			t.Fatalf("rejected call: %v", err)
		}
		lastCall()
		// x calls alice, who does not answer: missed; then again, answered.
		unanswered(aliceNo, x)
		missedX := lastCall()
		alice.SetBehavior(testphone.Behavior{Mode: testphone.Answer})
		answered(dial(t, srv, carrier, aliceNo, x))
		backX := lastCall()
		// Alice calls y back through the trunk, and y answers.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		answered(alice.Dial(ctx, "sip:"+y+"@"+srv.SIPAddr, testphone.DialOptions{}))
		backY := lastCall()
		// w's missed call stays open until the owner marks it done.
		alice.SetBehavior(testphone.Behavior{Mode: testphone.NeverAnswer})
		unanswered(aliceNo, w)
		missedW := lastCall()

		type entry struct {
			CallID     string `json:"call_id"`
			Number     string
			Extension  string
			Caller     string
			Resolved   bool
			ResolvedBy string `json:"resolved_by"`
		}
		var page struct {
			Missed []entry
			Next   string
		}
		want(t, c.do("GET", "/acme/missed", nil), 200).decode(t, &page)
		wantList := []entry{
			{missedW, aliceNo, "user:alice", w, false, ""},
			{missedX, aliceNo, "user:alice", x, true, "call:" + backX},
			{missedY, team, "team", y, true, "call:" + backY},
		}
		if fmt.Sprint(page.Missed) != fmt.Sprint(wantList) {
			t.Fatalf("ledger\n %v\nwant\n %v", page.Missed, wantList)
		}
		want(t, c.do("GET", "/acme/missed?state=open", nil), 200).decode(t, &page)
		if len(page.Missed) != 1 || page.Missed[0].CallID != missedW {
			t.Errorf("open: %v", page.Missed)
		}
		want(t, c.do("GET", "/acme/missed?number="+strings.TrimPrefix(team, "+")+"&limit=5", nil), 200).decode(t, &page)
		if len(page.Missed) != 1 || page.Missed[0].CallID != missedY {
			t.Errorf("by number: %v", page.Missed)
		}
		want(t, c.do("GET", "/acme/missed?state=maybe", nil), 400)
		want(t, ro.do("POST", "/acme/missed/"+missedW+"/resolve", nil), 403)
		var done entry
		want(t, c.do("POST", "/acme/missed/"+missedW+"/resolve", nil), 200).decode(t, &done)
		if !done.Resolved || done.ResolvedBy != "owner" {
			t.Errorf("resolved: %+v", done)
		}
		want(t, c.do("POST", "/acme/missed/"+backX+"/resolve", nil), 404)
		want(t, c.do("GET", "/acme/missed?state=open", nil), 200).decode(t, &page)
		if len(page.Missed) != 0 {
			t.Errorf("still open: %v", page.Missed)
		}

		// One call.missed webhook per missed call, carrying its record.
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			n := len(missed)
			mu.Unlock()
			if n >= 3 || time.Now().After(end) {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for _, p := range missed {
			var d struct{ ID, Extension string }
			_ = json.Unmarshal(p.Data, &d)
			ids = append(ids, d.ID+"@"+d.Extension)
		}
		if got, wantIDs := strings.Join(ids, " "), missedY+"@team "+missedX+"@user:alice "+missedW+"@user:alice"; got != wantIDs {
			t.Errorf("call.missed for %s, want %s (all events: %v)", got, wantIDs, types)
		}
	})
}
