package sipserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/api"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestIVR: a menu option, keypad entry into a call variable that a
// programmable destination (${dest}) resolves, and an entry that resolves to
// nothing, which runs the extension's on_failure with the reason traced.
func TestIVR(t *testing.T) {
	w := newWorld(t)
	w.user("alice", "pa", testphone.Behavior{Play: testphone.Tone(1000)})
	w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1500)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, tt := range []struct{ keys, want string }{
		{"9", "user:alice"},  // option 9: the seq group, alice first
		{"102#", "user:bob"}, // ${dest} = 102, bob's extension
		{"555#", "prompt"},   // nothing has that code: on_failure prompt:bye
	} {
		c, err := w.call("+34910000020", "+34911222333", "")
		if err != nil {
			t.Fatalf("%s: the IVR answers: %v", tt.keys, err)
		}
		time.Sleep(500 * time.Millisecond)
		if score := heardPrompt(t, c.Heard(500*time.Millisecond), "please-hold"); score < 0.5 {
			t.Logf("%s: menu prompt correlation %.2f", tt.keys, score)
		}
		if err := c.SendDTMF(ctx, tt.keys); err != nil {
			t.Fatal(err)
		}
		switch tt.want {
		case "prompt":
			select {
			case <-c.Ended():
			case <-time.After(10 * time.Second):
				hangup(t, c)
				t.Fatalf("%s: call did not end; trace %q", tt.keys, lastRecord(t, w.h, i+1).Trace)
			}
			if score := heardPrompt(t, c.Heard(3*time.Second), "goodbye"); score < 0.7 {
				t.Errorf("%s: on_failure prompt not heard (%.2f)", tt.keys, score)
			}
		default:
			freq := map[string]float64{"user:alice": 1000, "user:bob": 1500}[tt.want]
			if err := c.WaitForTone(ctx, freq, 200*time.Millisecond); err != nil {
				t.Errorf("%s: not connected to %s: %v", tt.keys, tt.want, err)
			}
			hangup(t, c)
		}
		rec := lastRecord(t, w.h, i+1)
		if tt.want != "prompt" && rec.AnsweredBy != tt.want {
			t.Errorf("%s: answered by %q, want %s; trace %q", tt.keys, rec.AnsweredBy, tt.want, rec.Trace)
		}
		if tt.want == "prompt" && !sippTraceHas(rec, `${dest} = "555" is not an extension, code or E.164 number`) {
			t.Errorf("%s: trace lacks the reason: %q", tt.keys, rec.Trace)
		}
	}
}

// TestSetVariableThroughAPI: PUT /api/v1/{account}/calls/{id}/variables/{name}
// sets ${dest} on a live call, and the IVR option that goes to ${dest}
// then reaches that extension.
func TestSetVariableThroughAPI(t *testing.T) {
	w := newWorld(t)
	w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1500)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	token, err := w.h.st.CreateToken(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(api.NewHandler(api.Options{Tokens: w.h.st, Calls: w.h.engine}))
	defer web.Close()
	put := func(id, value string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, web.URL+"/api/v1/acme/calls/"+id+"/variables/dest", strings.NewReader(`{"value":"`+value+`"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}

	c, err := w.call("+34910000027", "+34911222333", "")
	if err != nil {
		t.Fatal(err)
	}
	live := w.h.engine.Live("acme")
	if len(live) != 1 || live[0].Number != "+34910000027" || live[0].Caller != "+34911222333" {
		t.Fatalf("live calls %+v", live)
	}
	if code := put(live[0].ID, "102"); code != 200 {
		t.Fatalf("PUT variable: %d", code)
	}
	if err := c.SendDTMF(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForTone(ctx, 1500, 200*time.Millisecond); err != nil {
		t.Errorf("${dest} set by the API did not reach bob: %v", err)
	}
	hangup(t, c)
	rec := lastRecord(t, w.h, 1)
	if rec.AnsweredBy != "user:bob" {
		t.Errorf("answered by %q; trace %q", rec.AnsweredBy, rec.Trace)
	}
	if code := put(live[0].ID, "103"); code != 404 {
		t.Errorf("PUT on an ended call: %d, want 404", code)
	}
}
