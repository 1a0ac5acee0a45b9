package media

import (
	"math"
	"time"
)

// Quality is what one party's media looked like over a call, from a
// Session's statistics: what we sent it and received from it, the loss and
// interarrival jitter of what we received (RFC 3550 A.3, A.8), the round
// trip from RTCP when the party sends reports, and the MOS those figures
// predict.
type Quality struct {
	PacketsSent, PacketsReceived uint64
	Lost                         int64   // packets lost in the stream received (RFC 3550); < 0 after duplicates
	LossRatio                    float64 // Lost over the packets expected, 0-1
	Jitter                       time.Duration
	RTT                          time.Duration // mean round trip; 0 when !RTTKnown
	RTTKnown                     bool
	// MOS is the estimated mean opinion score, 1-4.5 (see MOS); 0 when
	// nothing was received, so there is nothing to estimate.
	MOS float64
}

// Delay terms of the E-model input that a session cannot measure: the
// packetisation of one 20 ms frame, and the jitter buffer a receiver runs
// (assumed to hold twice the interarrival jitter).
const (
	packetisationDelay = FrameDuration
	jitterBufferFactor = 2
)

// QualityOf summarises a session's statistics. The one-way delay of the
// MOS estimate is half the mean RTT (0 when no RTT is known, the E-model's
// default of no network delay), plus a jitter buffer of twice the jitter,
// plus 20 ms of packetisation. Every codec Switchboard speaks is G.711.
func QualityOf(st SessionStats) Quality {
	q := Quality{
		PacketsSent:     st.PacketsOut,
		PacketsReceived: st.PacketsIn,
		Lost:            st.Lost,
		Jitter:          st.Jitter,
		RTTKnown:        st.RTTKnown,
	}
	if st.RTTKnown {
		q.RTT = st.RTTMean
	}
	if lost := max(st.Lost, 0); st.PacketsIn > 0 {
		q.LossRatio = float64(lost) / (float64(st.PacketsIn) + float64(lost))
	}
	if st.PacketsIn == 0 {
		return q
	}
	delay := q.RTT/2 + jitterBufferFactor*q.Jitter + packetisationDelay
	q.MOS = MOS(q.LossRatio, delay, PCMU)
	return q
}

// The simplified E-model (ITU-T G.107), with every input at its default
// but delay and packet loss: R = 93.2 - Id - Ie,eff (Is = 0, A = 0).
const (
	// rDefault is R0 - Is with the default inputs of G.107 (Table 3).
	rDefault = 93.2
	// g711Ie is the equipment impairment of G.711 (G.113 Appendix I).
	g711Ie = 0
	// g711Bpl is G.711's packet-loss robustness with packet loss
	// concealment (G.711 Appendix I; G.113 Appendix I gives 25.1, and 4.3
	// without concealment). Switchboard relays G.711 end to end, so loss
	// is concealed, or not, by the phones and gateways, and practically
	// every one of those implements Appendix I: 4.3 would rate a call with
	// 2 % loss at 3.25, worse than it sounds on any of them.
	g711Bpl = 25.1
	// burstR is 1: loss taken as random (a session counts losses, not
	// their bursts).
	burstR = 1
)

// MOS estimates the mean opinion score (1-4.5) of a call with the given
// packet loss ratio (0-1) and one-way mouth-to-ear delay, by the simplified
// E-model of ITU-T G.107:
//
//	R      = 93.2 - Id - Ie,eff
//	Id     = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)    (d in ms, H the step function)
//	Ie,eff = Ie + (95 - Ie) Ppl / (Ppl/BurstR + Bpl)   (Ppl in %)
//	MOS    = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6    (1 at R <= 0, 4.5 at R >= 100)
//
// with G.711's Ie = 0 and Bpl = 25.1 (with packet loss concealment) and
// BurstR = 1. The Id term is Cole and Rosenbluth's fit of G.107's delay
// impairment. Both G.711 laws (PCMU, PCMA) rate the same; any other codec
// is rated as G.711. No loss and no delay give R = 93.2, MOS 4.41.
func MOS(lossRatio float64, oneWayDelay time.Duration, codec Codec) float64 {
	_ = codec // G.711 is the only family: PCMU and PCMA share Ie and Bpl
	ppl := 100 * min(max(lossRatio, 0), 1)
	if math.IsNaN(ppl) {
		ppl = 0
	}
	d := max(float64(oneWayDelay)/float64(time.Millisecond), 0)
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ie := g711Ie + (95-g711Ie)*ppl/(ppl/burstR+g711Bpl)
	return mosFromR(rDefault - id - ie)
}

// mosFromR converts the E-model's rating R to MOS (G.107 Annex B).
func mosFromR(r float64) float64 {
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return min(max(1+0.035*r+r*(r-60)*(100-r)*7e-6, 1), 4.5)
}
