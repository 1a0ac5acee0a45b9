package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func testMessage(id string, created time.Time) *Message {
	return &Message{ID: id, Account: "acme", Direction: DirectionInbound, Number: "+15550100", From: "+15557777",
		To: "+15550100", ContentType: "text/plain", Body: "hello " + id, State: MessageQueued, Created: created}
}

func TestMessageInsertDedupAndRead(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		now := time.Now().Truncate(time.Microsecond)
		m := testMessage("m1", now)
		m.Dedup = "call-1/1 MESSAGE"
		ds := []MessageDelivery{
			{ID: "d1", User: "alice", Device: "sip:alice@127.0.0.1:5070", Next: now},
			{ID: "d2", User: "alice", Device: "sip:alice@127.0.0.1:5080", Next: now},
		}
		ev := Event{ID: "ev-1", Account: "acme", Type: "message.received", Created: now, Body: []byte(`{}`)}
		created, err := s.InsertMessage(ctx, m, ds, []Event{ev})
		if err != nil || !created {
			t.Fatalf("InsertMessage = %v, %v", created, err)
		}
		again := testMessage("m2", now.Add(time.Second))
		again.Dedup = "call-1/1 MESSAGE"
		created, err = s.InsertMessage(ctx, again, ds, nil)
		if err != nil || created || again.ID != "m1" {
			t.Fatalf("retransmission: created %v, id %s, err %v; want the stored m1", created, again.ID, err)
		}
		// No dedup key: two API messages are two messages.
		for _, id := range []string{"a1", "a2"} {
			if created, err := s.InsertMessage(ctx, testMessage(id, now), nil, nil); err != nil || !created {
				t.Fatalf("InsertMessage(%s) = %v, %v", id, created, err)
			}
		}
		got, err := s.Message(ctx, "acme", "m1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Body != "hello m1" || len(got.Deliveries) != 2 || got.Deliveries[0].State != MessageQueued {
			t.Fatalf("Message = %+v", got)
		}
		if _, err := s.Message(ctx, "other", "m1"); err == nil {
			t.Fatal("another account's message was found")
		}
		evs, err := s.QueuedEvents(ctx, "acme", 10)
		if err != nil || len(evs) != 1 || evs[0].Type != "message.received" {
			t.Fatalf("events = %+v, %v", evs, err)
		}
	})
}

func TestMessageDeliveryLifecycle(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		now := time.Now().Truncate(time.Microsecond)
		m := testMessage("m1", now)
		ds := []MessageDelivery{
			{ID: "d1", User: "alice", Device: "sip:a1@h", Next: now},
			{ID: "d2", User: "bob", Device: "", Next: now.Add(time.Hour)}, // waits for a device
		}
		if _, err := s.InsertMessage(ctx, m, ds, nil); err != nil {
			t.Fatal(err)
		}
		due, err := s.TakeDueDeliveries(ctx, now, time.Minute, 10)
		if err != nil || len(due) != 1 || due[0].Delivery.ID != "d1" || due[0].Message.Body != "hello m1" {
			t.Fatalf("TakeDueDeliveries = %+v, %v", due, err)
		}
		// Taken: no one else gets it while the lease lasts.
		if again, _ := s.TakeDueDeliveries(ctx, now.Add(time.Second), time.Minute, 10); len(again) != 0 {
			t.Fatalf("taken twice: %+v", again)
		}
		// A failed try keeps it queued; the message stays queued.
		claim1 := due[0].Delivery.Claim
		_, changed, err := s.RecordMessageAttempt(ctx, "d1", claim1, MessageAttempt{At: now, Status: 480, Error: "480 Temporarily Unavailable"},
			MessageQueued, now.Add(30*time.Second), nil)
		if err != nil || changed {
			t.Fatalf("RecordMessageAttempt(480) changed %v, %v", changed, err)
		}
		// Bob registers: his waiting delivery gets the device and is due.
		n, err := s.AssignMessageDevices(ctx, "acme", "bob", []string{"sip:b1@h", "sip:b2@h"}, newTestID(), now)
		if err != nil || n != 2 {
			t.Fatalf("AssignMessageDevices = %d, %v; want 2 due", n, err)
		}
		due, err = s.TakeDueDeliveries(ctx, now, time.Minute, 10)
		if err != nil || len(due) != 2 {
			t.Fatalf("after registering: due %+v, %v", due, err)
		}
		var calls int
		events := func(m *Message) []Event {
			calls++
			return []Event{{ID: fmt.Sprint("ev-", m.State), Account: m.Account, Type: "message." + m.State, Created: now, Body: []byte(`{}`)}}
		}
		msg, changed, err := s.RecordMessageAttempt(ctx, due[0].Delivery.ID, due[0].Delivery.Claim, MessageAttempt{At: now, Status: 200}, MessageDelivered, now, events)
		if err != nil || !changed || msg.State != MessageDelivered || calls != 1 {
			t.Fatalf("delivered: %+v changed %v calls %d err %v", msg, changed, calls, err)
		}
		// Settled already, or an old claim: nothing is recorded.
		if _, _, err := s.RecordMessageAttempt(ctx, due[0].Delivery.ID, due[0].Delivery.Claim, MessageAttempt{At: now, Status: 480}, MessageQueued, now, events); !errors.Is(err, ErrClaimLost) {
			t.Fatalf("settling a delivered delivery again: %v, want ErrClaimLost", err)
		}
		if _, _, err := s.RecordMessageAttempt(ctx, "d1", claim1, MessageAttempt{At: now, Status: 200}, MessageDelivered, now, events); !errors.Is(err, ErrClaimLost) {
			t.Fatalf("an old claim: %v, want ErrClaimLost", err)
		}
		// d1's retry comes due and is taken again: delivered, the message
		// was already.
		again, err := s.TakeDueDeliveries(ctx, now.Add(time.Minute), time.Minute, 10)
		if err != nil || len(again) != 2 {
			t.Fatalf("retries due: %+v, %v", again, err)
		}
		for _, d := range again {
			if d.Delivery.ID != "d1" {
				continue
			}
			_, changed, err = s.RecordMessageAttempt(ctx, "d1", d.Delivery.Claim, MessageAttempt{At: now, Status: 200}, MessageDelivered, now, events)
			if err != nil || changed || calls != 1 {
				t.Fatalf("a second delivery: changed %v, calls %d, err %v", changed, calls, err)
			}
		}
		got, err := s.Message(ctx, "acme", "m1")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Deliveries) != 3 {
			t.Fatalf("deliveries = %+v", got.Deliveries)
		}
		for _, d := range got.Deliveries {
			if d.ID == "d1" && (d.Attempts != 2 || len(d.Log) != 2 || d.Log[0].Status != 480 || d.State != MessageDelivered) {
				t.Fatalf("d1 = %+v", d)
			}
		}
		evs, _ := s.QueuedEvents(ctx, "acme", 10)
		if len(evs) != 1 || evs[0].Type != "message.delivered" {
			t.Fatalf("events = %+v", evs)
		}
	})
}

func TestMessageFailsWhenEveryDeliveryFails(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		now := time.Now().Truncate(time.Microsecond)
		ds := []MessageDelivery{{ID: "d1", Trunk: "carrier", Next: now}}
		m := testMessage("m1", now)
		m.Direction = DirectionOutbound
		if _, err := s.InsertMessage(ctx, m, ds, nil); err != nil {
			t.Fatal(err)
		}
		due, err := s.TakeDueDeliveries(ctx, now, time.Minute, 10)
		if err != nil || len(due) != 1 {
			t.Fatalf("due: %+v, %v", due, err)
		}
		msg, changed, err := s.RecordMessageAttempt(ctx, "d1", due[0].Delivery.Claim, MessageAttempt{At: now, Status: 403, Error: "403 Forbidden"}, MessageFailed, now, nil)
		if err != nil || !changed || msg.State != MessageFailed {
			t.Fatalf("= %+v, %v, %v", msg, changed, err)
		}
	})
}

func TestMessagesFilterAndPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		base := time.Now().Truncate(time.Microsecond)
		for i := range 5 {
			m := testMessage(fmt.Sprintf("m%d", i), base.Add(time.Duration(i)*time.Second))
			var ds []MessageDelivery
			if i%2 == 0 {
				ds = []MessageDelivery{{ID: fmt.Sprintf("d%d", i), User: "alice", Next: base}}
			} else {
				m.Direction, m.Sender, m.Number = DirectionOutbound, "bob", "+15550199"
			}
			if _, err := s.InsertMessage(ctx, m, ds, nil); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(ms []Message) (out []string) {
			for _, m := range ms {
				out = append(out, m.ID)
			}
			return out
		}
		cases := []struct {
			f    MessageFilter
			want string
		}{
			{MessageFilter{}, "[m4 m3 m2 m1 m0]"},
			{MessageFilter{User: "alice"}, "[m4 m2 m0]"},
			{MessageFilter{User: "bob"}, "[m3 m1]"},
			{MessageFilter{Direction: DirectionOutbound}, "[m3 m1]"},
			{MessageFilter{Number: "+15550199"}, "[m3 m1]"},
			{MessageFilter{State: MessageFailed}, "[]"},
			{MessageFilter{From: base.Add(time.Second), To: base.Add(3 * time.Second)}, "[m2 m1]"},
		}
		for _, c := range cases {
			c.f.Account = "acme"
			got, _, err := s.Messages(ctx, c.f)
			if err != nil || fmt.Sprint(ids(got)) != c.want {
				t.Errorf("Messages(%+v) = %v, %v; want %s", c.f, ids(got), err, c.want)
			}
		}
		var all []string
		cursor := ""
		for range 4 {
			page, next, err := s.Messages(ctx, MessageFilter{Account: "acme", Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ids(page)...)
			if cursor = next; cursor == "" {
				break
			}
		}
		if fmt.Sprint(all) != "[m4 m3 m2 m1 m0]" {
			t.Fatalf("pages = %v", all)
		}
		if _, _, err := s.Messages(ctx, MessageFilter{Account: "acme", Cursor: "bogus!"}); err == nil {
			t.Fatal("a bad cursor was accepted")
		}
	})
}

func newTestID() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("new-%d", n) }
}

// TestTakeDueDeliveriesOnce: nodes sharing a database taking due
// deliveries at the same moment never take the same one.
func TestTakeDueDeliveriesOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		now := time.Now().Truncate(time.Microsecond)
		const n = 60
		var ds []MessageDelivery
		for i := range n {
			ds = append(ds, MessageDelivery{ID: fmt.Sprintf("d%02d", i), User: "alice", Device: fmt.Sprintf("sip:a%d@h", i), Next: now})
		}
		if _, err := s.InsertMessage(ctx, testMessage("m1", now), ds, nil); err != nil {
			t.Fatal(err)
		}
		type result struct {
			ids []string
			err error
		}
		results := make(chan result, 4)
		for range 4 {
			go func() {
				var r result
				for {
					due, err := s.TakeDueDeliveries(ctx, now, time.Minute, 7)
					if err != nil || len(due) == 0 {
						r.err = err
						results <- r
						return
					}
					for _, d := range due {
						r.ids = append(r.ids, d.Delivery.ID)
					}
				}
			}()
		}
		seen := map[string]int{}
		for range 4 {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			for _, id := range r.ids {
				seen[id]++
			}
		}
		if len(seen) != n {
			t.Errorf("%d deliveries taken, want %d", len(seen), n)
		}
		for id, k := range seen {
			if k != 1 {
				t.Errorf("%s taken %d times", id, k)
			}
		}
	})
}
