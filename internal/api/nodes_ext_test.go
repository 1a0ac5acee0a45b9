package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestTwoNodesLiveAndMedia: two nodes on one PostgreSQL sharing one
// --media-dir. A call that lands on node a, to bob registered through
// node b, is in b's live list (named by a's node id) and b's event stream
// while it is up, and once it has ended b serves its recording; a
// voicemail left through a is served by b too.
func TestTwoNodesLiveAndMedia(t *testing.T) {
	db := nodetest.PostgresURL(t)
	mediaDir := t.TempDir()
	a := nodetest.Run(t, fmt.Sprintf(acmeDoc, builtinDir(t)), nodetest.Options{DB: db, TTS: stubTTS{}, MediaDir: mediaDir, NodeID: "node-a"})
	b := nodetest.Run(t, "", nodetest.Options{DB: db, TTS: stubTTS{}, MediaDir: mediaDir, NodeID: "node-b"})
	// a learns of b at its next heartbeat (every second); until then a,
	// alone as far as it knows, relays no live events.
	time.Sleep(1200 * time.Millisecond)
	userPhone(t, b, "bob", bobPW, testphone.Behavior{Play: testphone.Tone(1000)})
	secret, _, err := b.Store.NewToken(context.Background(), "acme", "watch-b", true)
	if err != nil {
		t.Fatal(err)
	}
	evs := openEvents(t, b, secret)
	c, err := dial(t, a, carrierPhone(t), "+34910000003", "+34911222333")
	if err != nil {
		t.Fatal(err)
	}
	started := next(t, evs, "call.started")
	id, _ := started.Data["call"].(string)
	if id == "" || started.Data["number"] != "+34910000003" {
		t.Fatalf("b's stream: call.started %+v", started)
	}
	cb := newClient(t, b, "acme", "reader-b", true, 1)
	var live struct {
		Calls []struct {
			ID, Node, Number string
		} `json:"calls"`
	}
	// Another node's calls are read from the database, where the call
	// writer puts them within its batching delay.
	liveOnB := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			want(t, cb.do("GET", "/acme/calls?state=live", nil), 200).decode(t, &live)
			if len(live.Calls) == n || time.Now().After(deadline) {
				return
			}
		}
	}
	liveOnB(1)
	if len(live.Calls) != 1 || live.Calls[0].ID != id || live.Calls[0].Node != "node-a" || live.Calls[0].Number != "+34910000003" {
		t.Errorf("b's live calls while the call is up on a: %+v", live)
	}
	time.Sleep(500 * time.Millisecond) // half a second of bob's tone recorded
	hangup(t, c)
	if ev := next(t, evs, "call.completed"); ev.Data["call"] != id {
		t.Errorf("b's stream: call.completed %+v", ev)
	}
	liveOnB(0)
	if len(live.Calls) != 0 {
		t.Errorf("b's live calls after the hangup: %+v", live)
	}
	var rec struct {
		Recording *struct {
			Bytes int64 `json:"bytes"`
		} `json:"recording"`
	}
	for deadline := time.Now().Add(5 * time.Second); rec.Recording == nil; {
		if res := cb.do("GET", "/acme/calls/"+id, nil); res.Status == 200 {
			res.decode(t, &rec)
		}
		if rec.Recording == nil && time.Now().After(deadline) {
			t.Fatal("the call's record on b names no recording")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := want(t, cb.do("GET", "/acme/calls/"+id+"/recording", nil), 200)
	if r.Header.Get("Content-Type") != "audio/wav" || len(r.Body) < 44+8000 {
		t.Errorf("b serves a's recording: %s, %d bytes", r.Header.Get("Content-Type"), len(r.Body))
	}

	const vmFrom = "+34911222444"
	vc, err := dial(t, a, carrierPhone(t), "+34910000004", vmFrom, testphone.DialOptions{Play: media.Sine(425)})
	if err != nil {
		t.Fatalf("voicemail call on a: %v", err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := vc.WaitForTone(wctx, 1000, 100*time.Millisecond); err != nil {
		t.Errorf("voicemail on a: no beep: %v", err)
	}
	cancel()
	time.Sleep(1200 * time.Millisecond)
	hangup(t, vc)
	vm := waitCall(t, a, vmFrom, time.Time{}, func(r *store.CallRecord) bool { return ended(r) && r.Voicemail != "" })
	r = want(t, cb.do("GET", "/acme/voicemails/"+vm.ID+"/audio", nil), 200)
	if r.Header.Get("Content-Type") != "audio/wav" || len(r.Body) < 44+8000 {
		t.Errorf("b serves a voicemail left on a: %s, %d bytes", r.Header.Get("Content-Type"), len(r.Body))
	}
}
