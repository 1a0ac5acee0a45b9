package prompt

import (
	"bytes"
	"container/list"
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard/switchboard/internal/media"
)

// TTS renders text as 8 kHz mono 16-bit speech.
type TTS interface {
	Render(ctx context.Context, text string) ([]int16, error)
}

// ESpeak renders text with the espeak-ng command-line program. The zero
// value speaks English. Results are cached by (voice, text) in a small
// process-wide LRU, so reloading a configuration does not run espeak-ng again.
type ESpeak struct {
	Voice   string        // espeak-ng voice (-v); "" means DefaultVoice
	Timeout time.Duration // per rendering; 0 means DefaultTimeout
}

// Defaults of ESpeak.
const (
	DefaultVoice   = "en"
	DefaultTimeout = 10 * time.Second
	// MaxSayText is the longest text ESpeak renders (in bytes), about
	// five minutes of speech.
	MaxSayText = 4000
)

var _ TTS = ESpeak{}

const espeakBinary = "espeak-ng"

// Render runs `espeak-ng --stdout -v VOICE -- TEXT`, decodes the 22050 Hz WAV
// it writes to 8 kHz with media.DecodeWAV and trims the silence around the
// speech. A missing binary is ErrESpeakMissing.
func (e ESpeak) Render(ctx context.Context, text string) ([]int16, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, fmt.Errorf("%w: no text to say", ErrEmpty)
	}
	if len(text) > MaxSayText {
		return nil, fmt.Errorf("text is %d bytes, at most %d can be said", len(text), MaxSayText)
	}
	voice := e.Voice
	if voice == "" {
		voice = DefaultVoice
	}
	key := cacheKey{voice, text}
	if s, ok := renders.get(key); ok {
		return s, nil
	}
	bin, err := exec.LookPath(espeakBinary)
	if err != nil {
		return nil, ErrESpeakMissing
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var stdout bytes.Buffer
	var stderr strings.Builder
	// "--" so that a text starting with '-' is not taken for an option.
	cmd := exec.CommandContext(ctx, bin, "--stdout", "-v", voice, "--", text)
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: media.MaxWAVSize}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 4096}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		switch {
		case parent.Err() != nil:
			return nil, fmt.Errorf("espeak-ng: %w", context.Cause(parent))
		case ctx.Err() != nil:
			return nil, fmt.Errorf("espeak-ng timed out after %v", timeout)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("espeak-ng (voice %q): %v: %s", voice, err, msg)
		}
		return nil, fmt.Errorf("espeak-ng (voice %q): %w", voice, err)
	}
	data := stdout.Bytes()
	fixStreamedWAV(data)
	samples, err := media.DecodeWAV(data)
	if err != nil {
		return nil, fmt.Errorf("espeak-ng output: %w", err)
	}
	samples = slices.Clone(TrimSilence(samples)) // let the silence go
	if len(samples) == 0 {
		return nil, fmt.Errorf("%w: espeak-ng produced only silence", ErrEmpty)
	}
	renders.put(key, samples)
	return samples, nil
}

// fixStreamedWAV patches the sizes of a WAV that was written to a pipe:
// espeak-ng cannot seek back, so its RIFF and data sizes are placeholders
// (0x7ffff000) that media.DecodeWAV rightly rejects as truncated. The data
// chunk is taken to run to the end of b.
func fixStreamedWAV(b []byte) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	for off := 12; off+8 <= len(b); {
		size := int(binary.LittleEndian.Uint32(b[off+4:]))
		left := len(b) - off - 8
		if string(b[off:off+4]) == "data" {
			if size > left {
				binary.LittleEndian.PutUint32(b[off+4:], uint32(left))
			}
			return
		}
		if size > left {
			return
		}
		off += 8 + size + size&1
	}
}

// Trimming: anything quieter than trimLevel (about -40 dBFS) at either end is
// silence; trimPad of it is kept so that speech does not start abruptly.
const (
	trimLevel = 328
	trimPad   = 40 * media.SampleRate / 1000 // 40 ms
)

// TrimSilence returns the part of samples between the first and last sample
// louder than about -40 dBFS, with 40 ms of margin on each side. All-quiet
// input gives an empty slice. The result shares samples' memory.
func TrimSilence(samples []int16) []int16 {
	loud := func(x int16) bool { return x > trimLevel || x < -trimLevel }
	first := -1
	for i, x := range samples {
		if loud(x) {
			first = i
			break
		}
	}
	if first < 0 {
		return samples[:0]
	}
	last := first
	for i := len(samples) - 1; i > first; i-- {
		if loud(samples[i]) {
			last = i
			break
		}
	}
	return samples[max(first-trimPad, 0):min(last+1+trimPad, len(samples))]
}

// limitedBuffer fails a write that would grow buf past max bytes, which
// makes exec stop copying the child's output.
type limitedBuffer struct {
	buf interface {
		Write([]byte) (int, error)
		Len() int
	}
	max int
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, fmt.Errorf("output larger than %d bytes", w.max)
	}
	return w.buf.Write(p)
}

// renders caches espeak-ng results: configurations are reloaded on every
// apply, and most of their say: texts have not changed.
var renders = newLRU(64, 4<<20)

type cacheKey struct{ voice, text string }

// lru holds at most maxEntries renderings and maxSamples samples in total.
type lru struct {
	mu         sync.Mutex
	maxEntries int
	maxSamples int
	samples    int
	order      *list.List // front: most recently used; values are *lruEntry
	items      map[cacheKey]*list.Element
}

type lruEntry struct {
	key cacheKey
	val []int16
}

func newLRU(maxEntries, maxSamples int) *lru {
	return &lru{
		maxEntries: maxEntries,
		maxSamples: maxSamples,
		order:      list.New(),
		items:      map[cacheKey]*list.Element{},
	}
}

func (c *lru) get(k cacheKey) ([]int16, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry).val, true
}

func (c *lru) put(k cacheKey, v []int16) {
	if len(v) > c.maxSamples {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*lruEntry)
		c.samples += len(v) - len(e.val)
		e.val = v
		c.order.MoveToFront(el)
	} else {
		c.items[k] = c.order.PushFront(&lruEntry{key: k, val: v})
		c.samples += len(v)
	}
	for c.order.Len() > c.maxEntries || c.samples > c.maxSamples {
		el := c.order.Back()
		e := el.Value.(*lruEntry)
		c.order.Remove(el)
		delete(c.items, e.key)
		c.samples -= len(e.val)
	}
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
