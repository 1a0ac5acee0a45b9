package registrar

import (
	"context"
	"testing"
	"time"
)

func TestMemContacts(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewMemContacts()
	put := func(user, uri string, ttl time.Duration) {
		if err := s.PutContact(ctx, Contact{Account: "a", User: user, URI: uri, Expires: now.Add(ttl)}); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", "sip:2@x", time.Hour)
	put("alice", "sip:1@x", time.Minute)
	put("alice", "sip:1@x", 2*time.Hour) // replaces
	put("bob", "sip:b@x", time.Hour)
	cs, _ := s.Contacts(ctx, "a", "alice", now)
	if len(cs) != 2 || cs[0].URI != "sip:1@x" || !cs[0].Expires.Equal(now.Add(2*time.Hour)) {
		t.Fatalf("contacts = %+v", cs)
	}
	if cs, _ := s.Contacts(ctx, "a", "alice", now.Add(90*time.Minute)); len(cs) != 1 {
		t.Fatalf("after 90m: %+v", cs)
	}
	_ = s.DeleteContact(ctx, "a", "alice", "sip:1@x")
	_ = s.DeleteContact(ctx, "a", "alice", "sip:missing@x")
	if cs, _ := s.Contacts(ctx, "a", "alice", now); len(cs) != 0 {
		t.Fatalf("after delete: %+v", cs)
	}
	if cs, _ := s.Contacts(ctx, "a", "bob", now); len(cs) != 1 {
		t.Fatalf("bob: %+v", cs)
	}
}
