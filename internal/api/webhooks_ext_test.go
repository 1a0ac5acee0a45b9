package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestWebhookFromRealCall: a real call's events reach the account's
// webhook signed with the secret the API rotated to, in order; the
// deliveries log shows the attempts, and a replay delivers one again.
func TestWebhookFromRealCall(t *testing.T) {
	nodetest.EachDB(t, func(t *testing.T, db string) {
		got := make(chan events.Payload, 32)
		bodies := make(chan [2]string, 32) // body, signature
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var p events.Payload
			if json.Unmarshal(b, &p) == nil {
				got <- p
				bodies <- [2]string{string(b), r.Header.Get(events.SignatureHeader)}
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer recv.Close()
		doc := strings.Replace(fmt.Sprintf(acmeDoc, builtinDir(t)), "defaults: { caller_id: original,",
			`defaults: { webhook: "`+recv.URL+`/hook", caller_id: original,`, 1)
		srv := nodetest.Run(t, doc, nodetest.Options{DB: db, TTS: stubTTS{}})
		c := newClient(t, srv, "acme", "hooks", false, 1)
		var rot struct{ Secret string }
		want(t, c.do("POST", "/acme/webhook/secret", nil), 200).decode(t, &rot)
		if !strings.HasPrefix(rot.Secret, "whsec_") {
			t.Fatalf("secret %q", rot.Secret)
		}

		userPhone(t, srv, "alice", alicePW, testphone.Behavior{})
		call, err := dial(t, srv, carrierPhone(t), "+34910000001", "+34911222333")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-call.Answered():
		case <-time.After(5 * time.Second):
			t.Fatal("alice did not answer")
		}
		time.Sleep(200 * time.Millisecond) // a call that was talking
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := call.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		var types []string
		var completed events.Payload
		deadline := time.After(10 * time.Second)
		for completed.ID == "" {
			select {
			case p := <-got:
				types = append(types, p.Type)
				b := <-bodies
				if err := events.Verify(b[1], []byte(b[0]), [][]byte{[]byte(rot.Secret)}, time.Now(), time.Minute); err != nil {
					t.Errorf("%s: signature %q does not verify with the rotated secret: %v", p.Type, b[1], err)
				}
				if p.Type == events.TypeCallCompleted {
					completed = p
				}
			case <-deadline:
				t.Fatalf("no call.completed within 10 s; got %v", types)
			}
		}
		// A phone that answers without a 180 has no ringing event.
		if seq := strings.TrimPrefix(strings.Join(types, ","), "call.ringing,"); seq != "call.answered,call.completed" {
			t.Errorf("events in order %v, want (ringing,) answered, completed", types)
		}
		var data struct{ Outcome, AnsweredBy string }
		_ = json.Unmarshal(completed.Data, &struct {
			Outcome    *string `json:"outcome"`
			AnsweredBy *string `json:"answered_by"`
		}{&data.Outcome, &data.AnsweredBy})
		if data.Outcome != "routed" || data.AnsweredBy != "user:alice" {
			t.Errorf("call.completed data %s", completed.Data)
		}

		var log struct {
			Deliveries []struct {
				Event, Type, State string
				Status             int
			}
		}
		// Successful attempts are written in small batches: poll briefly.
		for end := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			want(t, c.do("GET", "/acme/webhook/deliveries", nil), 200).decode(t, &log)
			if len(log.Deliveries) >= len(types) || time.Now().After(end) {
				break
			}
		}
		if len(log.Deliveries) != len(types) || log.Deliveries[0].Event != completed.ID || log.Deliveries[0].Status != 204 || log.Deliveries[0].State != "delivered" {
			t.Fatalf("deliveries %+v, want %d attempts, the newest call.completed's with 204", log.Deliveries, len(types))
		}
		want(t, c.do("POST", "/acme/webhook/deliveries/"+completed.ID+"/replay", nil), 202)
		select {
		case p := <-got:
			if p.ID != completed.ID {
				t.Errorf("replayed %s, want %s", p.ID, completed.ID)
			}
		case <-time.After(5 * time.Second):
			t.Error("the replay was not delivered within 5 s")
		}
		want(t, c.do("POST", "/acme/webhook/deliveries/nope/replay", nil), 404)
	})
}
