package metrics

import (
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestHistogram(t *testing.T) {
	var r Registry
	h := r.NewHistogram("call_mos", "MOS of each leg.", []float64{4.5, 1, 2, 2.5, 3, 3.5, 4, 4.3, 2, math.Inf(1), math.NaN()})
	for _, v := range []float64{4.41, 4.41, 3.92, 2.5, 1, 0.5, 7, math.NaN()} {
		h.Observe(v)
	}
	var b strings.Builder
	r.Write(&b)
	want := `# HELP call_mos MOS of each leg.
# TYPE call_mos histogram
call_mos_bucket{le="1"} 2
call_mos_bucket{le="2"} 2
call_mos_bucket{le="2.5"} 3
call_mos_bucket{le="3"} 3
call_mos_bucket{le="3.5"} 3
call_mos_bucket{le="4"} 4
call_mos_bucket{le="4.3"} 4
call_mos_bucket{le="4.5"} 6
call_mos_bucket{le="+Inf"} 7
call_mos_sum 23.740000000000002
call_mos_count 7
`
	if b.String() != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", b.String(), want)
	}
	if h.Count() != 7 || math.Abs(h.Sum()-23.74) > 1e-9 {
		t.Errorf("count %d sum %v", h.Count(), h.Sum())
	}
}

func TestHistogramEmptyAndSmallBounds(t *testing.T) {
	var r Registry
	r.NewHistogram("rtt_seconds", "Round trips.", []float64{0.0005, 0.25})
	r.NewHistogram("none", "No buckets but +Inf.", nil).Observe(-3)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, nil)
	body := rec.Body.String()
	for _, line := range []string{
		`rtt_seconds_bucket{le="0.0005"} 0`,
		`rtt_seconds_bucket{le="0.25"} 0`,
		`rtt_seconds_bucket{le="+Inf"} 0`,
		"rtt_seconds_sum 0\n",
		"rtt_seconds_count 0\n",
		`none_bucket{le="+Inf"} 1`,
		"none_sum -3\n",
		"none_count 1\n",
	} {
		if !strings.Contains(body, line) {
			t.Errorf("missing %q in\n%s", line, body)
		}
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
}

// Observations from many goroutines (the calls' own) all count.
func TestHistogramConcurrent(t *testing.T) {
	var r Registry
	h := r.NewHistogram("loss_ratio", "Loss.", []float64{0, 0.01, 0.05})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Observe(float64((g+i)%3) * 0.01)
			}
		}()
		go func() {
			defer wg.Done()
			var b strings.Builder
			r.Write(&b)
		}()
	}
	wg.Wait()
	var b strings.Builder
	r.Write(&b)
	if h.Count() != 8000 || !strings.Contains(b.String(), `loss_ratio_bucket{le="+Inf"} 8000`) {
		t.Errorf("count %d:\n%s", h.Count(), b.String())
	}
	if !strings.Contains(b.String(), `loss_ratio_bucket{le="0.05"} 8000`) {
		t.Errorf("bucket 0.05:\n%s", b.String())
	}
}

func TestCounterGauge(t *testing.T) {
	var r Registry
	c := r.NewCounter("calls_total", "Calls.")
	c.Add(2)
	c.Inc()
	g := r.NewGauge("active", "Active.")
	g.Set(5)
	g.Add(-2)
	v := r.NewCounterVec("by_outcome_total", "By outcome.", "outcome")
	v.With("routed").Add(1)
	var b strings.Builder
	r.Write(&b)
	for _, line := range []string{"calls_total 3\n", "active 3\n", `by_outcome_total{outcome="routed"} 1`} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("missing %q in\n%s", line, b.String())
		}
	}
}
