package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkInsertCallsBatch writes call records 100 to a transaction, as the
// CallWriter does under load.
func BenchmarkInsertCallsBatch(b *testing.B) {
	ctx := context.Background()
	st, err := Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "x.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	n := 0
	for b.Loop() {
		batch := make([]*CallRecord, 100)
		for i := range batch {
			n++
			batch[i] = &CallRecord{ID: fmt.Sprint("id-", n), Account: "bench", Number: "+34910000000", Caller: "+3491111", Start: time.Now(), End: time.Now(), Outcome: "routed", Trace: []string{"INVITE from trunk carrier", "number +34910000000", "answered by +34600000003"}}
		}
		if err := st.InsertCalls(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
