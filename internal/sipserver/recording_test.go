package sipserver

import (
	"context"
	"math"
	"os"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/testphone"
)

// TestRecording: recording: always records from the bridge, manual starts
// when the callee dials # 7 and plays the notice to both sides; the file
// is stereo with the caller's audio on the left and the callee's on the
// right.
func TestRecording(t *testing.T) {
	w := newWorld(t)
	bob := w.user("bob", "pb", testphone.Behavior{Play: testphone.Tone(1000)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, number := range []string{"+34910000017", "+34910000018"} {
		c, err := w.call(number, "+34911222333", "", testphone.DialOptions{Play: testphone.Tone(425)()})
		if err != nil {
			t.Fatal(err)
		}
		bc := incoming(t, bob)
		if number == "+34910000018" {
			time.Sleep(300 * time.Millisecond) // talk before recording starts
			if err := bc.SendDTMF(ctx, "#7"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second) // the notice plays to both sides
			for who, call := range map[string]*testphone.Call{"caller": c, "callee": bc} {
				if score := heardPrompt(t, call.Heard(3*time.Second), "press-one"); score < 0.7 {
					t.Errorf("the %s did not hear the recording notice (correlation %.2f)", who, score)
				}
			}
		}
		time.Sleep(time.Second)
		hangup(t, c)
		rec := lastRecord(t, w.h, i+1)
		if rec.Recording == "" {
			t.Fatalf("%s: no recording in the record: %+v", number, rec)
		}
		left, right, err := media.ReadStereoWAV(rec.Recording)
		if err != nil {
			t.Fatalf("%s: %v", number, err)
		}
		tail := func(s []int16) []int16 { return s[max(0, len(s)-4000):] } // the last 0.5 s: after any notice
		if f, ok := media.DominantFrequency(tail(left), []float64{425, 1000}); !ok || f != 425 {
			t.Errorf("%s: left channel %v %v, want the caller's 425 Hz", number, f, ok)
		}
		if f, ok := media.DominantFrequency(tail(right), []float64{425, 1000}); !ok || f != 1000 {
			t.Errorf("%s: right channel %v %v, want the callee's 1000 Hz", number, f, ok)
		}
		if secs := float64(len(left)) / 8000; secs < 0.8 {
			t.Errorf("%s: recording of %.1fs", number, secs)
		}
		if fi, err := os.Stat(rec.Recording); err != nil || rec.RecordingBytes != fi.Size() ||
			math.Abs(rec.RecordingLength.Seconds()-float64(len(left))/8000) > 0.05 {
			t.Errorf("%s: record says %s / %d bytes for the file (%v)", number, rec.RecordingLength, rec.RecordingBytes, err)
		}
	}
}
