package events

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
)

func TestSignKnownAnswer(t *testing.T) {
	// python3: hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
	body := []byte(`{"id":"evt_1","type":"call.completed"}`)
	got := Sign([]byte("whsec_test"), time.Unix(1700000000, 999_000_000), body)
	want := "t=1700000000,v1=ae8f5284d8343c921cd4611caa0380cdd87c3b5315eb8f564379543765a26705"
	if got != want {
		t.Fatalf("Sign = %s\nwant   %s", got, want)
	}
	if err := Verify(want, body, [][]byte{[]byte("whsec_test")}, time.Unix(1700000030, 0), 5*time.Minute); err != nil {
		t.Fatalf("Verify of the known answer: %v", err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"x"}`)
	oldS, newS := []byte("whsec_old"), []byte("whsec_new")
	byNew := Sign(newS, now, body)
	byOld := Sign(oldS, now, body)
	tests := []struct {
		name    string
		header  string
		body    []byte
		secrets [][]byte
		now     time.Time
		want    error
	}{
		{"new secret", byNew, body, [][]byte{newS, oldS}, now, nil},
		{"old secret during the rotation", byOld, body, [][]byte{newS, oldS}, now, nil},
		{"old secret after it expired", byOld, body, [][]byte{newS}, now, ErrSignatureMismatch},
		{"other body", byNew, []byte(`{"id":"y"}`), [][]byte{newS}, now, ErrSignatureMismatch},
		{"two signatures, one good", byOld + ",v1=" + strings.Repeat("00", 32), body, [][]byte{oldS}, now, nil},
		{"spaces and unknown fields", " t=1700000000 , v0=zz, " + byNew[len("t=1700000000,"):], body, [][]byte{newS}, now, nil},
		{"too old", byNew, body, [][]byte{newS}, now.Add(6 * time.Minute), ErrSignatureExpired},
		{"from the future", byNew, body, [][]byte{newS}, now.Add(-6 * time.Minute), ErrSignatureExpired},
		{"empty", "", body, [][]byte{newS}, now, ErrNoSignature},
		{"no timestamp", byNew[len("t=1700000000,"):], body, [][]byte{newS}, now, ErrNoSignature},
		{"bad hex", "t=1700000000,v1=xyz", body, [][]byte{newS}, now, ErrNoSignature},
		{"no secrets", byNew, body, nil, now, ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.header, tt.body, tt.secrets, tt.now, 5*time.Minute)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if err := Verify(byNew, body, [][]byte{newS}, now.Add(time.Hour), 0); err != nil {
		t.Fatalf("tolerance 0 checks no time: %v", err)
	}
}

// TestVerifyRotatedSecret signs with the store's secrets across a rotation:
// the old secret stays valid for the overlap, then only the new one is.
func TestVerifyRotatedSecret(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := t.Context()
		secrets := func() [][]byte {
			cur, prev, err := st.WebhookSecrets(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			out := [][]byte{[]byte(cur)}
			if prev != "" {
				out = append(out, []byte(prev))
			}
			return out
		}
		body := []byte(`{"id":"e"}`)
		old := secrets()[0]
		byOld := Sign(old, time.Now(), body)
		newS, err := st.RotateWebhookSecret(ctx, "acme", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		byNew := Sign([]byte(newS), time.Now(), body)
		for name, h := range map[string]string{"old": byOld, "new": byNew} {
			if err := Verify(h, body, secrets(), time.Now(), time.Minute); err != nil {
				t.Errorf("during the overlap, the %s secret's signature: %v", name, err)
			}
		}
		time.Sleep(400 * time.Millisecond)
		if err := Verify(byOld, body, secrets(), time.Now(), time.Minute); !errors.Is(err, ErrSignatureMismatch) {
			t.Errorf("after the overlap, the old secret's signature: %v, want a mismatch", err)
		}
		if err := Verify(byNew, body, secrets(), time.Now(), time.Minute); err != nil {
			t.Errorf("after the overlap, the new secret's signature: %v", err)
		}
	})
}
