package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// qualityCall is calls/{id} with the media quality.
type qualityCall struct {
	ID      string   `json:"id"`
	MOS     *float64 `json:"mos"`
	Quality []struct {
		Leg             string   `json:"leg"`
		PacketsSent     uint64   `json:"packets_sent"`
		PacketsReceived uint64   `json:"packets_received"`
		Lost            int64    `json:"lost"`
		LossRatio       float64  `json:"loss_ratio"`
		JitterMS        float64  `json:"jitter_ms"`
		RTTMS           *float64 `json:"rtt_ms"`
		MOS             *float64 `json:"mos"`
	} `json:"quality"`
}

// TestAPICallQuality: a real bridged call's record shows each party's
// media quality in calls/{id} (the caller first, then who answered) and
// the node's histograms count them; mos_below filters the log; a bad
// mos_below is a 400 that names it.
func TestAPICallQuality(t *testing.T) {
	t.Parallel()
	srv := startNode(t, "")
	c := newClient(t, srv, "acme", "ops", true, 2).at(t)
	userPhone(t, srv, "alice", alicePW, testphone.Behavior{Play: testphone.Tone(1000)})
	const from = "+34611000077"
	call, err := dial(t, srv, carrierPhone(t), "+34910000001", from, testphone.DialOptions{Play: testphone.Tone(425)()})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	hangup(t, call)
	rec := waitCall(t, srv, from, time.Time{}, ended)

	var got qualityCall
	want(t, c.do("GET", "/acme/calls/"+rec.ID, nil), 200).decode(t, &got)
	if len(got.Quality) != 2 || got.Quality[0].Leg != "caller" || got.Quality[1].Leg != "user:alice" || got.MOS == nil {
		t.Fatalf("calls/%s quality: %+v", rec.ID, got)
	}
	for _, q := range got.Quality {
		// A second of 20 ms frames each way on loopback: no loss, little
		// jitter, no RTT yet (the first reports go after 2.5 s).
		if q.PacketsSent < 25 || q.PacketsReceived < 25 || q.Lost != 0 || q.LossRatio != 0 || q.JitterMS > 10 ||
			q.RTTMS != nil || q.MOS == nil || *q.MOS < 4.3 || *q.MOS > 4.5 {
			t.Errorf("%s: %+v (MOS %v)", q.Leg, q, q.MOS)
		}
	}
	if lowest := min(*got.Quality[0].MOS, *got.Quality[1].MOS); *got.MOS != lowest || rec.MOS != lowest {
		t.Errorf("call MOS %v (stored %v), legs %v and %v", *got.MOS, rec.MOS, *got.Quality[0].MOS, *got.Quality[1].MOS)
	}

	// The histograms: one observation per party.
	res, err := http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, line := range []string{
		"# TYPE switchboard_call_mos histogram",
		`switchboard_call_mos_bucket{le="4.3"} 0`,
		`switchboard_call_mos_bucket{le="4.5"} 2`,
		`switchboard_call_mos_bucket{le="+Inf"} 2`,
		"switchboard_call_mos_count 2",
		`switchboard_call_jitter_seconds_bucket{le="0.01"} 2`,
		"switchboard_call_jitter_seconds_count 2",
		`switchboard_call_loss_ratio_bucket{le="0"} 2`,
		"switchboard_call_loss_ratio_count 2",
		"switchboard_call_rtt_seconds_count 0",
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	// mos_below over records with and without a MOS.
	ctx := context.Background()
	base := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	var recs []*store.CallRecord
	for i, mos := range []float64{4.41, 3.2, 0, 3.5, 1.9} {
		r := &store.CallRecord{ID: fmt.Sprintf("mos-%d", i), Account: "acme", Number: "+34910000001", Caller: "+34600000077",
			Start: base.Add(time.Duration(i) * time.Minute), End: base.Add(time.Duration(i)*time.Minute + time.Second), Outcome: "routed"}
		if mos > 0 {
			r.MOS = mos
			r.Quality = []store.LegQuality{{Leg: "caller", PacketsSent: 100, PacketsReceived: 100, MOS: mos}}
		}
		recs = append(recs, r)
	}
	if err := srv.Store.InsertCalls(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"mos_below=3.5", []string{"mos-4", "mos-1"}},
		{"mos_below=5&caller=%2B34600000077", []string{"mos-4", "mos-3", "mos-1", "mos-0"}},
		{"mos_below=1", nil},
	} {
		ids := pages(t, c, "/acme/calls", tc.q, 1, nil)
		var mine []string
		for _, id := range ids {
			if strings.HasPrefix(id, "mos-") {
				mine = append(mine, id)
			}
		}
		if !slices.Equal(mine, tc.want) {
			t.Errorf("calls?%s: %v, want %v", tc.q, mine, tc.want)
		}
	}
	var page struct {
		Calls []qualityCall `json:"calls"`
	}
	want(t, c.do("GET", "/acme/calls?mos_below=3.5", nil), 200).decode(t, &page)
	for _, it := range page.Calls {
		if it.MOS == nil || *it.MOS >= 3.5 || it.Quality != nil {
			t.Errorf("list item %s: MOS %v, quality %v (only in calls/{id})", it.ID, it.MOS, it.Quality)
		}
	}
	for _, v := range []string{"0", "0.5", "5.01", "-3", "NaN", "Inf", "high", "3,5"} {
		wantPaths(t, c.do("GET", "/acme/calls?mos_below="+v, nil), 400, "mos_below")
	}
}
