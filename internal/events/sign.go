package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of a webhook request:
// "t=UNIX,v1=HEX", HEX the HMAC-SHA256 of "UNIX.BODY" under the account's
// secret (the secret string's bytes). During a rotation a receiver accepts
// either of the two secrets.
const SignatureHeader = "Switchboard-Signature"

// EventIDHeader carries the event's id (also the payload's "id").
const EventIDHeader = "Switchboard-Event-Id"

// Sign returns the Switchboard-Signature value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Switchboard-Signature header against body: one of its v1
// signatures must be body's under one of secrets, and its timestamp within
// tolerance of now (either side; tolerance ≤ 0 skips the check), so that a
// captured request cannot be replayed later. Unknown fields are ignored, so
// that future signature versions can be added beside v1.
func Verify(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	var (
		ts   string
		sigs [][]byte
	)
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	matched := false
	for _, secret := range secrets {
		want := mac(secret, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				matched = true
			}
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
			return fmt.Errorf("%w: signed %v ago", ErrSignatureExpired, d.Round(time.Second))
		}
	}
	return nil
}
