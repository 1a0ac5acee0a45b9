package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/store"
)

// BenchmarkNotifyFanout: one node NOTIFYs as fast as it can while L nodes
// LISTEN; an operation is one NOTIFY delivered to every listener. The
// payload is one call event (300 bytes) or a full relay batch of them
// (store.MaxNotifyPayload: what a busy node sends). docs/scaling.md rests
// its NOTIFY fan-out estimate on these figures.
func BenchmarkNotifyFanout(b *testing.B) {
	for _, size := range []int{300, store.MaxNotifyPayload} {
		for _, listeners := range []int{1, 4, 9} {
			b.Run(fmt.Sprintf("bytes=%d/listeners=%d", size, listeners), func(b *testing.B) {
				benchNotify(b, size, listeners)
			})
		}
	}
}

func benchNotify(b *testing.B, size, listeners int) {
	db := nodetest.PostgresURL(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *store.Store {
		s, err := store.Open(ctx, db)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	sender := open()
	payload := strings.Repeat("x", size)
	var got atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range listeners {
		s := open()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.ListenLive(ctx, func(string) { got.Add(1) })
		}()
	}
	// Until every listener hears an event.
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < int64(listeners) {
		if time.Now().After(deadline) {
			b.Fatal("the listeners heard nothing")
		}
		if err := sender.NotifyLive(ctx, payload); err != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	got.Store(0)
	b.ResetTimer()
	for range b.N {
		if err := sender.NotifyLive(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N * listeners)
	deadline = time.Now().Add(time.Minute)
	for got.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if n := got.Load(); n < want {
		b.Fatalf("%d of %d deliveries arrived", n, want)
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/s, "notifies/s")
	b.ReportMetric(float64(want)/s, "deliveries/s")
	b.ReportMetric(float64(want)*float64(size)/s/1e6, "MB/s")
}
