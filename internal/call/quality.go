package call

import (
	"slices"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/store"
)

// callerParty is the name of the caller's entry in a record's quality.
const callerParty = "caller"

// partyQuality is what the media of one party of the call looked like on
// sess, the session Switchboard talks to it on: what Switchboard received
// from it and sent to it. The RTCP that came since the last report interval
// is read first, so a round trip reported at the end counts.
func partyQuality(party string, sess *media.Session) store.LegQuality {
	sess.PollRTCP()
	q := media.QualityOf(sess.Stats())
	return store.LegQuality{Leg: party, PacketsSent: q.PacketsSent, PacketsReceived: q.PacketsReceived,
		Lost: q.Lost, LossRatio: q.LossRatio, Jitter: q.Jitter, RTT: q.RTT, RTTKnown: q.RTTKnown, MOS: q.MOS}
}

// noteQuality adds the quality of a party who answered (a member, or the
// user who picked a parked call up) to the record, before its session
// closes.
func (c *call) noteQuality(party string, sess *media.Session) {
	c.addQuality(len(c.rec.Quality), partyQuality(party, sess))
}

// noteCallerQuality puts the caller's quality first in the record when a
// party answered: the caller's session lasts the whole call, through
// every leg of a transfer, so it is taken once, at the end.
func (c *call) noteCallerQuality() {
	if c.sess == nil || len(c.rec.Quality) == 0 || c.rec.Quality[0].Leg == callerParty {
		return
	}
	c.addQuality(0, partyQuality(callerParty, c.sess))
}

// addQuality inserts q at i and keeps the record's MOS the lowest of its
// parties' (those with one).
func (c *call) addQuality(i int, q store.LegQuality) {
	c.rec.Quality = slices.Insert(c.rec.Quality, i, q)
	if q.MOS > 0 && (c.rec.MOS == 0 || q.MOS < c.rec.MOS) {
		c.rec.MOS = q.MOS
	}
}
