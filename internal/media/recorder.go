package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Recorder tuning. Positions and distances are in samples (8 kHz).
const (
	// recRing is the timeline the Recorder holds in memory (320 ms): audio
	// is placed there and written once final.
	recRing = 16 * FrameSamples
	// recInbox is how many frames Left and Right queue for the writer,
	// the batch it is placing included: 480 ms of both sides, so 400 ms
	// beyond a batch. When the writer is that far behind, frames are
	// dropped instead of buffered.
	recInbox = 48
	// recWakeAt starts the writer once this many frames wait: it runs
	// about every 80 ms, not for every packet.
	recWakeAt = 8
	// recLatency: a position this far behind the newest arrival is final
	// and written out.
	recLatency = 5 * FrameSamples
	// recJump: a side whose arrivals are this far off its cursor is
	// re-anchored at once (later: a gap, filled with silence) or drops the
	// frame (earlier: a burst after a stall).
	recJump = 3 * FrameSamples
	// recWindow frames per side are watched; if even the earliest of them
	// arrived more than recSlack off the cursor, the cursor moves by that
	// much (lost packets, clock drift, a late first packet). Jitter alone
	// does not move it: some packet of the window arrives on time.
	recWindow = 8
	recSlack  = FrameSamples / 2
	// recChunk is the most the writer hands WAVWriter at once (100 ms).
	recChunk = 5 * FrameSamples
	// recCheckpoint: the WAV header is patched every 0.5 s of audio, so a
	// crash leaves a readable file missing well under a second.
	recCheckpoint = SampleRate / 2
)

// recFrame is up to one frame of one side, stamped with its arrival.
type recFrame struct {
	end  int64 // timeline position just after its last sample, by arrival time
	side uint8
	n    uint16
	pcm  [FrameSamples]int16
}

// Recorder writes a call as a stereo 16-bit 8 kHz WAV file: the caller
// (Left, bridge side A) on the left channel, the callee (Right, side B) on
// the right. The two sides arrive on different goroutines at their own
// pace; each frame is placed on a common timeline by its arrival time
// (relative to NewRecorder), so a side that sends nothing (muted, on hold,
// silence suppression, not yet answered) is silent in the file and the
// channels stay aligned. Within a side, consecutive frames are kept
// contiguous; the side's cursor follows its arrival times to within about
// 10 ms (recSlack), correcting for lost packets and drift after a few
// packets and for gaps longer than 60 ms at once.
//
// Left and Right only copy the samples into a bounded queue and never
// block on the file: the writer places and writes them, 100 ms behind the
// newest arrival. The writer is not a goroutine of its own for the whole
// call: whenever 80 ms of frames wait and it is not already running, it
// is started on a new goroutine that ends once the queue is drained, so a
// recording holds no stack between batches. Memory is fixed (about 30 KiB)
// however long the call and whatever either side does; if the writer falls
// 400 ms behind, frames are dropped and counted.
//
// Close must be called: it waits for a running writer, writes what is left
// and patches the header. The header is also patched every 0.5 s while
// recording, so the file is readable after a crash.
type Recorder struct {
	t0 time.Time

	mu sync.Mutex // guards the fields below
	// writing: a writer goroutine is running (it owns the writer state
	// below); idle is signalled when it ends.
	writing bool
	idle    sync.Cond
	// The queue: a ring of frames filled by Left and Right at head+queued
	// and placed by the writer from head, in place. While the writer
	// places a batch (without the lock), the batch's frames stay counted
	// in queued, so that Left and Right never write over them.
	inbox   [recInbox]recFrame
	head    int
	queued  int
	closed  bool
	dropped uint64
	err     error

	// Writer state, owned by the running writer goroutine (and by Close
	// once none is running and none can start).
	ww       *WAVWriter
	werr     error // the writer's copy of err
	ring     [2][recRing]int16
	wpos     int64    // timeline position written to the file
	cur      [2]int64 // where each side's next sample goes
	anchored [2]bool
	winMin   [2]int64 // earliest (arrival - cursor) in the window
	winN     [2]int
	hi       int64 // end of the latest audio placed
	maxEnd   int64 // newest arrival
	patched  int64 // wpos at the last header patch
	lost     uint64

	closeOnce sync.Once
	duration  time.Duration
}

// NewRecorder starts a recording into w at its current offset; the
// timeline starts now. w is not closed by the Recorder. A failure to write
// the header is returned by Err and Close, and the audio is then discarded.
func NewRecorder(w io.WriteSeeker) *Recorder {
	r := &Recorder{t0: time.Now()}
	r.idle.L = &r.mu
	ww, err := NewWAVWriter(w)
	if err != nil {
		r.err, r.werr = err, err
	}
	r.ww = ww
	return r
}

// Left records audio from the caller (usable as Bridge.SetTap(SideA, ...)).
// It copies samples and returns at once; it is safe to call concurrently
// with Right, and does nothing after Close.
func (r *Recorder) Left(samples []int16) { r.put(0, samples, time.Now()) }

// Right records audio from the callee (Bridge.SetTap(SideB, ...)).
func (r *Recorder) Right(samples []int16) { r.put(1, samples, time.Now()) }

// Err returns the first write error so far, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Dropped returns how many frames (of up to 20 ms of one side) were not
// recorded: the writer was too far behind, or a side delivered a burst
// running more than 60 ms ahead of real time.
func (r *Recorder) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Close writes the audio still held, patches the WAV header and returns the
// recording's length (up to the end of the last audio received). Calling it
// again returns the same result.
func (r *Recorder) Close() (time.Duration, error) {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true // no writer starts from now on
		for r.writing {
			r.idle.Wait()
		}
		r.mu.Unlock()
		r.writeBatch(true)
		r.duration = time.Duration(r.wpos) * time.Second / SampleRate
		if r.werr == nil {
			if err := r.ww.Close(); err != nil {
				r.werr = err
			}
		}
		r.mu.Lock()
		r.err = r.werr
		r.dropped += r.lost
		r.mu.Unlock()
	})
	return r.duration, r.Err()
}

// position is t on the recording timeline, in samples.
func (r *Recorder) position(t time.Time) int64 {
	return int64(t.Sub(r.t0)) * SampleRate / int64(time.Second)
}

// put queues samples of side that arrived at at.
func (r *Recorder) put(side uint8, samples []int16, at time.Time) {
	end := r.position(at)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	for len(samples) > 0 {
		n := min(len(samples), FrameSamples)
		if r.queued == recInbox {
			r.dropped++
		} else {
			f := &r.inbox[(r.head+r.queued)%recInbox]
			r.queued++
			f.end = end - int64(len(samples)-n)
			f.side, f.n = side, uint16(n)
			copy(f.pcm[:], samples[:n])
		}
		samples = samples[n:]
	}
	start := r.queued >= recWakeAt && !r.writing
	r.writing = r.writing || start
	r.mu.Unlock()
	if start {
		go r.drain()
	}
}

// drain is the writer goroutine: it writes batches until fewer than
// recWakeAt frames wait, then ends.
func (r *Recorder) drain() {
	for {
		r.writeBatch(false)
		r.mu.Lock()
		if r.queued < recWakeAt || r.closed {
			r.writing = false
			r.idle.Broadcast()
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// writeBatch places the frames queued and writes out the audio now final
// (the last batch, by Close: all of it).
func (r *Recorder) writeBatch(final bool) {
	r.mu.Lock()
	head, batch := r.head, r.queued
	r.mu.Unlock()
	for i := range batch {
		r.place(&r.inbox[(head+i)%recInbox])
	}
	r.mu.Lock()
	r.head = (head + batch) % recInbox
	r.queued -= batch
	r.mu.Unlock()
	if final {
		r.flushTo(r.hi)
		return
	}
	r.flushTo(r.maxEnd - recLatency)
	if r.wpos-r.patched >= recCheckpoint && r.werr == nil {
		r.patched = r.wpos
		if err := r.ww.Close(); err != nil { // patches the sizes, stays usable
			r.fail(err)
		}
	}
}

// place puts one frame on the timeline.
func (r *Recorder) place(f *recFrame) {
	s := f.side
	n := int64(f.n)
	r.maxEnd = max(r.maxEnd, f.end)
	e := f.end - n // where the frame starts by its arrival
	off := e - r.cur[s]
	switch {
	case !r.anchored[s] || off > recJump:
		// First audio of this side, or a gap: start at the arrival
		// position; the gap stays silent.
		r.cur[s], r.anchored[s], off = e, true, 0
		r.winN[s] = 0
	case off < -recJump:
		// Running ahead of real time (a burst after a stall): drop rather
		// than let the side drift ahead of the other.
		r.lost++
		return
	}
	if r.winN[s] == 0 || off < r.winMin[s] {
		r.winMin[s] = off
	}
	r.write(s, r.cur[s], f.pcm[:n])
	r.cur[s] += n
	r.hi = max(r.hi, r.cur[s])
	if r.winN[s]++; r.winN[s] == recWindow {
		r.winN[s] = 0
		if d := r.winMin[s]; d > recSlack || d < -recSlack {
			// Even the earliest packet of the window was off by d: move the
			// cursor (forward leaves silence, back drops the overlap).
			from := r.cur[s]
			r.cur[s] = max(r.cur[s]+d, r.wpos)
			if r.cur[s] < from {
				r.clear(s, r.cur[s], from)
			}
		}
	}
}

// write copies pcm of side s to the ring at timeline position pos, after
// writing out what the ring must make room for. Audio before wpos (too
// late) is dropped.
func (r *Recorder) write(s uint8, pos int64, pcm []int16) {
	if pos < r.wpos {
		skip := r.wpos - pos
		if skip >= int64(len(pcm)) {
			return
		}
		pcm, pos = pcm[skip:], r.wpos
	}
	if over := pos + int64(len(pcm)) - (r.wpos + recRing); over > 0 {
		r.flushTo(r.wpos + over)
	}
	i := int(pos % recRing)
	k := copy(r.ring[s][i:], pcm)
	copy(r.ring[s][:], pcm[k:])
}

// clear silences side s from position from to to (both within the ring).
func (r *Recorder) clear(s uint8, from, to int64) {
	for from < to {
		i := int(from % recRing)
		k := int(min(to-from, int64(recRing-i)))
		clear(r.ring[s][i : i+k])
		from += int64(k)
	}
}

// flushTo writes the timeline up to end to the file.
func (r *Recorder) flushTo(end int64) {
	for r.wpos < end {
		i := int(r.wpos % recRing)
		k := int(min(end-r.wpos, int64(recRing-i), recChunk))
		left, right := r.ring[0][i:i+k], r.ring[1][i:i+k]
		if r.werr == nil {
			if err := r.ww.WriteFrame(left, right); err != nil {
				r.fail(err)
			}
		}
		clear(left)
		clear(right)
		r.wpos += int64(k)
	}
}

func (r *Recorder) fail(err error) {
	r.werr = err
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// ReadStereoWAV reads a recording made by Recorder (or any stereo 16-bit
// PCM 8 kHz WAV file) and returns its two channels.
func ReadStereoWAV(path string) (left, right []int16, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	w, err := parseWAV(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if w.format != wavFormatPCM || w.channels != 2 || w.bits != 16 || w.rate != SampleRate {
		return nil, nil, fmt.Errorf("%s: %w: want stereo 16-bit PCM at %d Hz, have %d channel(s) of %d-bit format %d at %d Hz",
			path, ErrUnsupportedWAV, SampleRate, w.channels, w.bits, w.format, w.rate)
	}
	frames := len(w.data) / 4
	left, right = make([]int16, frames), make([]int16, frames)
	for i := range frames {
		left[i] = int16(binary.LittleEndian.Uint16(w.data[4*i:]))
		right[i] = int16(binary.LittleEndian.Uint16(w.data[4*i+2:]))
	}
	return left, right, nil
}
