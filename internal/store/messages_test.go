package store

import (
	"database/sql"
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
		n, err := s.AssignMessageDevices(ctx, "acme", "bob", []string{"sip:b1@h", "sip:b2@h"}, newTestID(), now, nil)
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

// TestAssignMessageDevicesStaleBindings: the user's messages follow the
// bindings the user has now. A delivery queued for a binding that no
// longer exists goes to a current device without the message (keeping its
// id, the Call-ID, and its attempts) or, when every current device has one,
// is retired; a binding gone that was delivered the message stands for one
// new device (that phone has it already); nothing changes without devices.
func TestAssignMessageDevicesStaleBindings(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := testContext(t)
		now := time.Now().Truncate(time.Microsecond)
		// m1: alice's phone answered 480 at its old Contact.
		if _, err := s.InsertMessage(ctx, testMessage("m1", now), []MessageDelivery{
			{ID: "d1", User: "alice", Device: "sip:alice@10.0.0.1:5060", Next: now},
		}, nil); err != nil {
			t.Fatal(err)
		}
		due, err := s.TakeDueDeliveries(ctx, now, time.Minute, 10)
		if err != nil || len(due) != 1 {
			t.Fatalf("due %+v, %v", due, err)
		}
		if _, _, err := s.RecordMessageAttempt(ctx, "d1", due[0].Delivery.Claim, MessageAttempt{At: now, Status: 480, Error: "480"},
			MessageQueued, now.Add(time.Hour), nil); err != nil {
			t.Fatal(err)
		}
		// m2: the desk phone has it; the mobile's old binding is queued; a
		// delivery still waits for a device too.
		if _, err := s.InsertMessage(ctx, testMessage("m2", now), []MessageDelivery{
			{ID: "e1", User: "alice", Device: "sip:alice@10.0.0.9:5060", Next: now.Add(time.Hour)},
			{ID: "e2", User: "alice", Device: "sip:alice@10.0.0.1:5060", Next: now.Add(time.Hour)},
			{ID: "e3", User: "alice", Device: "", Next: now.Add(time.Hour)},
		}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE message_deliveries SET state = 'delivered' WHERE id = 'e1'`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.AssignMessageDevices(ctx, "acme", "alice", nil, newTestID(), now, nil); err != nil || n != 0 {
			t.Fatalf("no devices: %d, %v; want nothing changed", n, err)
		}
		// The mobile is back under a new Contact; the desk is gone (its
		// binding expired) and is now at a new Contact too.
		devices := []string{"sip:alice@10.0.0.2:5060", "sip:alice@10.0.0.8:5060"}
		n, err := s.AssignMessageDevices(ctx, "acme", "alice", devices, newTestID(), now, nil)
		if err != nil {
			t.Fatal(err)
		}
		states := func(id string) map[string]string {
			m, err := s.Message(ctx, "acme", id)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for _, d := range m.Deliveries {
				out[d.ID] = fmt.Sprintf("%s %s %d", d.State, d.Device, d.Attempts)
			}
			return out
		}
		// m1: d1 moved to the first new device, which is not given the
		// message twice; the second new device gets its own.
		if got := fmt.Sprint(states("m1")); got != "map[d1:queued sip:alice@10.0.0.2:5060 1 new-1:queued sip:alice@10.0.0.8:5060 0]" {
			t.Errorf("m1 deliveries %s", got)
		}
		// m2: the waiting one and the stale queued one go to the two new
		// devices... the waiting first; e1 (delivered, binding gone) is
		// not used, as both devices got one of the others.
		if got := fmt.Sprint(states("m2")); got != "map[e1:delivered sip:alice@10.0.0.9:5060 0 e2:queued sip:alice@10.0.0.8:5060 0 e3:queued sip:alice@10.0.0.2:5060 0]" {
			t.Errorf("m2 deliveries %s", got)
		}
		if n != 4 {
			t.Errorf("%d due, want 4", n)
		}
		// Only one device now: the other deliveries of queued messages for
		// a binding gone are retired, except where the binding gone was
		// delivered the message (m2: e1 stands for the device... which has
		// e3 already, so e2 is retired).
		if _, err := s.AssignMessageDevices(ctx, "acme", "alice", devices[:1], newTestID(), now, nil); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(states("m1")); got != "map[d1:queued sip:alice@10.0.0.2:5060 1 new-1:retired sip:alice@10.0.0.8:5060 0]" {
			t.Errorf("m1 after the second device left: %s", got)
		}
		if got := fmt.Sprint(states("m2")); got != "map[e1:delivered sip:alice@10.0.0.9:5060 0 e2:retired sip:alice@10.0.0.8:5060 0 e3:queued sip:alice@10.0.0.2:5060 0]" {
			t.Errorf("m2 after the second device left: %s", got)
		}
		// bob's desk phone was delivered m3 and comes back under a new
		// Contact while his mobile (still registered) has yet to get it:
		// the desk is not sent m3 again.
		if _, err := s.InsertMessage(ctx, testMessage("m3", now), []MessageDelivery{
			{ID: "f1", User: "bob", Device: "sip:bob@10.0.0.3:5060", Next: now},
			{ID: "f2", User: "bob", Device: "sip:bob@10.0.0.4:5060", Next: now.Add(time.Hour)},
		}, nil); err != nil {
			t.Fatal(err)
		}
		due, err = s.TakeDueDeliveries(ctx, now, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		var events []string
		for _, d := range due {
			if d.Delivery.ID != "f1" {
				continue
			}
			if _, _, err := s.RecordMessageAttempt(ctx, "f1", d.Delivery.Claim, MessageAttempt{At: now, Status: 200}, MessageDelivered, now, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.AssignMessageDevices(ctx, "acme", "bob", []string{"sip:bob@10.0.0.5:5060", "sip:bob@10.0.0.4:5060"}, newTestID(), now,
			func(m *Message) []Event {
				events = append(events, m.ID+" "+m.State)
				return nil
			}); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(states("m3")); got != "map[f1:delivered sip:bob@10.0.0.3:5060 1 f2:queued sip:bob@10.0.0.4:5060 0]" {
			t.Errorf("m3: %s", got)
		}
		if len(events) != 0 {
			t.Errorf("events %v: no message's state changed", events)
		}
		// A message whose last queued delivery is retired while the
		// others failed has failed: its event is made with it.
		if _, err := s.InsertMessage(ctx, testMessage("m4", now), []MessageDelivery{
			{ID: "g1", User: "carol", Device: "sip:carol@10.0.0.6:5060", Next: now.Add(time.Hour)},
			{ID: "g2", User: "carol", Device: "sip:carol@10.0.0.7:5060", Next: now.Add(time.Hour)},
		}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE message_deliveries SET state = 'failed' WHERE id = 'g1'`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AssignMessageDevices(ctx, "acme", "carol", []string{"sip:carol@10.0.0.6:5060"}, newTestID(), now,
			func(m *Message) []Event {
				events = append(events, m.ID+" "+m.State)
				return []Event{{ID: "ev-" + m.ID, Account: m.Account, Type: "message." + m.State, Created: now, Body: []byte(`{}`)}}
			}); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(events); got != "[m4 failed]" {
			t.Errorf("events %s; want m4 failed", got)
		}
		if m, _ := s.Message(ctx, "acme", "m4"); m == nil || m.State != MessageFailed {
			t.Errorf("m4 = %+v", m)
		}
		evs, _ := s.QueuedEvents(ctx, "acme", 10)
		if len(evs) != 1 || evs[0].Type != "message.failed" {
			t.Errorf("queued events %+v", evs)
		}
	})
}
