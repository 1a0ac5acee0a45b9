package call

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/routing"
)

// PickupHeader carries a pickup one node sends another: the user of an
// account on whose behalf it picks up the call parked in the orbit of the
// Request-URI, signed with the secret the nodes share (--secret):
//
//	X-Switchboard-Pickup: ACCOUNT USER UNIX-SECONDS HMAC-SHA256-HEX
//
// The signature covers the account, user, orbit, Call-ID and time, so the
// header can be replayed neither on another call nor later than
// pickupMaxAge.
const PickupHeader = "X-Switchboard-Pickup"

const pickupMaxAge = 30 * time.Second

func pickupSig(secret []byte, account, user, orbit, callID, unix string) string {
	m := hmac.New(sha256.New, secret)
	for _, f := range []string{"pickup", account, user, orbit, callID, unix} {
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// pickupHeader signs a pickup of orbit for account's user on the INVITE
// whose Call-ID is callID.
func pickupHeader(secret []byte, account, user, orbit, callID string, now time.Time) sip.Header {
	unix := strconv.FormatInt(now.Unix(), 10)
	return sip.NewHeader(PickupHeader, strings.Join([]string{account, user, unix, pickupSig(secret, account, user, orbit, callID, unix)}, " "))
}

// PeerPickup checks the PickupHeader of an INVITE from another node at now:
// the account and user it picks up for, ok only when the signature is the
// secret's and it is fresh. An empty secret accepts none.
func PeerPickup(secret []byte, req *sip.Request, now time.Time) (account, user string, ok bool) {
	h := req.GetHeader(PickupHeader)
	if len(secret) == 0 || h == nil || req.CallID() == nil {
		return "", "", false
	}
	f := strings.Fields(h.Value())
	if len(f) != 4 {
		return "", "", false
	}
	at, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return "", "", false
	}
	if age := now.Sub(time.Unix(at, 0)); age > pickupMaxAge || age < -pickupMaxAge {
		return "", "", false
	}
	want := pickupSig(secret, f[0], f[1], req.Recipient.User, req.CallID().Value(), f[2])
	if !hmac.Equal([]byte(want), []byte(f[3])) {
		return "", "", false
	}
	return f[0], f[1], true
}

// pickUpElsewhere picks up a call parked in orbit on another node: that
// node is sent a signed pickup INVITE, and once it answers (bridging its
// parked caller to us) the user is answered and bridged to it. false when
// no other node holds the orbit.
func (c *call) pickUpElsewhere(dctx context.Context, orbit string) bool {
	shared := c.e.cfg.Orbits
	n, err := strconv.Atoi(orbit)
	if shared == nil || len(c.e.cfg.Secret) == 0 || err != nil {
		return false
	}
	account := c.in.Snap.Account()
	node, addr, ok, err := shared.ParkedAt(dctx, account, n)
	if err != nil {
		c.log.Error("look up a park orbit", "orbit", orbit, "err", err)
		return false
	}
	if !ok || node == c.e.cfg.Node {
		return false
	}
	c.tracef("orbit %s: the call waits on node %s (%s)", orbit, node, addr)
	var u sip.Uri
	if err := sip.ParseUri("sip:"+orbit+"@"+addr, &u); err != nil {
		c.tracef("node %s: address %q: %v", node, addr, err)
		return false
	}
	d := dest{member: "orbit:" + orbit, uri: u, pickup: &peerPickup{account: account, user: c.in.User, orbit: orbit}}
	wctx, cancel := context.WithTimeout(dctx, 10*time.Second)
	defer cancel()
	a := c.e.dial(c, wctx, d, "", make(chan string, 1))
	if a.leg == nil {
		c.tracef("node %s did not hand over orbit %s: %s %s", node, orbit, a.class, a.why)
		c.rec.Outcome, c.cause = string(routing.OutcomeNotFound), CauseOrbitEmpty
		c.refuse(ErrNotFound)
		return true
	}
	if !c.answerCaller() {
		a.leg.bye()
		a.leg.close()
		return true
	}
	c.bridge(context.Background(), dctx, result{leg: a.leg})
	return true
}

// peerPickup is what a pickup INVITE to another node signs.
type peerPickup struct{ account, user, orbit string }
