// Package media is Switchboard's media path: RTP sessions on UDP port pairs,
// G.711 µ-law/A-law codecs and transcoding, RFC 4733 telephone-events (DTMF),
// tone generation and detection, WAV prompts and recordings, SDP offer/answer,
// and the Bridge that relays audio between the two legs of a call.
//
// Everything here works on 8 kHz audio: G.711 and telephone-event share an
// 8000 Hz RTP clock, and linear audio is 16-bit signed PCM in 20 ms frames of
// 160 samples (FrameSamples).
//
// A call leg, as the SIP layer is expected to drive it:
//
//	ports, _ := media.NewPortAllocator(ip, 10000, 20000) // once per process
//	sess, _ := ports.NewSession(media.SessionConfig{Logger: log})
//	defer sess.Close()
//	remote, err := media.ParseSDP(invite.Body())    // ErrMalformedSDP/ErrNoAudio: 400 or 488
//	neg, err := media.Negotiate(remote)               // ErrNoCommonCodec: 488
//	sess.SetRemote(neg.Remote)
//	answer, _ := media.LocalSDP{IP: ip, Port: sess.Port(), SessionID: id}.Answer(neg)
//	// early media / prompts before bridging:
//	media.NewPlayer(sess, neg.Codec, neg.PayloadType).Play(ctx, media.Ringback())
//	// once the callee leg (sessB, negB from the 200 OK's SDP) answers:
//	br, _ := media.NewBridge(neg.Leg(sess), negB.Leg(sessB), log)
//	br.Start(ctx)
//	defer br.Close()
//
// The per-packet paths (Session.ReadRTP, Session.WriteRTP, the Bridge relay
// and the Player) do not allocate in steady state and do not log above Debug.
package media
