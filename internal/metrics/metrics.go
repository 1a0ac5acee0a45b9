// Package metrics is a small Prometheus text-format registry: counters and
// gauges, optionally with one label, and histograms, enough for /metrics
// without a dependency.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds metrics in registration order.
type Registry struct {
	mu      sync.Mutex
	metrics []metric
}

type metric interface {
	write(w io.Writer)
}

// Counter is a monotonically increasing value.
type Counter struct {
	name, help string
	v          atomic.Uint64
}

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the current value.
func (c *Counter) Value() uint64 { return c.v.Load() }

func (c *Counter) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.name, c.help, c.name, c.name, c.v.Load())
}

// Gauge is a value that goes up and down.
type Gauge struct {
	name, help string
	v          atomic.Int64
	fn         func() int64
}

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Value returns the current value.
func (g *Gauge) Value() int64 {
	if g.fn != nil {
		return g.fn()
	}
	return g.v.Load()
}

func (g *Gauge) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", g.name, g.help, g.name, g.name, g.Value())
}

// CounterVec is a family of counters told apart by one label.
type CounterVec struct {
	name, help, label string
	mu                sync.Mutex
	values            map[string]*atomic.Uint64
}

// With returns the counter for the label value.
func (c *CounterVec) With(value string) *atomic.Uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.values[value]
	if !ok {
		v = new(atomic.Uint64)
		c.values[value] = v
	}
	return v
}

// Get returns the counter's value for the label value.
func (c *CounterVec) Get(value string) uint64 { return c.With(value).Load() }

func (c *CounterVec) write(w io.Writer) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	slices.Sort(keys)
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	for _, k := range keys {
		fmt.Fprintf(w, "%s{%s=%q} %d\n", c.name, c.label, k, c.With(k).Load())
	}
}

// Histogram counts observations in cumulative buckets, as Prometheus
// exposes them: name_bucket{le="..."} per upper bound and +Inf, name_sum
// and name_count.
type Histogram struct {
	name, help string
	bounds     []float64 // upper bounds, increasing; +Inf is implicit

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// Observe adds one observation (NaN is ignored).
func (h *Histogram) Observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	i, _ := slices.BinarySearch(h.bounds, v) // the first bound >= v: le is inclusive
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

// Count returns how many observations were made.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Sum returns the sum of the observations.
func (h *Histogram) Sum() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sum
}

func (h *Histogram) write(w io.Writer) {
	h.mu.Lock()
	counts := slices.Clone(h.counts)
	sum, count := h.sum, h.count
	h.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	var cum uint64
	for i, c := range counts {
		cum += c
		le := "+Inf"
		if i < len(h.bounds) {
			le = formatFloat(h.bounds[i])
		}
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", h.name, le, cum)
	}
	fmt.Fprintf(w, "%s_sum %s\n%s_count %d\n", h.name, formatFloat(sum), h.name, count)
}

// formatFloat writes v as Prometheus does: shortest form, +Inf/-Inf/NaN.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func (r *Registry) add(m metric) {
	r.mu.Lock()
	r.metrics = append(r.metrics, m)
	r.mu.Unlock()
}

// NewCounter registers a counter.
func (r *Registry) NewCounter(name, help string) *Counter {
	c := &Counter{name: name, help: help}
	r.add(c)
	return c
}

// NewGauge registers a gauge.
func (r *Registry) NewGauge(name, help string) *Gauge {
	g := &Gauge{name: name, help: help}
	r.add(g)
	return g
}

// NewGaugeFunc registers a gauge whose value is read from fn at scrape time.
func (r *Registry) NewGaugeFunc(name, help string, fn func() int64) *Gauge {
	g := &Gauge{name: name, help: help, fn: fn}
	r.add(g)
	return g
}

// NewCounterVec registers a counter family with one label.
func (r *Registry) NewCounterVec(name, help, label string) *CounterVec {
	c := &CounterVec{name: name, help: help, label: label, values: map[string]*atomic.Uint64{}}
	r.add(c)
	return c
}

// NewHistogram registers a histogram with the given bucket upper bounds
// (sorted here; duplicates, NaN and +Inf are dropped: +Inf is always the
// last bucket).
func (r *Registry) NewHistogram(name, help string, buckets []float64) *Histogram {
	bounds := slices.DeleteFunc(slices.Clone(buckets), func(b float64) bool { return math.IsNaN(b) || math.IsInf(b, 1) })
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	h := &Histogram{name: name, help: help, bounds: bounds, counts: make([]uint64, len(bounds)+1)}
	r.add(h)
	return h
}

// Write writes every metric in the Prometheus text format.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	ms := slices.Clone(r.metrics)
	r.mu.Unlock()
	for _, m := range ms {
		m.write(w)
	}
}

// ServeHTTP serves the registry as /metrics.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	r.Write(w)
}

// Rate counts events per second: PerSecond is the count of the last full
// second, the figure a "calls per second" gauge shows.
type Rate struct {
	mu        sync.Mutex
	sec       int64 // unix second of cur
	cur, prev uint64
	now       func() time.Time
}

// Mark records one event.
func (r *Rate) Mark() {
	r.mu.Lock()
	r.roll()
	r.cur++
	r.mu.Unlock()
}

// PerSecond returns the number of events in the last full second.
func (r *Rate) PerSecond() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll()
	return r.prev
}

func (r *Rate) roll() {
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	s := now().Unix()
	switch {
	case s == r.sec:
	case s == r.sec+1:
		r.prev, r.cur, r.sec = r.cur, 0, s
	default:
		r.prev, r.cur, r.sec = 0, 0, s
	}
}
