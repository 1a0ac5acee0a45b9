package media

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// stallingRTPWriter records when each packet was written and blocks the writing
// goroutine once, as a starved CPU would.
type stallingRTPWriter struct {
	mu      sync.Mutex
	at      []time.Time
	ts      []uint32
	stallAt int
	stall   time.Duration
}

func (w *stallingRTPWriter) WriteRTP(pkt *rtp.Packet) error {
	w.mu.Lock()
	w.at = append(w.at, time.Now())
	w.ts = append(w.ts, pkt.Timestamp)
	n := len(w.at)
	w.mu.Unlock()
	if n == w.stallAt {
		time.Sleep(w.stall)
	}
	return nil
}

// TestPlayerKeepsSchedule: after a stall shorter than playerCatchUp the
// Player sends the frames it owes and is back on its 20 ms schedule, with
// timestamps still 160 apart; after a longer one the timestamps skip the
// time lost. Either way each packet leaves when its timestamp says.
func TestPlayerKeepsSchedule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall time.Duration
		skip  bool // whether the timestamps skip time
	}{
		{"short stall", 70 * time.Millisecond, false},
		{"long stall", 250 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &stallingRTPWriter{stallAt: 5, stall: tc.stall}
			p := NewPlayer(w, PCMU, 0)
			const frames = 30
			if err := p.Play(context.Background(), Limit(Silence(), frames*FrameDuration)); err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if len(w.at) != frames {
				t.Fatalf("%d packets, want %d", len(w.at), frames)
			}
			if skipped := w.ts[frames-1]-w.ts[0] != (frames-1)*FrameSamples; skipped != tc.skip {
				t.Errorf("timestamps advanced %d over %d frames: skipped time %v, want %v",
					w.ts[frames-1]-w.ts[0], frames-1, skipped, tc.skip)
			}
			// The last packets leave when their timestamps say (a ticker
			// would leave them 40 ms late after the short stall), within a
			// tolerance for a loaded machine.
			for k := frames - 5; k < frames; k++ {
				due := w.at[0].Add(time.Duration(w.ts[k]-w.ts[0]) * time.Second / SampleRate)
				if off := w.at[k].Sub(due); off > 15*time.Millisecond || off < -15*time.Millisecond {
					t.Errorf("packet %d sent %v off its schedule", k, off)
				}
			}
		})
	}
}
