package api

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/accounts"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/events"
	"github.com/switchboard/switchboard/internal/routing"
	"github.com/switchboard/switchboard/internal/store"
)

// maxPage is the largest page of the activity log.
const maxPage = 500

// activityRoutes are the activity log, recordings, voicemail and the
// configuration history.
func (a *server) activityRoutes() []route {
	return []route{
		{method: "GET", path: "/{account}/calls", h: a.listCalls},
		{method: "GET", path: "/{account}/calls/{id}", h: a.getCall},
		{method: "GET", path: "/{account}/calls/{id}/recording", h: a.getRecording},
		{method: "GET", path: "/{account}/voicemails", h: a.listVoicemails},
		{method: "GET", path: "/{account}/voicemails/{id}/audio", h: a.getVoicemailAudio},
		{method: "PATCH", path: "/{account}/voicemails/{id}", h: a.patchVoicemail},
		{method: "GET", path: "/{account}/registrations", h: a.listRegistrations},
		{method: "GET", path: "/{account}/config/versions", h: a.listVersions},
		{method: "GET", path: "/{account}/config/versions/{v}", h: a.getVersion},
		{method: "GET", path: "/{account}/config/versions/{v}/diff", h: a.diffVersion},
		{method: "POST", path: "/{account}/config/rollback", h: a.rollback},
	}
}

// callJSON is a call record as the API shows it: the webhooks' record
// (events.Call) and what only the API serves.
type callJSON struct {
	events.Call
	Trace     []string   `json:"trace,omitempty"`
	Recording *mediaJSON `json:"recording,omitempty"`
	Voicemail *mediaJSON `json:"voicemail,omitempty"`
	// MOS is the lowest of the legs' (null: none estimated); Quality,
	// each party's, only in calls/{id}.
	MOS     *float64       `json:"mos"`
	Quality *[]qualityJSON `json:"quality,omitempty"`
}

// qualityJSON is the media quality of one party of a call: "caller" or
// the member who answered.
type qualityJSON struct {
	Leg             string   `json:"leg"`
	PacketsSent     uint64   `json:"packets_sent"`
	PacketsReceived uint64   `json:"packets_received"`
	Lost            int64    `json:"lost"`
	LossRatio       float64  `json:"loss_ratio"`
	JitterMS        float64  `json:"jitter_ms"`
	RTTMS           *float64 `json:"rtt_ms"` // null: the party sent no RTCP that measured one
	MOS             *float64 `json:"mos"`    // null: nothing was received to rate
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// positive is &v, or nil when v is 0 (none).
func positive(v float64) *float64 {
	if v <= 0 {
		return nil
	}
	return &v
}

func toQualityJSON(q []store.LegQuality) *[]qualityJSON {
	out := make([]qualityJSON, 0, len(q))
	for _, e := range q {
		j := qualityJSON{Leg: e.Leg, PacketsSent: e.PacketsSent, PacketsReceived: e.PacketsReceived, Lost: e.Lost,
			LossRatio: e.LossRatio, JitterMS: millis(e.Jitter), MOS: positive(e.MOS)}
		if e.RTTKnown {
			rtt := millis(e.RTT)
			j.RTTMS = &rtt
		}
		out = append(out, j)
	}
	return &out
}

// mediaJSON is a call's recording or voicemail: where to fetch it.
type mediaJSON struct {
	URL           string  `json:"url"`
	LengthSeconds float64 `json:"length_seconds,omitempty"`
	Bytes         int64   `json:"bytes,omitempty"`
	User          string  `json:"user,omitempty"`
	Heard         *bool   `json:"heard,omitempty"`
}

func toJSON(account string, c *store.CallRecord, withTrace bool) callJSON {
	j := callJSON{Call: events.NewCall(c)}
	j.MOS = positive(c.MOS)
	if withTrace {
		j.Trace = c.Trace
		j.Quality = toQualityJSON(c.Quality)
	}
	base := "/api/v1/" + account
	if c.Recording != "" {
		j.Recording = &mediaJSON{URL: base + "/calls/" + c.ID + "/recording", LengthSeconds: c.RecordingLength.Seconds(), Bytes: c.RecordingBytes}
	}
	if c.Voicemail != "" {
		heard := c.VoicemailHeard
		j.Voicemail = &mediaJSON{URL: base + "/voicemails/" + c.ID + "/audio", User: c.VoicemailUser, Heard: &heard}
	}
	return j
}

// callFilter reads the activity filters of the query string.
func callFilter(r *http.Request) (store.CallFilter, error) {
	q := r.URL.Query()
	f := store.CallFilter{Account: r.PathValue("account"), Ended: true, Number: q.Get("number"), Outcome: q.Get("outcome"),
		Tag: q.Get("tag"), AnsweredBy: q.Get("answered_by"), Cursor: q.Get("cursor")}
	if n, ok := routing.NormalizeNumber(f.Number); ok {
		f.Number = n // the number in any form the number routes accept
	}
	if c := q.Get("caller"); strings.HasSuffix(c, "*") {
		f.CallerPrefix = strings.TrimSuffix(c, "*") // "caller=+3460*": a prefix
	} else {
		f.Caller = c
	}
	var err error
	if f.From, f.To, err = timeRange(q); err != nil {
		return f, err
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"has_recording", &f.HasRecording}, {"has_voicemail", &f.HasVoicemail}} {
		if v := q.Get(b.name); v != "" {
			x, err := strconv.ParseBool(v)
			if err != nil {
				return f, badRequest(b.name+" is true or false", fieldError{Path: b.name, Message: "not a boolean"})
			}
			*b.dst = &x
		}
	}
	if v := q.Get("mos_below"); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || !(x >= 1 && x <= 5) { // NaN too
			return f, badRequest("mos_below is a MOS from 1 to 5, e.g. 3.5", fieldError{Path: "mos_below", Message: "a number 1-5"})
		}
		f.MOSBelow = x
	}
	f.Limit, err = pageLimit(q.Get("limit"))
	return f, err
}

// timeRange reads the from and to of a query (RFC 3339; either may be
// absent); from must be before to.
func timeRange(q url.Values) (from, to time.Time, err error) {
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(t.name); v != "" {
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return from, to, badRequest("times are RFC 3339, e.g. 2026-12-03T10:00:00Z", fieldError{Path: t.name, Message: "not an RFC 3339 time"})
			}
			*t.dst = tm
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, badRequest("from must be before to", fieldError{Path: "from", Message: "not before to"})
	}
	return from, to, nil
}

// pageLimit reads a page size, 1-maxPage; 0 (the default) when v is "".
func pageLimit(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, badRequest(fmt.Sprintf("limit is 1-%d", maxPage), fieldError{Path: "limit", Message: fmt.Sprintf("1-%d", maxPage)})
	}
	return n, nil
}

// listCalls is the activity log: a page of records, newest first, with an
// opaque next cursor; with Accept: text/csv the whole filtered range.
func (a *server) listCalls(w http.ResponseWriter, r *http.Request, _ store.Token) {
	switch r.URL.Query().Get("state") {
	case "":
	case "live":
		if a.o.Calls != nil {
			a.liveCalls(w, r)
			return
		}
		fallthrough
	default:
		writeError(w, badRequest("state is live, or absent for the activity log", fieldError{Path: "state", Message: "only live"}))
		return
	}
	f, err := callFilter(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "text/csv") {
		a.callsCSV(w, r, f)
		return
	}
	recs, next, err := a.o.Store.ListCalls(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	out := struct {
		Calls []callJSON `json:"calls"`
		Next  string     `json:"next,omitempty"`
	}{Calls: make([]callJSON, 0, len(recs)), Next: next}
	for i := range recs {
		out.Calls = append(out.Calls, toJSON(f.Account, &recs[i], false))
	}
	writeJSON(w, out)
}

var csvHeader = []string{"id", "start", "number", "caller", "caller_name", "outcome", "answered_by", "duration_seconds", "hangup_cause", "tags", "recording", "voicemail"}

func (a *server) callsCSV(w http.ResponseWriter, r *http.Request, f store.CallFilter) {
	if f.Cursor != "" {
		writeProblem(w, http.StatusBadRequest, "a CSV export is the whole filtered range: no cursor", fieldError{Path: "cursor", Message: "not with text/csv"})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="calls.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	n := 0
	err := a.o.Store.EachCall(r.Context(), f, func(c *store.CallRecord) error {
		row := []string{c.ID, c.Start.UTC().Format(time.RFC3339Nano), c.Number, c.Caller, c.CallerName, c.Outcome, c.AnsweredBy,
			strconv.FormatFloat(c.Duration.Seconds(), 'f', 3, 64), c.HangupCause, strings.Join(c.Tags, " "),
			strconv.FormatBool(c.Recording != ""), strconv.FormatBool(c.Voicemail != "")}
		if err := cw.Write(row); err != nil {
			return err
		}
		if n++; n%1000 == 0 {
			cw.Flush()
		}
		return cw.Error()
	})
	cw.Flush()
	if err != nil {
		// The status is sent already: say so in the log; the client sees a
		// truncated file.
		a.o.Log.Error("csv export", "account", f.Account, "err", err)
	}
}

func (a *server) getCall(w http.ResponseWriter, r *http.Request, _ store.Token) {
	c, err := a.o.Store.GetCall(r.Context(), r.PathValue("account"), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, toJSON(r.PathValue("account"), c, true))
}

func (a *server) getRecording(w http.ResponseWriter, r *http.Request, _ store.Token) {
	c, err := a.o.Store.GetCall(r.Context(), r.PathValue("account"), r.PathValue("id"))
	if err == nil && c.Recording == "" {
		err = notFound("call %s has no recording", r.PathValue("id"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	serveWAV(w, r, c.Recording)
}

func (a *server) getVoicemailAudio(w http.ResponseWriter, r *http.Request, _ store.Token) {
	c, err := a.o.Store.GetCall(r.Context(), r.PathValue("account"), r.PathValue("id"))
	if err == nil && c.Voicemail == "" {
		err = notFound("call %s has no voicemail", r.PathValue("id"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	serveWAV(w, r, c.Voicemail)
}

// serveWAV serves a recording with Range support, so a browser can seek.
func serveWAV(w http.ResponseWriter, r *http.Request, path string) {
	f, err := os.Open(path)
	if err != nil {
		writeProblem(w, http.StatusNotFound, "the audio file is gone")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		writeProblem(w, http.StatusNotFound, "the audio file is gone")
		return
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(&rangeProblems{ResponseWriter: w}, r, filepath.Base(path), fi.ModTime(), f)
}

// rangeProblems turns ServeContent's plain-text 416 into a problem.
type rangeProblems struct {
	http.ResponseWriter
	refused bool
}

func (p *rangeProblems) WriteHeader(code int) {
	if code == http.StatusRequestedRangeNotSatisfiable {
		p.refused = true
		p.Header().Del("Content-Length")
		writeProblem(p.ResponseWriter, code, "the Range is outside the file (see Content-Range for its size)")
		return
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *rangeProblems) Write(b []byte) (int, error) {
	if p.refused {
		return len(b), nil // ServeContent's own text
	}
	return p.ResponseWriter.Write(b)
}

// listVoicemails lists voicemails newest first: ?user=NAME, ?heard=false.
func (a *server) listVoicemails(w http.ResponseWriter, r *http.Request, _ store.Token) {
	f, err := callFilter(r)
	if err != nil {
		writeError(w, err)
		return
	}
	yes := true
	f.HasVoicemail = &yes
	f.VoicemailUser = r.URL.Query().Get("user")
	if v := r.URL.Query().Get("heard"); v != "" {
		h, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, badRequest("heard is true or false", fieldError{Path: "heard", Message: "not a boolean"}))
			return
		}
		f.VoicemailHeard = &h
	}
	recs, next, err := a.o.Store.ListCalls(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	out := struct {
		Voicemails []callJSON `json:"voicemails"`
		Next       string     `json:"next,omitempty"`
	}{Voicemails: []callJSON{}, Next: next}
	for i := range recs {
		out.Voicemails = append(out.Voicemails, toJSON(f.Account, &recs[i], false))
	}
	writeJSON(w, out)
}

// patchVoicemail marks a voicemail heard or unheard: {"heard": true}.
func (a *server) patchVoicemail(w http.ResponseWriter, r *http.Request, _ store.Token) {
	var body struct {
		Heard *bool `json:"heard"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	if body.Heard == nil {
		writeProblem(w, http.StatusBadRequest, `the body must be {"heard": true|false}`, fieldError{Path: "heard", Message: "required"})
		return
	}
	account, id := r.PathValue("account"), r.PathValue("id")
	if err := a.o.Store.SetVoicemailHeard(r.Context(), account, id, *body.Heard); err != nil {
		writeError(w, err)
		return
	}
	c, err := a.o.Store.GetCall(r.Context(), account, id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, toJSON(account, c, false))
}

// versionJSON is one configuration version.
type versionJSON struct {
	Version  int64     `json:"version"`
	Author   string    `json:"author"`
	Created  time.Time `json:"created"`
	Document any       `json:"document,omitempty"`
}

func (a *server) listVersions(w http.ResponseWriter, r *http.Request, _ store.Token) {
	vs, err := a.o.Store.ConfigHistory(r.Context(), r.PathValue("account"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]versionJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, versionJSON{Version: v.Version, Author: v.Author, Created: v.Created})
	}
	writeJSON(w, map[string]any{"versions": out})
}

func versionParam(r *http.Request) (int64, error) {
	v, err := strconv.ParseInt(r.PathValue("v"), 10, 64)
	if err != nil || v < 1 {
		return 0, notFound("no version %q", r.PathValue("v"))
	}
	return v, nil
}

func (a *server) getVersion(w http.ResponseWriter, r *http.Request, _ store.Token) {
	v, err := versionParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	doc, cv, err := a.o.Store.ConfigAt(r.Context(), r.PathValue("account"), v)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, versionJSON{Version: cv.Version, Author: cv.Author, Created: cv.Created, Document: doc.Redact()})
}

// diffVersion is what version v changed from the version before it, in
// the terms of `switchboard plan`.
func (a *server) diffVersion(w http.ResponseWriter, r *http.Request, _ store.Token) {
	v, err := versionParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	account := r.PathValue("account")
	doc, _, err := a.o.Store.ConfigAt(r.Context(), account, v)
	if err != nil {
		writeError(w, err)
		return
	}
	var prev *config.Document // version 1 is all additions
	if v > 1 {
		if prev, _, err = a.o.Store.ConfigAt(r.Context(), account, v-1); err != nil && !errors.Is(err, store.ErrNotFound) {
			writeError(w, err)
			return
		}
	}
	changes := accounts.Diff(prev, doc)
	out := make([]map[string]any, 0, len(changes))
	for _, c := range changes {
		out = append(out, map[string]any{"op": string(c.Op), "path": c.Path, "old": c.Old, "new": c.New})
	}
	writeJSON(w, map[string]any{"version": v, "changes": out})
}

// rollback makes an old version the current one, as a new version:
// {"version": N}.
func (a *server) rollback(w http.ResponseWriter, r *http.Request, tok store.Token) {
	var body struct {
		Version int64 `json:"version"`
	}
	if !decodeJSON(w, r, &body) {
		return
	}
	if body.Version < 1 {
		writeProblem(w, http.StatusBadRequest, "version is required", fieldError{Path: "version", Message: "a version number"})
		return
	}
	account := r.PathValue("account")
	want, err := ifMatch(r)
	if err != nil {
		writeError(w, err)
		return
	}
	version, err := accounts.Rollback(r.Context(), a.o.Store, account, body.Version, store.Change{Author: author(tok), IfVersion: want})
	if err != nil {
		writeError(w, err)
		return
	}
	a.o.Accounts.Reload(r.Context(), account, version)
	setETag(w, version)
	writeJSON(w, map[string]any{"version": version, "rolled_back_to": body.Version})
}
