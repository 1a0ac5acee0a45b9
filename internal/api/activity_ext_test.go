package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/node/nodetest"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// apiCall is a call record as the API shows it.
type apiCall struct {
	ID              string     `json:"id"`
	Number          string     `json:"number"`
	Caller          string     `json:"caller"`
	CallerName      string     `json:"caller_name"`
	Start           time.Time  `json:"start"`
	Answer          *time.Time `json:"answer"`
	End             *time.Time `json:"end"`
	DurationSeconds float64    `json:"duration_seconds"`
	Outcome         string     `json:"outcome"`
	AnsweredBy      string     `json:"answered_by"`
	Tags            []string   `json:"tags"`
	Trace           []string   `json:"trace"`
	Recording       *struct {
		URL           string  `json:"url"`
		LengthSeconds float64 `json:"length_seconds"`
		Bytes         int64   `json:"bytes"`
	} `json:"recording"`
	Voicemail *struct {
		URL   string `json:"url"`
		User  string `json:"user"`
		Heard *bool  `json:"heard"`
	} `json:"voicemail"`
}

type callPage struct {
	Calls      []apiCall `json:"calls"`
	Voicemails []apiCall `json:"voicemails"`
	Next       string    `json:"next"`
}

// pages follows the cursor from the first page of path?q&limit=limit to
// the last and returns the records' IDs; between pages it calls between.
// Every page but the last is full; the last has no next cursor.
func pages(t testing.TB, c *client, path, q string, limit int, between func(page int)) []string {
	t.Helper()
	var ids []string
	cursor := ""
	short := false
	for page := 0; ; page++ {
		u := path + "?limit=" + strconv.Itoa(limit)
		if q != "" {
			u += "&" + q
		}
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		r := want(t, c.do("GET", u, nil), 200)
		if r.Status != 200 {
			return ids
		}
		var p callPage
		r.decode(t, &p)
		items := append(p.Calls, p.Voicemails...)
		if len(items) > limit || (p.Next != "" && len(items) != limit && !short) {
			t.Errorf("%s page %d: %d items with a next cursor, limit %d: only the last page may be short", u, page, len(items), limit)
			short = true // once per listing
		}
		for _, it := range items {
			ids = append(ids, it.ID)
			if it.Trace != nil {
				t.Errorf("%s: a list item carries its trace", u)
			}
		}
		if p.Next == "" {
			return ids
		}
		if page > 100 {
			t.Fatalf("%s: more than 100 pages", u)
		}
		if between != nil {
			between(page)
		}
		cursor = p.Next
	}
}

// all is every record of the account, newest first, as the store has it.
func all(t testing.TB, srv *nodetest.Server) []store.CallRecord {
	t.Helper()
	var out []store.CallRecord
	if err := srv.Store.EachCall(context.Background(), store.CallFilter{Account: "acme"}, func(c *store.CallRecord) error {
		out = append(out, *c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func idsOf(recs []store.CallRecord, keep func(*store.CallRecord) bool) []string {
	var ids []string
	for i := range recs {
		if keep(&recs[i]) {
			ids = append(ids, recs[i].ID)
		}
	}
	return ids
}

// The synthetic log: 1200 records in March 2021, two by two at the same
// start (the cursor breaks ties by ID), spread over numbers, callers,
// outcomes, tags, answerers, recordings and voicemails.
const synthetic = 1200

var synthBase = time.Date(2021, 3, 1, 0, 0, 0, 0, time.UTC)

func synthRecords(audio, missing string) []*store.CallRecord {
	numbers := []string{"+34910000001", "+34910000002", "+34910000003"}
	outcomes := []string{"routed", "rejected", "forwarded", "not_found", "routed"}
	var recs []*store.CallRecord
	for i := range synthetic {
		start := synthBase.Add(time.Duration(i/2*37) * time.Second)
		r := &store.CallRecord{
			ID: fmt.Sprintf("syn-%04d", i), Account: "acme", Number: numbers[i%3], Start: start,
			Outcome: outcomes[i%5], Trace: []string{"synthetic call", strconv.Itoa(i)}, CallerName: "Synth " + strconv.Itoa(i),
		}
		switch i % 4 {
		case 0:
			r.Caller = fmt.Sprintf("+34600%06d", i)
		case 1:
			r.Caller = fmt.Sprintf("+34666%06d", i)
		case 2:
			r.Caller = "anonymous"
		case 3:
			r.Caller = fmt.Sprintf("+44207%06d", i)
		}
		switch r.Outcome {
		case "routed":
			r.AnsweredBy = []string{"user:alice", "user:bob"}[i%2]
			r.Answer, r.End, r.Duration = start.Add(time.Second), start.Add(31*time.Second), 30*time.Second
		case "forwarded":
			r.AnsweredBy = "+34600000009"
			r.Answer, r.End, r.Duration = start.Add(2*time.Second), start.Add(12*time.Second), 10*time.Second
		default:
			r.End = start.Add(time.Second)
		}
		switch {
		case i%7 == 0:
			r.Tags = []string{"vip", "main"}
		case i%3 == 0:
			r.Tags = []string{"main"}
		}
		if i%11 == 0 {
			r.Recording, r.RecordingLength, r.RecordingBytes = audio, time.Second, 1000
			if i == 550 {
				r.Recording = missing
			}
		}
		if i%13 == 0 {
			r.Voicemail, r.VoicemailUser, r.VoicemailHeard = audio, []string{"alice", "carol"}[i%2], i%26 == 0
		}
		recs = append(recs, r)
	}
	return recs
}

// TestAPIActivity: the activity log over HTTP, on SQLite and PostgreSQL:
// real calls (answered, rejected, recorded, voicemail) and a synthetic log
// of 1200 records; each filter alone and combined, cursor pagination while
// calls arrive, CSV export beyond a page, calls/{id} with its trace, the
// recording and the voicemail with Range, voicemails heard/unheard.
func TestAPIActivity(t *testing.T) {
	t.Parallel()
	nodetest.EachDB(t, func(t *testing.T, db string) {
		ctx := context.Background()
		srv := startNode(t, db)
		c := newClient(t, srv, "acme", "ops", false, 8)
		alice := userPhone(t, srv, "alice", alicePW, testphone.Behavior{})
		userPhone(t, srv, "bob", bobPW, testphone.Behavior{Play: testphone.Tone(1000)})
		carrier := carrierPhone(t)

		// Real calls.
		const (
			answeredFrom = "+34611000001"
			rejectedFrom = "+34666999001"
			recordedFrom = "+34611000003"
			vmFrom       = "+34611000004"
		)
		call, err := dial(t, srv, carrier, "+34910000001", answeredFrom)
		if err != nil {
			t.Fatalf("answered call: %v", err)
		}
		incoming(t, alice, 5*time.Second)
		time.Sleep(200 * time.Millisecond)
		hangup(t, call)
		if _, err := dial(t, srv, carrier, "+34910000002", rejectedFrom); testphone.StatusCode(err) != 486 {
			t.Errorf("rejected call: %v, want 486", err)
		}
		call, err = dial(t, srv, carrier, "+34910000003", recordedFrom, testphone.DialOptions{Play: media.Sine(425)})
		if err != nil {
			t.Fatalf("recorded call: %v", err)
		}
		time.Sleep(1200 * time.Millisecond)
		hangup(t, call)
		call, err = dial(t, srv, carrier, "+34910000004", vmFrom, testphone.DialOptions{Play: media.Sine(425)})
		if err != nil {
			t.Fatalf("voicemail call: %v", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := call.WaitForTone(wctx, 1000, 100*time.Millisecond); err != nil {
			t.Errorf("voicemail: no beep: %v", err)
		}
		cancel()
		time.Sleep(1200 * time.Millisecond)
		hangup(t, call)

		answered := waitCall(t, srv, answeredFrom, time.Time{}, ended)
		rejected := waitCall(t, srv, rejectedFrom, time.Time{}, ended)
		recorded := waitCall(t, srv, recordedFrom, time.Time{}, func(r *store.CallRecord) bool { return ended(r) && r.Recording != "" })
		vm := waitCall(t, srv, vmFrom, time.Time{}, func(r *store.CallRecord) bool { return ended(r) && r.Voicemail != "" })
		if answered.Outcome != "routed" || answered.AnsweredBy != "user:alice" || rejected.Outcome != "rejected" || vm.VoicemailUser != "carol" {
			t.Errorf("real calls: answered %s by %s, rejected %s, voicemail for %q", answered.Outcome, answered.AnsweredBy, rejected.Outcome, vm.VoicemailUser)
		}

		// The synthetic log, and another account's call.
		dir := t.TempDir()
		audio := filepath.Join(dir, "synthetic.wav")
		if err := os.WriteFile(audio, wavStereo8k(t, sine(300, 8000, 8000), sine(600, 8000, 8000)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := srv.Store.InsertCalls(ctx, synthRecords(audio, filepath.Join(dir, "gone.wav"))); err != nil {
			t.Fatal(err)
		}
		if err := srv.Store.InsertCall(ctx, &store.CallRecord{ID: "globex-1", Account: "globex", Number: "+34930000001", Caller: "+34600000001",
			Start: time.Now(), Outcome: "routed", Recording: audio, Voicemail: audio, VoicemailUser: "alice"}); err != nil {
			t.Fatal(err)
		}
		recs := all(t, srv)
		if len(recs) != synthetic+4 {
			t.Fatalf("%d records, want %d", len(recs), synthetic+4)
		}

		t.Run("filters", func(t *testing.T) { testFilters(t, srv, c) })
		t.Run("bad-queries", func(t *testing.T) { testBadQueries(t, c) })
		t.Run("csv", func(t *testing.T) { testCSV(t, srv, c, recorded.ID) })
		t.Run("call", func(t *testing.T) { testCall(t, c, answered) })
		t.Run("recording", func(t *testing.T) { testRecording(t, c, recorded) })
		t.Run("voicemails", func(t *testing.T) { testVoicemails(t, srv, c, vm, answered.ID) })
		t.Run("cursor-while-calls-arrive", func(t *testing.T) { testCursorStable(t, srv, c) })
	})
}

func testFilters(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	recs := all(t, srv)
	at := func(h, m int) time.Time {
		return synthBase.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	from, to := at(1, 0), at(3, 30)
	inRange := func(r *store.CallRecord) bool { return !r.Start.Before(from) && r.Start.Before(to) }
	rfc := func(tm time.Time) string { return tm.Format(time.RFC3339) }
	for _, f := range []struct {
		q    string
		keep func(*store.CallRecord) bool
	}{
		{"", func(*store.CallRecord) bool { return true }},
		{query("number", "+34910000002"), func(r *store.CallRecord) bool { return r.Number == "+34910000002" }},
		{query("caller", "+34600000004"), func(r *store.CallRecord) bool { return r.Caller == "+34600000004" }},
		{query("caller", "+34666*"), func(r *store.CallRecord) bool { return strings.HasPrefix(r.Caller, "+34666") }},
		{query("caller", "+3461100000*"), func(r *store.CallRecord) bool { return strings.HasPrefix(r.Caller, "+3461100000") }},
		{query("caller", "anonymous"), func(r *store.CallRecord) bool { return r.Caller == "anonymous" }},
		{query("outcome", "rejected"), func(r *store.CallRecord) bool { return r.Outcome == "rejected" }},
		{query("tag", "vip"), func(r *store.CallRecord) bool { return slices.Contains(r.Tags, "vip") }},
		{query("tag", "recorded"), func(r *store.CallRecord) bool { return slices.Contains(r.Tags, "recorded") }},
		{query("answered_by", "user:bob"), func(r *store.CallRecord) bool { return r.AnsweredBy == "user:bob" }},
		{query("has_recording", "true"), func(r *store.CallRecord) bool { return r.Recording != "" }},
		{query("has_recording", "false"), func(r *store.CallRecord) bool { return r.Recording == "" }},
		{query("has_voicemail", "true"), func(r *store.CallRecord) bool { return r.Voicemail != "" }},
		{query("from", rfc(from), "to", rfc(to)), inRange},
		{query("from", rfc(at(19, 0))), func(r *store.CallRecord) bool { return !r.Start.Before(at(19, 0)) }},
		{query("to", rfc(at(0, 30))), func(r *store.CallRecord) bool { return r.Start.Before(at(0, 30)) }},
		{query("number", "+34910000001", "outcome", "routed", "answered_by", "user:alice", "tag", "main"), func(r *store.CallRecord) bool {
			return r.Number == "+34910000001" && r.Outcome == "routed" && r.AnsweredBy == "user:alice" && slices.Contains(r.Tags, "main")
		}},
		{query("caller", "+34600*", "has_recording", "true", "from", rfc(from), "to", rfc(to)), func(r *store.CallRecord) bool {
			return strings.HasPrefix(r.Caller, "+34600") && r.Recording != "" && inRange(r)
		}},
		{query("number", "+34910000003", "has_voicemail", "false", "outcome", "routed", "tag", "main", "from", rfc(from), "to", rfc(to)), func(r *store.CallRecord) bool {
			return r.Number == "+34910000003" && r.Voicemail == "" && r.Outcome == "routed" && slices.Contains(r.Tags, "main") && inRange(r)
		}},
		{query("outcome", "forwarded", "caller", "anonymous", "has_voicemail", "true"), func(r *store.CallRecord) bool {
			return r.Outcome == "forwarded" && r.Caller == "anonymous" && r.Voicemail != ""
		}},
		{query("outcome", "routed", "number", "+34910000009"), func(*store.CallRecord) bool { return false }},
	} {
		wantIDs := idsOf(recs, f.keep)
		got := pages(t, c, "/acme/calls", f.q, 500, nil)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("calls?%s: %d records, want %d (first %v, want %v)", f.q, len(got), len(wantIDs), head(got), head(wantIDs))
		}
		if len(wantIDs) <= 120 {
			if got := pages(t, c, "/acme/calls", f.q, 7, nil); !slices.Equal(got, wantIDs) {
				t.Errorf("calls?%s in pages of 7: %d records, want %d", f.q, len(got), len(wantIDs))
			}
		}
	}
	// The default page is 50, with a cursor.
	var p callPage
	want(t, c.do("GET", "/acme/calls", nil), 200).decode(t, &p)
	if len(p.Calls) != 50 || p.Next == "" {
		t.Errorf("default page: %d records, next %q", len(p.Calls), p.Next)
	}
	// limit=500 is allowed.
	p = callPage{}
	want(t, c.do("GET", "/acme/calls?limit=500", nil), 200).decode(t, &p)
	if len(p.Calls) != 500 {
		t.Errorf("limit=500: %d records", len(p.Calls))
	}
}

func head(ids []string) []string { return ids[:min(3, len(ids))] }

func testBadQueries(t *testing.T, c *client) {
	c = c.at(t)
	for _, q := range []struct{ q, path string }{
		{"from=2021-03-02T00:00:00Z&to=2021-03-01T00:00:00Z", "from"},
		{"from=2021-03-01T00:00:00Z&to=2021-03-01T00:00:00Z", "from"},
		{"from=yesterday", "from"},
		{"to=2021-13-01T00:00:00Z", "to"},
		{"limit=0", "limit"},
		{"limit=501", "limit"},
		{"limit=-1", "limit"},
		{"limit=ten", "limit"},
		{"cursor=not-a-cursor!", "cursor"},
		{"cursor=Zm9v", "cursor"},
		{"cursor=" + "MTIzOg", "cursor"}, // "123:" — no id
		{"has_recording=maybe", "has_recording"},
		{"has_voicemail=2", "has_voicemail"},
	} {
		wantPaths(t, c.do("GET", "/acme/calls?"+q.q, nil), 400, q.path)
	}
	wantPaths(t, c.do("GET", "/acme/voicemails?heard=maybe", nil), 400, "heard")
	wantPaths(t, c.do("GET", "/acme/voicemails?cursor=garbage!", nil), 400, "cursor")
	wantPaths(t, c.do("GET", "/acme/calls?cursor=x", nil, hdr("Accept", "text/csv")...), 400, "cursor")
	wantPaths(t, c.do("GET", "/acme/calls?limit=0", nil, hdr("Accept", "text/csv")...), 400, "limit")
}

// testCSV: Accept: text/csv streams the whole filtered range, past any page
// size, with a header.
func testCSV(t *testing.T, srv *nodetest.Server, c *client, recordedID string) {
	c = c.at(t)
	recs := all(t, srv)
	for _, f := range []struct {
		q    string
		keep func(*store.CallRecord) bool
	}{
		{"", func(*store.CallRecord) bool { return true }},
		{query("outcome", "routed"), func(r *store.CallRecord) bool { return r.Outcome == "routed" }},
		{query("caller", "+34666*", "limit", "5"), func(r *store.CallRecord) bool { return strings.HasPrefix(r.Caller, "+34666") }},
	} {
		r := want(t, c.do("GET", "/acme/calls?"+f.q, nil, hdr("Accept", "text/csv")...), 200)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("CSV: Content-Type %q", ct)
		}
		rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
		if err != nil {
			t.Fatalf("CSV: %v", err)
		}
		wantHeader := []string{"id", "start", "number", "caller", "caller_name", "outcome", "answered_by", "duration_seconds", "hangup_cause", "tags", "recording", "voicemail"}
		if len(rows) == 0 || !slices.Equal(rows[0], wantHeader) {
			t.Fatalf("CSV header: %q", rows[:min(1, len(rows))])
		}
		var got []string
		for _, row := range rows[1:] {
			got = append(got, row[0])
			if row[0] == recordedID && (row[10] != "true" || row[5] != "routed") {
				t.Errorf("CSV row of the recorded call: %q", row)
			}
			if row[0] == "syn-0012" && !slices.Equal(row, []string{"syn-0012", synthBase.Add(6 * 37 * time.Second).Format(time.RFC3339Nano), "+34910000001",
				"+34600000012", "Synth 12", "forwarded", "+34600000009", "10.000", "", "main", "false", "false"}) {
				t.Errorf("CSV row of syn-0012: %q", row)
			}
		}
		wantIDs := idsOf(recs, f.keep)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("CSV ?%s: %d rows, want %d", f.q, len(got), len(wantIDs))
		}
		if f.q == "" && len(got) <= 1000 {
			t.Errorf("the whole CSV has %d rows: not past the page sizes", len(got))
		}
	}
}

// testCall: calls/{id} is the full record with its trace; another
// account's call does not exist.
func testCall(t *testing.T, c *client, rec store.CallRecord) {
	c = c.at(t)
	var got apiCall
	r := want(t, c.do("GET", "/acme/calls/"+rec.ID, nil), 200)
	r.decode(t, &got)
	if got.ID != rec.ID || got.Number != "+34910000001" || got.Caller != rec.Caller || got.Outcome != "routed" || got.AnsweredBy != "user:alice" ||
		!got.Start.Equal(rec.Start) || got.Answer == nil || got.End == nil || len(got.Trace) == 0 || !slices.Equal(got.Trace, rec.Trace) ||
		!slices.Equal(got.Tags, []string{"main"}) || got.Recording != nil || got.Voicemail != nil {
		t.Errorf("calls/%s: %s\nstore: %+v", rec.ID, r, rec)
	}
	var syn apiCall
	want(t, c.do("GET", "/acme/calls/syn-0000", nil), 200).decode(t, &syn)
	if !slices.Equal(syn.Trace, []string{"synthetic call", "0"}) || syn.Recording == nil || syn.Recording.URL != "/api/v1/acme/calls/syn-0000/recording" ||
		syn.Voicemail == nil || syn.Voicemail.User != "alice" || syn.Voicemail.Heard == nil || !*syn.Voicemail.Heard || syn.DurationSeconds != 30 {
		t.Errorf("calls/syn-0000: %+v", syn)
	}
	for _, p := range []string{"/acme/calls/nope", "/acme/calls/globex-1", "/acme/calls/globex-1/recording", "/acme/voicemails/globex-1/audio", "/globex/calls/globex-1"} {
		want(t, c.do("GET", p, nil), 404)
	}
	want(t, c.do("PATCH", "/acme/voicemails/globex-1", `{"heard":true}`), 404)
}

// testRecording: the recording of a real call: audio/wav with Range
// requests; 8 kHz stereo, the caller's tone left and the callee's right.
func testRecording(t *testing.T, c *client, rec store.CallRecord) {
	c = c.at(t)
	var meta apiCall
	want(t, c.do("GET", "/acme/calls/"+rec.ID, nil), 200).decode(t, &meta)
	if meta.Recording == nil || meta.Recording.URL != "/api/v1/acme/calls/"+rec.ID+"/recording" || meta.Recording.Bytes != rec.RecordingBytes || meta.Recording.LengthSeconds < 0.8 {
		t.Errorf("the call's recording: %+v", meta.Recording)
	}
	base := strings.TrimSuffix(c.base, "/api/v1")
	r := want(t, c.doURL("GET", base+meta.Recording.URL, nil), 200)
	full := r.Body
	if ct := r.Header.Get("Content-Type"); ct != "audio/wav" || r.Header.Get("Accept-Ranges") != "bytes" || int64(len(full)) != rec.RecordingBytes {
		t.Errorf("recording: %s, Accept-Ranges %q, %d bytes (record: %d)", ct, r.Header.Get("Accept-Ranges"), len(full), rec.RecordingBytes)
	}
	n := len(full)
	for _, rg := range []struct {
		header     string
		start, end int // inclusive
	}{
		{"bytes=0-43", 0, 43},
		{"bytes=1000-1999", 1000, 1999},
		{"bytes=-100", n - 100, n - 1},
		{fmt.Sprintf("bytes=%d-", n-10), n - 10, n - 1},
	} {
		p := want(t, c.doURL("GET", base+meta.Recording.URL, nil, hdr("Range", rg.header)...), 206)
		if cr := p.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", rg.start, rg.end, n) || !bytes.Equal(p.Body, full[rg.start:rg.end+1]) {
			t.Errorf("Range %s: Content-Range %q, %d bytes", rg.header, cr, len(p.Body))
		}
	}
	// A range past the end: 416, as a problem like every error.
	want(t, c.doURL("GET", base+meta.Recording.URL, nil, hdr("Range", fmt.Sprintf("bytes=%d-", n+10))...), 416)

	path := filepath.Join(t.TempDir(), "rec.wav")
	if err := os.WriteFile(path, full, 0o600); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(full[:4], []byte("RIFF")) || full[22] != 2 || full[23] != 0 || uint32(full[24])|uint32(full[25])<<8|uint32(full[26])<<16 != 8000 {
		t.Errorf("the recording is not an 8 kHz stereo WAV: header % x", full[:44])
	}
	left, right, err := media.ReadStereoWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	// Most 200 ms windows carry each side's tone: one block may be partly
	// silent where the recorder corrected its cursor (a busy machine).
	toneWindows := func(s []int16, freq float64) (hits, windows int) {
		for i := 0; i+1600 <= len(s); i += 1600 {
			w := s[i : i+1600]
			windows++
			if f, ok := media.DominantFrequency(w, []float64{425, 1000}); ok && f == freq && media.RMS(w) >= 500 {
				hits++
			}
		}
		return hits, windows
	}
	for _, side := range []struct {
		name    string
		samples []int16
		freq    float64
	}{{"left (the caller's 425 Hz)", left, 425}, {"right (the callee's 1000 Hz)", right, 1000}} {
		hits, windows := toneWindows(side.samples, side.freq)
		t.Logf("recording, %s: the tone in %d of %d windows", side.name, hits, windows)
		if windows == 0 || hits*2 <= windows {
			t.Errorf("%s channel: the tone in %d of %d windows of 200 ms", side.name, hits, windows)
		}
	}
	if secs := float64(len(left)) / 8000; secs < 0.8 {
		t.Errorf("a recording of %.2f s", secs)
	}
	// No recording, or its file gone: 404.
	want(t, c.do("GET", "/acme/calls/syn-0001/recording", nil), 404)
	want(t, c.do("GET", "/acme/calls/syn-0550/recording", nil), 404)
	want(t, c.do("GET", "/acme/calls/syn-0011/recording", nil), 200)
}

// testVoicemails: voicemails listed per user with heard/unheard, PATCH
// heard, and the audio with Range.
func testVoicemails(t *testing.T, srv *nodetest.Server, c *client, vm store.CallRecord, noVoicemail string) {
	c = c.at(t)
	ctx := context.Background()
	recs := all(t, srv)
	check := func(q string, keep func(*store.CallRecord) bool) {
		t.Helper()
		wantIDs := idsOf(recs, func(r *store.CallRecord) bool { return r.Voicemail != "" && keep(r) })
		if got := pages(t, c, "/acme/voicemails", q, 500, nil); !slices.Equal(got, wantIDs) {
			t.Errorf("voicemails?%s: %d, want %d (%v, want %v)", q, len(got), len(wantIDs), head(got), head(wantIDs))
		}
		if got := pages(t, c, "/acme/voicemails", q, 5, nil); !slices.Equal(got, wantIDs) {
			t.Errorf("voicemails?%s in pages of 5: %d, want %d", q, len(got), len(wantIDs))
		}
	}
	check("", func(*store.CallRecord) bool { return true })
	check("user=carol", func(r *store.CallRecord) bool { return r.VoicemailUser == "carol" })
	check("user=alice&heard=true", func(r *store.CallRecord) bool { return r.VoicemailUser == "alice" && r.VoicemailHeard })
	check("heard=false", func(r *store.CallRecord) bool { return !r.VoicemailHeard })

	var p callPage
	want(t, c.do("GET", "/acme/voicemails?user=carol&limit=1", nil), 200).decode(t, &p)
	if len(p.Voicemails) != 1 || p.Voicemails[0].ID != vm.ID || p.Voicemails[0].Voicemail == nil ||
		p.Voicemails[0].Voicemail.Heard == nil || *p.Voicemails[0].Voicemail.Heard || p.Voicemails[0].Voicemail.URL != "/api/v1/acme/voicemails/"+vm.ID+"/audio" {
		t.Errorf("carol's newest voicemail: %+v", p.Voicemails)
	}
	// PATCH heard, and back.
	var got apiCall
	want(t, c.do("PATCH", "/acme/voicemails/"+vm.ID, `{"heard":true}`), 200).decode(t, &got)
	if got.Voicemail == nil || got.Voicemail.Heard == nil || !*got.Voicemail.Heard {
		t.Errorf("PATCH heard: %+v", got.Voicemail)
	}
	if r, err := srv.Store.GetCall(ctx, "acme", vm.ID); err != nil || !r.VoicemailHeard {
		t.Errorf("heard not stored: %v", err)
	}
	recs = all(t, srv)
	check("user=carol&heard=true", func(r *store.CallRecord) bool { return r.VoicemailUser == "carol" && r.VoicemailHeard })
	// A page of heard voicemails holds as many as the limit allows (the
	// heard filter is applied before the page is cut, not after).
	heard := idsOf(recs, func(r *store.CallRecord) bool { return r.Voicemail != "" && r.VoicemailHeard })
	p = callPage{}
	want(t, c.do("GET", "/acme/voicemails?heard=true&limit=5", nil), 200).decode(t, &p)
	if len(p.Voicemails) != min(5, len(heard)) {
		t.Errorf("voicemails?heard=true&limit=5: a page of %d (next %q); %d voicemails are heard", len(p.Voicemails), p.Next, len(heard))
	}
	want(t, c.do("PATCH", "/acme/voicemails/"+vm.ID, `{"heard":false}`), 200).decode(t, &got)
	if got.Voicemail == nil || *got.Voicemail.Heard {
		t.Errorf("PATCH unheard: %+v", got.Voicemail)
	}
	want(t, c.do("PATCH", "/acme/voicemails/"+noVoicemail, `{"heard":true}`), 404)
	want(t, c.do("PATCH", "/acme/voicemails/nope", `{"heard":true}`), 404)
	wantPaths(t, c.do("PATCH", "/acme/voicemails/"+vm.ID, `{}`), 400, "heard")
	wantPaths(t, c.do("PATCH", "/acme/voicemails/"+vm.ID, `{"heard":"yes"}`), 400, "heard")
	want(t, c.do("PATCH", "/acme/voicemails/"+vm.ID, `{"heard":true,"x":1}`), 400)

	// The audio: the caller's 425 Hz, with Range.
	base := strings.TrimSuffix(c.base, "/api/v1")
	r := want(t, c.doURL("GET", base+"/api/v1/acme/voicemails/"+vm.ID+"/audio", nil), 200)
	if r.Header.Get("Content-Type") != "audio/wav" {
		t.Errorf("voicemail audio: %s", r)
	}
	pr := want(t, c.doURL("GET", base+"/api/v1/acme/voicemails/"+vm.ID+"/audio", nil, hdr("Range", "bytes=44-143")...), 206)
	if pr.Header.Get("Content-Range") != fmt.Sprintf("bytes 44-143/%d", len(r.Body)) || !bytes.Equal(pr.Body, r.Body[44:144]) {
		t.Errorf("voicemail Range: %q", pr.Header.Get("Content-Range"))
	}
	path := filepath.Join(t.TempDir(), "vm.wav")
	if err := os.WriteFile(path, r.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	left, _, err := media.ReadStereoWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := media.DominantFrequency(left[max(0, len(left)-4000):], []float64{425, 1000}); !ok || f != 425 {
		t.Errorf("the voicemail holds %v Hz (%v), want the caller's 425", f, ok)
	}
	want(t, c.do("GET", "/acme/voicemails/"+noVoicemail+"/audio", nil), 404)
}

// testCursorStable: pages through a filter while new calls arrive between
// pages: every record of the first page's time is seen once, none is
// skipped, and the new calls do not shift the pages.
func testCursorStable(t *testing.T, srv *nodetest.Server, c *client) {
	c = c.at(t)
	ctx := context.Background()
	q := query("caller", "+34600*")
	wantIDs := idsOf(all(t, srv), func(r *store.CallRecord) bool { return strings.HasPrefix(r.Caller, "+34600") })
	n := 0
	got := pages(t, c, "/acme/calls", q, 40, func(page int) {
		for range 3 {
			n++
			if err := srv.Store.InsertCall(ctx, &store.CallRecord{ID: fmt.Sprintf("new-%03d", n), Account: "acme", Number: "+34910000001",
				Caller: fmt.Sprintf("+34600999%03d", n), Start: time.Now(), End: time.Now(), Outcome: "routed"}); err != nil {
				t.Fatal(err)
			}
		}
	})
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("record %s on two pages", id)
		}
		seen[id] = true
	}
	if !slices.Equal(got, wantIDs) || n < 9 {
		t.Errorf("paging while %d calls arrived: %d records, want the %d of the start (first %v, want %v)", n, len(got), len(wantIDs), head(got), head(wantIDs))
	}
	// The new calls are on a fresh first page.
	var p callPage
	want(t, c.do("GET", "/acme/calls?"+q+"&limit=3", nil), 200).decode(t, &p)
	if len(p.Calls) != 3 || p.Calls[0].ID != fmt.Sprintf("new-%03d", n) {
		t.Errorf("the newest calls: %+v", p.Calls)
	}
}
