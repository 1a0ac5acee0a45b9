package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

// sseEvent is one event of the live stream.
type sseEvent struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// openEvents connects to the account's live events stream; events arrive
// on the channel until the test ends.
func openEvents(t *testing.T, srv *nodetest.Server, token string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.HTTPURL+"/api/v1/acme/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev sseEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					out <- ev
				}
			}
		}
	}()
	return out
}

// next waits for the next event of type typ, skipping others.
func next(t *testing.T, evs <-chan sseEvent, typ string) sseEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within 5 s", typ)
		}
	}
}

// TestLiveEvents: the SSE stream carries registrations and a real call's
// events; calls?state=live lists the call with its talking leg while it
// is up, and not after.
func TestLiveEvents(t *testing.T) {
	srv := startNode(t, "")
	ctx := context.Background()
	secret, _, err := srv.Store.NewToken(ctx, "acme", "live", true) // read-only may watch
	if err != nil {
		t.Fatal(err)
	}
	evs := openEvents(t, srv, secret)
	userPhone(t, srv, "alice", alicePW, testphone.Behavior{})
	if ev := next(t, evs, "registration.changed"); ev.Data["user"] != "alice" || ev.Data["devices"] != float64(1) {
		t.Errorf("registration event %+v", ev)
	}
	c, err := dial(t, srv, carrierPhone(t), "+34910000001", "+34911222333")
	if err != nil {
		t.Fatal(err)
	}
	started := next(t, evs, "call.started")
	id, _ := started.Data["call"].(string)
	if id == "" || started.Data["number"] != "+34910000001" {
		t.Errorf("call.started %+v", started)
	}
	if ev := next(t, evs, "call.answered"); ev.Data["leg"] != "user:alice" || ev.Data["call"] != id {
		t.Errorf("call.answered %+v", ev)
	}
	cl := newClient(t, srv, "acme", "live-reader", true, 1)
	var live struct {
		Calls []struct {
			ID   string `json:"id"`
			Legs []struct{ Member, State string }
		} `json:"calls"`
	}
	want(t, cl.do("GET", "/acme/calls?state=live", nil), 200).decode(t, &live)
	if len(live.Calls) != 1 || live.Calls[0].ID != id || len(live.Calls[0].Legs) != 1 ||
		live.Calls[0].Legs[0].Member != "user:alice" || live.Calls[0].Legs[0].State != "talking" {
		t.Errorf("live calls while up: %+v", live)
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Hangup(hctx); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, evs, "call.completed"); ev.Data["call"] != id || ev.Data["outcome"] != "routed" || ev.Data["hangup_cause"] != "caller_bye" {
		t.Errorf("call.completed %+v", ev)
	}
	want(t, cl.do("GET", "/acme/calls?state=live", nil), 200).decode(t, &live)
	if len(live.Calls) != 0 {
		t.Errorf("live calls after the hangup: %+v", live)
	}
	want(t, cl.do("GET", "/acme/calls?state=dead", nil), 400)
}
