package ui

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/config"
)

// pageData is what every template gets.
type pageData struct {
	Title    string
	Nav      string
	Account  string
	ReadOnly bool
	CSRF     string
	Flash    string
	Error    string
	Form     *form
	Data     any
}

var funcs = template.FuncMap{
	"join": strings.Join,
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		}
		return ""
	},
	"secs": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " s" },
	"mos": func(f *float64) string {
		if f == nil {
			return "–"
		}
		return strconv.FormatFloat(*f, 'f', 2, 64)
	},
	"ms": func(f *float64) string {
		if f == nil {
			return "–"
		}
		return strconv.FormatFloat(*f, 'f', 1, 64) + " ms"
	},
	"pct":  func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" },
	"path": url.PathEscape,
	"json": func(v any) string {
		if v == nil {
			return ""
		}
		b, _ := json.Marshal(v)
		return string(b)
	},
	"add":       func(a, b int) int { return a + b },
	"hasPrefix": strings.HasPrefix,
	"opname": func(op string) string {
		return map[string]string{"+": "added", "-": "removed", "~": "changed"}[op]
	},
	"deref":    func(b *bool) bool { return b != nil && *b },
	"levels":   func() []string { return []string{"", "low", "medium", "high"} },
	"outcomes": func() []string { return []string{"", "routed", "rejected", "voicemail", "failed", "missed"} },
	"list": func() [][3]string {
		return [][3]string{{"/", "Dashboard", "dashboard"}, {"/numbers", "Numbers", "numbers"}, {"/extensions", "Extensions", "extensions"},
			{"/users", "Users", "users"}, {"/locations", "Locations", "locations"}, {"/calls", "Activity", "calls"}, {"/missed", "Missed", "missed"},
			{"/voicemail", "Voicemail", "voicemail"}, {"/messages", "Messages", "messages"}, {"/try", "Try a call", "try"}, {"/history", "History", "history"}}
	},
	"fld":  func(f *form, name, label string) field { return newField(f, name, label, "f-") },
	"fldp": func(f *form, name, label, prefix string) field { return newField(f, name, label, prefix) },
	"sel":  newChoice,
	// rows is a textarea's height: its lines and one to type in.
	"rows": func(s string) int { return min(max(strings.Count(s, "\n")+2, 3), 20) },
	"rf": func(f *form, i int, actions, levels []string) map[string]any {
		p := "new-"
		if i >= 0 {
			p = "rule" + strconv.Itoa(i) + "-"
		}
		return map[string]any{"F": f, "P": p, "Actions": actions, "Levels": levels}
	},
	"dur": func(d config.Duration) string {
		if d == 0 {
			return ""
		}
		return d.D().String()
	},
}

// field is one labelled input of a form.
type field struct{ ID, Name, Label, Value, Err string }

func newField(f *form, name, label, prefix string) field {
	return field{ID: prefix + name, Name: name, Label: label, Value: f.V(name), Err: f.E(name)}
}

// choice is one labelled select of a form; Known is false when the value
// (as stored, or as typed) is none of the options, which is then shown too.
type choice struct {
	field
	Options []string
	Known   bool
}

func newChoice(f *form, name, label string, options ...string) choice {
	c := choice{field: newField(f, name, label, "f-"), Options: options}
	c.Known = slices.Contains(options, c.Value)
	return c
}

func (u *UI) routes() {
	m := u.mux
	m.Handle("GET /static/", http.FileServerFS(staticFS))
	m.HandleFunc("GET /signin", u.signinPage)
	m.HandleFunc("POST /signin", u.signin)
	m.HandleFunc("POST /signout", u.auth(u.signout))
	m.HandleFunc("GET /{$}", u.auth(u.dashboard))
	m.HandleFunc("GET /live", u.auth(u.live))
	m.HandleFunc("GET /live/calls", u.auth(u.liveFragment))
	m.HandleFunc("GET /numbers", u.auth(u.numbers))
	m.HandleFunc("GET /numbers/{n}", u.auth(u.number))
	m.HandleFunc("POST /numbers/{n}", u.auth(u.saveNumber))
	m.HandleFunc("POST /numbers/{n}/rules", u.auth(u.saveRule))
	m.HandleFunc("POST /numbers/{n}/rules/{i}", u.auth(u.saveRule))
	m.HandleFunc("POST /numbers/{n}/rules/{i}/delete", u.auth(u.deleteRule))
	m.HandleFunc("POST /numbers/{n}/rules/{i}/move", u.auth(u.moveRule))
	m.HandleFunc("GET /extensions", u.auth(u.extensions))
	m.HandleFunc("GET /extensions/new", u.auth(u.newExtension))
	m.HandleFunc("POST /extensions", u.auth(u.saveExtension))
	m.HandleFunc("GET /extensions/{name}", u.auth(u.extension))
	m.HandleFunc("POST /extensions/{name}", u.auth(u.saveExtension))
	m.HandleFunc("POST /extensions/{name}/delete", u.auth(u.deleteExtension))
	m.HandleFunc("GET /users", u.auth(u.users))
	m.HandleFunc("GET /users/{name}", u.auth(u.user))
	m.HandleFunc("POST /users/{name}", u.auth(u.saveUser))
	m.HandleFunc("GET /locations", u.auth(u.locations))
	m.HandleFunc("POST /locations/{name}/forward", u.auth(u.forward))
	m.HandleFunc("GET /calls", u.auth(u.calls))
	m.HandleFunc("GET /calls.csv", u.auth(u.callsCSV))
	m.HandleFunc("GET /calls/{id}", u.auth(u.call))
	m.HandleFunc("GET /calls/{id}/recording", u.auth(func(w http.ResponseWriter, r *http.Request, s *session) {
		u.proxy(w, r, s, "/calls/"+url.PathEscape(r.PathValue("id"))+"/recording", "")
	}))
	m.HandleFunc("GET /calls/{id}/voicemail", u.auth(func(w http.ResponseWriter, r *http.Request, s *session) {
		u.proxy(w, r, s, "/voicemails/"+url.PathEscape(r.PathValue("id"))+"/audio", "")
	}))
	m.HandleFunc("GET /missed", u.auth(u.missed))
	m.HandleFunc("POST /missed/{id}/resolve", u.auth(u.resolve))
	m.HandleFunc("GET /try", u.auth(u.try))
	m.HandleFunc("GET /history", u.auth(u.history))
	m.HandleFunc("GET /history/{v}", u.auth(u.version))
	m.HandleFunc("POST /history/rollback", u.auth(u.rollback))
	m.HandleFunc("GET /voicemail", u.auth(u.voicemail))
	m.HandleFunc("POST /voicemail/{id}/heard", u.auth(u.heard))
	m.HandleFunc("GET /messages", u.auth(u.messages))
	m.HandleFunc("GET /messages/{id}", u.auth(u.message))
	// Everything else is the API's: /api/, /metrics, /healthz, /readyz.
	m.Handle("/", u.o.API)
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, d pageData) {
	if s != nil {
		d.Account, d.ReadOnly, d.CSRF = s.account, s.readOnly, s.csrf
		if d.Flash == "" {
			d.Flash = u.takeFlash(s)
		}
	}
	if d.Nav == "" {
		d.Nav = name
	}
	t := u.pages[name]
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "base", d); err != nil {
		u.o.Log.Error("ui: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; media-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// fail renders a page that could not load its data.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *session, title string, res *apiResult, err error) {
	status := http.StatusBadGateway
	if res != nil && res.Status >= 400 {
		status = res.Status
	}
	u.render(w, r, s, status, "error", pageData{Title: title, Error: err.Error()})
}

// back redirects after a POST (303), with a message for the next page.
func (u *UI) back(w http.ResponseWriter, r *http.Request, s *session, to, flash string) {
	if flash != "" {
		u.setFlash(s, flash)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// --- sign in ---

func (u *UI) signinPage(w http.ResponseWriter, r *http.Request) {
	u.renderSignin(w, r, http.StatusOK, "", "")
}

func (u *UI) renderSignin(w http.ResponseWriter, r *http.Request, status int, account, msg string) {
	pre := randomID()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: pre, Path: "/signin", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	next := r.FormValue("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		next = "/"
	}
	u.render(w, r, nil, status, "signin", pageData{Title: "Sign in", CSRF: pre, Error: msg,
		Data: map[string]string{"Account": account, "Next": next}})
}

// wrongToken is all a failed sign-in says: the same for an unknown
// account, a token of another account and a token that does not exist.
const wrongToken = "That account and token do not sign in. Check both and try again."

func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(preCookie)
	if err != nil || c.Value == "" || r.PostFormValue("csrf") != c.Value {
		http.Error(w, "the sign-in form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
		return
	}
	account := strings.TrimSpace(r.PostFormValue("account"))
	token := strings.TrimSpace(r.PostFormValue("token"))
	if account == "" || token == "" {
		u.renderSignin(w, r, http.StatusUnauthorized, account, wrongToken)
		return
	}
	probe := &session{account: account, token: token}
	// Any answer but 200 (401 bad token, 404 another account's or none) is
	// the same message.
	if res := u.api(r, probe, http.MethodGet, "/locations", nil, ""); !res.OK() {
		u.renderSignin(w, r, http.StatusUnauthorized, account, wrongToken)
		return
	}
	// Read-only? A write the API refuses before doing anything: a token
	// that may write gets the 400 of the missing body field, a read-only
	// one the 403.
	res := u.api(r, probe, http.MethodPut, "/locations/-/forward", map[string]any{}, "")
	u.newSession(w, r, account, token, res.Status == http.StatusForbidden)
	next := r.PostFormValue("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) signout(w http.ResponseWriter, r *http.Request, s *session) {
	u.endSession(w, s)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// --- dashboard ---

type liveCall struct {
	ID     string    `json:"id"`
	Number string    `json:"number"`
	Caller string    `json:"caller"`
	Start  time.Time `json:"start"`
	Legs   []struct {
		Member string    `json:"member"`
		State  string    `json:"state"`
		Since  time.Time `json:"since"`
	} `json:"legs"`
}

type callJSON struct {
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
	HangupCause     string     `json:"hangup_cause"`
	Tags            []string   `json:"tags"`
	Extension       string     `json:"extension"`
	Direction       string     `json:"direction"`
	Trace           []string   `json:"trace"`
	MOS             *float64   `json:"mos"`
	Recording       *media     `json:"recording"`
	Voicemail       *media     `json:"voicemail"`
	Quality         []struct {
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

type media struct {
	URL           string  `json:"url"`
	LengthSeconds float64 `json:"length_seconds"`
	User          string  `json:"user"`
	Heard         *bool   `json:"heard"`
}

type missedJSON struct {
	CallID     string     `json:"call_id"`
	Number     string     `json:"number"`
	Extension  string     `json:"extension"`
	Caller     string     `json:"caller"`
	CallerName string     `json:"caller_name"`
	Start      time.Time  `json:"start"`
	Resolved   bool       `json:"resolved"`
	ResolvedAt *time.Time `json:"resolved_at"`
	ResolvedBy string     `json:"resolved_by"`
}

// registration is a device of a user, as GET registrations serves it.
type registration struct {
	User      string    `json:"user"`
	Contact   string    `json:"contact"`
	Address   string    `json:"address"`
	UserAgent string    `json:"user_agent"`
	Expires   time.Time `json:"expires"`
}

// registrations reads the account's devices; ok is false when the API
// does not serve them.
func (u *UI) registrations(r *http.Request, s *session) ([]registration, bool) {
	var out struct {
		Registrations []registration `json:"registrations"`
	}
	if _, err := u.get(r, s, "/registrations", &out); err != nil {
		return nil, false
	}
	return out.Registrations, true
}

func (u *UI) liveCalls(r *http.Request, s *session) ([]liveCall, error) {
	var out struct {
		Calls []liveCall `json:"calls"`
	}
	_, err := u.get(r, s, "/calls?state=live", &out)
	return out.Calls, err
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	live, err := u.liveCalls(r, s)
	if err != nil {
		u.fail(w, r, s, "Dashboard", nil, err)
		return
	}
	now := u.o.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	var today struct {
		Calls []callJSON `json:"calls"`
		Next  string     `json:"next"`
	}
	_, _ = u.get(r, s, "/calls?limit=20&from="+url.QueryEscape(midnight.Format(time.RFC3339)), &today)
	var missed struct {
		Missed []missedJSON `json:"missed"`
	}
	_, _ = u.get(r, s, "/missed?state=open&limit=10", &missed)
	regs, haveRegs := u.registrations(r, s)
	u.render(w, r, s, http.StatusOK, "dashboard", pageData{Title: "Dashboard", Data: map[string]any{
		"Live": live, "Today": today.Calls, "TodayMore": today.Next != "", "Missed": missed.Missed,
		"Registrations": regs, "HaveRegistrations": haveRegs,
	}})
}

// live relays the account's event stream to the page's EventSource, with
// the session's token.
func (u *UI) live(w http.ResponseWriter, r *http.Request, s *session) {
	u.proxy(w, r, s, "/events", "")
}

// liveFragment is the live-calls table alone, re-read by the dashboard's
// script on every call event.
func (u *UI) liveFragment(w http.ResponseWriter, r *http.Request, s *session) {
	live, err := u.liveCalls(r, s)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := u.pages["dashboard"].ExecuteTemplate(w, "livecalls", live); err != nil {
		u.o.Log.Error("ui: live fragment", "err", err)
	}
}

// --- numbers ---

const pageSize = 50

type numberRow struct {
	Name string
	N    config.Number
}

// numbersPage reads one page of the account's numbers from the API
// (GET numbers?q=&limit=&cursor=): the numbers in order, how many match,
// and the next page's cursor ("" on the last page).
func (u *UI) numbersPage(r *http.Request, s *session, q, cursor string, limit int) ([]numberRow, int, string, *apiResult, error) {
	v := url.Values{"q": {q}, "limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	var page map[string]config.Number
	res, err := u.get(r, s, "/numbers?"+v.Encode(), &page)
	if err != nil {
		return nil, 0, "", res, err
	}
	rows := make([]numberRow, 0, len(page))
	for _, n := range sortedNamed(page) {
		rows = append(rows, numberRow{Name: n.Name, N: n.V})
	}
	total, _ := strconv.Atoi(res.Header.Get("X-Total-Count"))
	next := ""
	if m := nextLink.FindStringSubmatch(res.Header.Get("Link")); m != nil {
		if lu, err := url.Parse(m[1]); err == nil {
			next = lu.Query().Get("cursor")
		}
	}
	return rows, total, next, res, nil
}

var nextLink = regexp.MustCompile(`<([^>]*)>;\s*rel="next"`)

// numbers lists the numbers a page at a time: the API searches and pages
// them, so an account of 10,000 is never read whole. at is the page's
// position, for the "51–100 of N" line.
func (u *UI) numbers(w http.ResponseWriter, r *http.Request, s *session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	cursor := r.URL.Query().Get("cursor")
	at, _ := strconv.Atoi(r.URL.Query().Get("at"))
	if cursor == "" || at < 0 {
		at = 0
	}
	rows, total, next, res, err := u.numbersPage(r, s, q, cursor, pageSize)
	if err != nil {
		if res != nil && res.Status == http.StatusBadRequest { // a stale or forged cursor: the first page
			http.Redirect(w, r, "/numbers?"+url.Values{"q": {q}}.Encode(), http.StatusSeeOther)
			return
		}
		u.fail(w, r, s, "Numbers", res, err)
		return
	}
	d := map[string]any{"Rows": rows, "Q": q, "Total": total, "From": at + 1, "To": at + len(rows)}
	if cursor != "" {
		d["First"] = "/numbers?" + url.Values{"q": {q}}.Encode()
	}
	if next != "" {
		d["Next"] = "/numbers?" + url.Values{"q": {q}, "cursor": {next}, "at": {strconv.Itoa(at + len(rows))}}.Encode()
	}
	u.render(w, r, s, http.StatusOK, "numbers", pageData{Title: "Numbers", Data: d})
}

// numberFields are the number form's fields, named as the document's
// paths below the number.
var numberFields = []string{"extension", "sms_extension", "forward.enabled", "forward.destination", "location", "tags", "distinctive_ring", "cnam_prefix"}

var ruleFields = []string{"prefix", "weight", "action", "reputation", "extension", "cnam_prefix", "tags"}

func numberForm(n config.Number) *form {
	f := newForm()
	f.Values["extension"] = n.Extension
	f.Values["sms_extension"] = n.SMSExtension
	if n.Forward != nil {
		if n.Forward.Enabled {
			f.Values["forward.enabled"] = "on"
		}
		f.Values["forward.destination"] = n.Forward.Destination
	}
	f.Values["location"] = n.Location
	f.Values["tags"] = strings.Join(n.Tags, ", ")
	f.Values["distinctive_ring"] = n.DistinctiveRing
	f.Values["cnam_prefix"] = n.CNAMPrefix
	return f
}

func ruleForm(r config.Rule) *form {
	f := newForm()
	f.Values["prefix"] = r.Prefix
	f.Values["weight"] = strconv.Itoa(r.Weight)
	f.Values["action"] = r.Action
	f.Values["reputation"] = r.Reputation
	f.Values["extension"] = r.Extension
	f.Values["cnam_prefix"] = r.CNAMPrefix
	f.Values["tags"] = strings.Join(r.Tags, ", ")
	return f
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, p)
	}
	return out
}

// numberPage is the data of one number's page.
type numberPage struct {
	Number   string
	Version  string
	Form     *form   // the number's fields
	Rules    []*form // one per rule, in the document's order
	Order    []int   // rule indexes in the order they are tried (by weight)
	New      *form   // the add-a-rule form
	Editing  int     // the rule whose form has an error (-1: none)
	Actions  []string
	Levels   []string
	Location map[string]config.Location
}

func (u *UI) loadNumber(r *http.Request, s *session, n string) (config.Number, string, *apiResult, error) {
	var num config.Number
	res, err := u.get(r, s, "/numbers/"+url.PathEscape(n), &num)
	if err != nil {
		return num, "", res, err
	}
	return num, res.Version(), res, nil
}

func (u *UI) number(w http.ResponseWriter, r *http.Request, s *session) {
	n := r.PathValue("n")
	num, version, res, err := u.loadNumber(r, s, n)
	if err != nil {
		u.fail(w, r, s, n, res, err)
		return
	}
	u.renderNumber(w, r, s, http.StatusOK, n, num, version, nil, -1, nil)
}

// renderNumber shows the number's page; f (when set) replaces the form of
// the number (edit = -2), of rule edit, or of the new rule (edit = len).
func (u *UI) renderNumber(w http.ResponseWriter, r *http.Request, s *session, status int, n string, num config.Number, version string, f *form, edit int, _ error) {
	p := numberPage{Number: n, Version: version, Form: numberForm(num), New: ruleForm(config.Rule{Prefix: "*", Action: "route"}),
		Editing: edit, Actions: []string{"route", "reject-busy", "reject-503", "cnam-prefix", "voice-captcha"}, Levels: []string{"", "low", "medium", "high"}}
	p.New.Values["weight"] = strconv.Itoa(nextWeight(num.Rules))
	for _, rule := range num.Rules {
		p.Rules = append(p.Rules, ruleForm(rule))
	}
	p.Order = byWeight(num.Rules)
	switch {
	case f == nil:
	case edit == -2:
		p.Form = f
	case edit >= 0 && edit < len(p.Rules):
		p.Rules[edit] = f
	default:
		p.New = f
	}
	var locs map[string]config.Location
	_, _ = u.get(r, s, "/locations", &locs)
	p.Location = locs
	u.render(w, r, s, status, "number", pageData{Title: n, Nav: "numbers", Data: p})
}

func nextWeight(rules []config.Rule) int {
	w := 0
	for _, r := range rules {
		w = max(w, r.Weight)
	}
	return w + 10
}

// byWeight is the rules' indexes in the order routing tries them: by
// weight, ties in document order.
func byWeight(rules []config.Rule) []int {
	idx := make([]int, len(rules))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return rules[a].Weight - rules[b].Weight })
	return idx
}

// numberPrefix is the number's path in the document, as validation
// errors name it.
func numberPrefix(n string) string { return `numbers["` + n + `"].` }

func (u *UI) saveNumber(w http.ResponseWriter, r *http.Request, s *session) {
	n := r.PathValue("n")
	num, version, res, err := u.loadNumber(r, s, n)
	if err != nil {
		u.fail(w, r, s, n, res, err)
		return
	}
	f := fromRequest(r)
	num.Extension = f.V("extension")
	num.SMSExtension = f.V("sms_extension")
	num.Location = f.V("location")
	num.Tags = splitList(f.V("tags"))
	num.DistinctiveRing = f.V("distinctive_ring")
	num.CNAMPrefix = f.V("cnam_prefix")
	if f.V("forward.enabled") != "" || f.V("forward.destination") != "" {
		num.Forward = &config.Forward{Enabled: f.V("forward.enabled") != "", Destination: f.V("forward.destination")}
	} else {
		num.Forward = nil
	}
	res = u.api(r, s, http.MethodPut, "/numbers/"+url.PathEscape(n), num, r.PostFormValue("version"))
	if !res.OK() {
		f.apply(res.Problem(), numberFields, numberPrefix(n))
		u.renderNumber(w, r, s, http.StatusUnprocessableEntity, n, num, version, f, -2, nil)
		return
	}
	u.back(w, r, s, "/numbers/"+url.PathEscape(n), "Saved "+n+".")
}

// ruleFromForm reads a rule; a weight that is no integer goes to the API
// as typed, which names the field.
func ruleFromForm(f *form) map[string]any {
	m := map[string]any{"prefix": f.V("prefix"), "action": f.V("action")}
	if w, err := strconv.Atoi(strings.TrimSpace(f.V("weight"))); err == nil {
		m["weight"] = w
	} else {
		m["weight"] = f.V("weight")
	}
	for _, k := range []string{"reputation", "extension", "cnam_prefix"} {
		if v := strings.TrimSpace(f.V(k)); v != "" {
			m[k] = v
		}
	}
	if t := splitList(f.V("tags")); len(t) > 0 {
		m["tags"] = t
	}
	// Only the fields the action uses.
	if m["action"] != "route" {
		delete(m, "extension")
	}
	if m["action"] != "cnam-prefix" {
		delete(m, "cnam_prefix")
	}
	return m
}

func (u *UI) saveRule(w http.ResponseWriter, r *http.Request, s *session) {
	n := r.PathValue("n")
	num, version, res, err := u.loadNumber(r, s, n)
	if err != nil {
		u.fail(w, r, s, n, res, err)
		return
	}
	i := len(num.Rules)
	if v := r.PathValue("i"); v != "" {
		if i, err = strconv.Atoi(v); err != nil || i < 0 || i >= len(num.Rules) {
			u.fail(w, r, s, n, &apiResult{Status: http.StatusNotFound}, fmt.Errorf("no rule %s", v))
			return
		}
	}
	f := fromRequest(r)
	res = u.api(r, s, http.MethodPut, "/numbers/"+url.PathEscape(n)+"/rules/"+strconv.Itoa(i), ruleFromForm(f), r.PostFormValue("version"))
	if !res.OK() {
		f.apply(res.Problem(), ruleFields, fmt.Sprintf("%srules[%d].", numberPrefix(n), i))
		u.renderNumber(w, r, s, http.StatusUnprocessableEntity, n, num, version, f, i, nil)
		return
	}
	msg := fmt.Sprintf("Saved rule %d of %s.", i+1, n)
	if i == len(num.Rules) {
		msg = "Added a rule to " + n + ": try a call to see it fire."
	}
	u.back(w, r, s, "/numbers/"+url.PathEscape(n), msg)
}

func (u *UI) deleteRule(w http.ResponseWriter, r *http.Request, s *session) {
	n := r.PathValue("n")
	res := u.api(r, s, http.MethodDelete, "/numbers/"+url.PathEscape(n)+"/rules/"+url.PathEscape(r.PathValue("i")), nil, r.PostFormValue("version"))
	u.afterWrite(w, r, s, res, "/numbers/"+url.PathEscape(n), "Deleted the rule.")
}

// moveRule moves a rule one place earlier or later in the order routing
// tries them, by swapping its weight with its neighbour's (equal weights
// are spread first), and saves the whole list.
func (u *UI) moveRule(w http.ResponseWriter, r *http.Request, s *session) {
	n := r.PathValue("n")
	num, _, res, err := u.loadNumber(r, s, n)
	if err != nil {
		u.fail(w, r, s, n, res, err)
		return
	}
	i, err := strconv.Atoi(r.PathValue("i"))
	if err != nil || i < 0 || i >= len(num.Rules) {
		u.fail(w, r, s, n, &apiResult{Status: http.StatusNotFound}, fmt.Errorf("no rule %s", r.PathValue("i")))
		return
	}
	order := byWeight(num.Rules)
	pos := slices.Index(order, i)
	other := pos - 1
	if r.PostFormValue("dir") == "down" {
		other = pos + 1
	}
	if other >= 0 && other < len(order) {
		rules := slices.Clone(num.Rules)
		// Distinct weights in the current order, then swap the two.
		for k, idx := range order {
			if k > 0 && rules[idx].Weight <= rules[order[k-1]].Weight {
				rules[idx].Weight = rules[order[k-1]].Weight + 1
			}
		}
		a, b := order[pos], order[other]
		rules[a].Weight, rules[b].Weight = rules[b].Weight, rules[a].Weight
		res = u.api(r, s, http.MethodPut, "/numbers/"+url.PathEscape(n)+"/rules", rules, r.PostFormValue("version"))
		u.afterWrite(w, r, s, res, "/numbers/"+url.PathEscape(n), "Moved the rule.")
		return
	}
	u.back(w, r, s, "/numbers/"+url.PathEscape(n), "")
}

// afterWrite redirects back with the outcome of a write that has no form
// of its own to show errors beside.
func (u *UI) afterWrite(w http.ResponseWriter, r *http.Request, s *session, res *apiResult, to, ok string) {
	if res.OK() {
		u.back(w, r, s, to, ok)
		return
	}
	f := newForm()
	f.apply(res.Problem(), nil)
	msg := strings.Join(f.Other, " ")
	if f.Stale {
		msg = "Someone else changed the configuration since you loaded this page: nothing was changed. Reload it and try again."
	}
	u.back(w, r, s, to, "Not saved: "+msg)
}

// --- extensions, users, locations ---

type named[T any] struct {
	Name string
	V    T
}

func sortedNamed[T any](m map[string]T) []named[T] {
	out := make([]named[T], 0, len(m))
	for k, v := range m {
		out = append(out, named[T]{k, v})
	}
	slices.SortFunc(out, func(a, b named[T]) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (u *UI) extensions(w http.ResponseWriter, r *http.Request, s *session) {
	var m map[string]config.Extension
	if res, err := u.get(r, s, "/extensions", &m); err != nil {
		u.fail(w, r, s, "Extensions", res, err)
		return
	}
	u.render(w, r, s, http.StatusOK, "extensions", pageData{Title: "Extensions and groups", Data: sortedNamed(m)})
}

type userRow struct {
	Name    string
	User    config.User
	Devices []registration
}

func (u *UI) users(w http.ResponseWriter, r *http.Request, s *session) {
	var m map[string]config.User
	if res, err := u.get(r, s, "/users", &m); err != nil {
		u.fail(w, r, s, "Users", res, err)
		return
	}
	regs, have := u.registrations(r, s)
	var rows []userRow
	for _, nu := range sortedNamed(m) {
		row := userRow{Name: nu.Name, User: nu.V}
		for _, g := range regs {
			if g.User == nu.Name {
				row.Devices = append(row.Devices, g)
			}
		}
		rows = append(rows, row)
	}
	u.render(w, r, s, http.StatusOK, "users", pageData{Title: "Users", Data: map[string]any{"Rows": rows, "HaveRegistrations": have}})
}

func (u *UI) locations(w http.ResponseWriter, r *http.Request, s *session) {
	var m map[string]config.Location
	res, err := u.get(r, s, "/locations", &m)
	if err != nil {
		u.fail(w, r, s, "Locations", res, err)
		return
	}
	var nums map[string]config.Number
	_, _ = u.get(r, s, "/numbers", &nums)
	count := map[string]int{}
	for _, n := range nums {
		count[n.Location]++
	}
	u.render(w, r, s, http.StatusOK, "locations", pageData{Title: "Locations", Data: map[string]any{
		"Rows": sortedNamed(m), "Numbers": count, "Version": res.Version()}})
}

func (u *UI) forward(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	on := r.PostFormValue("enabled") == "true"
	res := u.api(r, s, http.MethodPut, "/locations/"+url.PathEscape(name)+"/forward", map[string]bool{"enabled": on}, r.PostFormValue("version"))
	state := "off"
	if on {
		state = "on"
	}
	u.afterWrite(w, r, s, res, "/locations", "Forwarding of "+name+" is "+state+".")
}
