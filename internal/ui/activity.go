package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// callFilters are the activity log's filters, passed to the API as they
// are (SPEC §7 calls).
var callFilters = []string{"from", "to", "number", "caller", "outcome", "tag", "answered_by", "has_recording", "has_voicemail", "mos_below"}

// filterQuery is the API query of the page's filters; the date inputs
// (datetime-local, no zone) are read as UTC.
func filterQuery(r *http.Request) (url.Values, *form) {
	q := url.Values{}
	f := newForm()
	for _, k := range callFilters {
		v := strings.TrimSpace(r.URL.Query().Get(k))
		f.Values[k] = v
		if v == "" {
			continue
		}
		if k == "from" || k == "to" {
			if t, err := time.Parse("2006-01-02T15:04", v); err == nil {
				v = t.UTC().Format(time.RFC3339)
			}
		}
		q.Set(k, v)
	}
	return q, f
}

func (u *UI) calls(w http.ResponseWriter, r *http.Request, s *session) {
	q, f := filterQuery(r)
	page := url.Values{}
	for k, v := range q {
		page[k] = v
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		page.Set("cursor", c)
	}
	page.Set("limit", strconv.Itoa(pageSize))
	var out struct {
		Calls []callJSON `json:"calls"`
		Next  string     `json:"next"`
	}
	res := u.api(r, s, http.MethodGet, "/calls?"+page.Encode(), nil, "")
	if res.OK() {
		_ = res.Decode(&out)
	} else {
		f.apply(res.Problem(), callFilters)
	}
	d := map[string]any{"Calls": out.Calls, "CSV": "/calls.csv?" + q.Encode(), "First": r.URL.Query().Get("cursor") == ""}
	if out.Next != "" {
		nq := url.Values{}
		for _, k := range callFilters {
			if v := f.V(k); v != "" {
				nq.Set(k, v)
			}
		}
		nq.Set("cursor", out.Next)
		d["Next"] = "/calls?" + nq.Encode()
	}
	status := http.StatusOK
	if f.HasErrors() {
		status = http.StatusUnprocessableEntity
	}
	u.render(w, r, s, status, "calls", pageData{Title: "Activity log", Form: f, Data: d})
}

func (u *UI) callsCSV(w http.ResponseWriter, r *http.Request, s *session) {
	q, _ := filterQuery(r)
	u.proxy(w, r, s, "/calls?"+q.Encode(), "text/csv")
}

func (u *UI) call(w http.ResponseWriter, r *http.Request, s *session) {
	var c callJSON
	if res, err := u.get(r, s, "/calls/"+url.PathEscape(r.PathValue("id")), &c); err != nil {
		u.fail(w, r, s, "Call", res, err)
		return
	}
	u.render(w, r, s, http.StatusOK, "call", pageData{Title: "Call " + c.ID, Nav: "calls", Data: c})
}

func (u *UI) missed(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	f := newForm()
	for _, k := range []string{"number", "extension", "state", "cursor"} {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
			f.Values[k] = v
		}
	}
	if _, ok := f.Values["state"]; !ok && r.URL.Query().Get("number") == "" {
		q.Set("state", "open")
		f.Values["state"] = "open"
	}
	var out struct {
		Missed []missedJSON `json:"missed"`
		Next   string       `json:"next"`
	}
	res := u.api(r, s, http.MethodGet, "/missed?"+q.Encode(), nil, "")
	if res.OK() {
		_ = res.Decode(&out)
	} else {
		f.apply(res.Problem(), []string{"number", "extension", "state"})
	}
	d := map[string]any{"Missed": out.Missed}
	if out.Next != "" {
		q.Set("cursor", out.Next)
		q.Del("limit")
		d["Next"] = "/missed?" + q.Encode()
	}
	u.render(w, r, s, http.StatusOK, "missed", pageData{Title: "Missed calls", Form: f, Data: d})
}

func (u *UI) resolve(w http.ResponseWriter, r *http.Request, s *session) {
	res := u.api(r, s, http.MethodPost, "/missed/"+url.PathEscape(r.PathValue("id"))+"/resolve", map[string]any{}, "")
	u.afterWrite(w, r, s, res, "/missed", "Marked as dealt with.")
}

// explanation is GET route's answer (routing.Explanation).
type explanation struct {
	Outcome     string     `json:"outcome"`
	SIPStatus   int        `json:"sip_status"`
	Number      string     `json:"number"`
	Caller      string     `json:"caller"`
	Destination string     `json:"destination"`
	Attempts    [][]string `json:"attempts"`
	CallerName  string     `json:"caller_name"`
	Tags        []string   `json:"tags"`
	RulesFired  []int      `json:"rules_fired"`
	Captcha     bool       `json:"captcha"`
	Trace       []string   `json:"trace"`
}

var tryFields = []string{"number", "from", "name", "reputation", "captcha"}

// try explains what a call would do, saving nothing.
func (u *UI) try(w http.ResponseWriter, r *http.Request, s *session) {
	f := newForm()
	q := url.Values{}
	for _, k := range tryFields {
		v := strings.TrimSpace(r.URL.Query().Get(k))
		f.Values[k] = v
		if v != "" {
			q.Set(k, v)
		}
	}
	var ex *explanation
	if f.V("number") != "" {
		res := u.api(r, s, http.MethodGet, "/route?"+q.Encode(), nil, "")
		if res.OK() {
			ex = &explanation{}
			_ = res.Decode(ex)
		} else {
			f.apply(res.Problem(), tryFields)
		}
	}
	// Suggestions for the number field: the first page of the account's
	// numbers matching what is typed (the field takes any number).
	rows, _, _, _, _ := u.numbersPage(r, s, f.V("number"), "", 100)
	var nums []string
	for _, n := range rows {
		nums = append(nums, n.Name)
	}
	u.render(w, r, s, http.StatusOK, "try", pageData{Title: "Try a call", Form: f, Data: map[string]any{"Result": ex, "Numbers": nums}})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for _, n := range sortedNamed(m) {
		out = append(out, n.Name)
	}
	return out
}

type versionJSON struct {
	Version int64     `json:"version"`
	Author  string    `json:"author"`
	Created time.Time `json:"created"`
}

func (u *UI) history(w http.ResponseWriter, r *http.Request, s *session) {
	var out struct {
		Versions []versionJSON `json:"versions"`
	}
	if res, err := u.get(r, s, "/config/versions", &out); err != nil {
		u.fail(w, r, s, "History", res, err)
		return
	}
	// Newest first.
	vs := out.Versions
	for i, j := 0, len(vs)-1; i < j; i, j = i+1, j-1 {
		vs[i], vs[j] = vs[j], vs[i]
	}
	if len(vs) > 1 && vs[0].Version < vs[1].Version {
		for i, j := 0, len(vs)-1; i < j; i, j = i+1, j-1 {
			vs[i], vs[j] = vs[j], vs[i]
		}
	}
	pg, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pg = max(pg, 1)
	from := min((pg-1)*pageSize, len(vs))
	to := min(from+pageSize, len(vs))
	d := map[string]any{"Versions": vs[from:to]}
	if to < len(vs) {
		d["Next"] = "/history?page=" + strconv.Itoa(pg+1)
	}
	if len(vs) > 0 {
		d["Current"] = vs[0].Version
	}
	u.render(w, r, s, http.StatusOK, "history", pageData{Title: "Configuration history", Data: d})
}

type change struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	Old  any    `json:"old"`
	New  any    `json:"new"`
}

func (u *UI) version(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PathValue("v")
	var diff struct {
		Changes []change `json:"changes"`
	}
	if res, err := u.get(r, s, "/config/versions/"+url.PathEscape(v)+"/diff", &diff); err != nil {
		u.fail(w, r, s, "Version "+v, res, err)
		return
	}
	var meta versionJSON
	_, _ = u.get(r, s, "/config/versions/"+url.PathEscape(v), &meta)
	u.render(w, r, s, http.StatusOK, "version", pageData{Title: "Version " + v, Nav: "history", Data: map[string]any{"V": meta, "Changes": diff.Changes}})
}

func (u *UI) rollback(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		u.back(w, r, s, "/history", "Not rolled back: no version given.")
		return
	}
	res := u.api(r, s, http.MethodPost, "/config/rollback", map[string]int64{"version": v}, r.PostFormValue("current"))
	u.afterWrite(w, r, s, res, "/history", "Rolled back to version "+strconv.FormatInt(v, 10)+" (as a new version).")
}

func (u *UI) voicemail(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	f := newForm()
	for _, k := range []string{"user", "heard", "cursor"} {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
			f.Values[k] = v
		}
	}
	var out struct {
		Voicemails []callJSON `json:"voicemails"`
		Next       string     `json:"next"`
	}
	res := u.api(r, s, http.MethodGet, "/voicemails?"+q.Encode(), nil, "")
	if res.OK() {
		_ = res.Decode(&out)
	} else {
		f.apply(res.Problem(), []string{"user", "heard"})
	}
	var users map[string]any
	_, _ = u.get(r, s, "/users", &users)
	d := map[string]any{"Voicemails": out.Voicemails, "Users": sortedKeys(users)}
	if out.Next != "" {
		q.Set("cursor", out.Next)
		q.Del("limit")
		d["Next"] = "/voicemail?" + q.Encode()
	}
	u.render(w, r, s, http.StatusOK, "voicemail", pageData{Title: "Voicemail", Form: f, Data: d})
}

func (u *UI) heard(w http.ResponseWriter, r *http.Request, s *session) {
	heard := r.PostFormValue("heard") != "false"
	res := u.api(r, s, http.MethodPatch, "/voicemails/"+url.PathEscape(r.PathValue("id")), map[string]bool{"heard": heard}, "")
	to := "/voicemail"
	if ref := r.PostFormValue("back"); strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//") {
		to = ref
	}
	u.afterWrite(w, r, s, res, to, "Saved.")
}
