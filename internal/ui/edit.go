package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
)

// Editing an extension (or group) and a user, in the style of the number's
// page: the form holds every field of the API's object, a refusal's field
// paths land beside their fields, what was typed is kept, and the version
// the form was loaded at goes as If-Match.

// extensionFields are the extension form's fields, named as the
// document's paths below the extension.
var extensionFields = []string{"name", "code", "type", "destination", "members", "distribution", "max_parallel", "timeout",
	"ringing", "announcement", "confirm", "transfer", "queue.max_wait", "queue.message", "recording", "recording_notice",
	"caller_id", "on_failure"}

// userFields are the user form's fields; the password is write-only.
var userFields = []string{"extension", "password", "sms", "blocklist"}

// objectPrefixes are the paths an object of a section has in validation
// errors: `extensions.support.` or, for a name that is no plain key,
// `extensions["my group"].` (both are tried).
func objectPrefixes(section, name string) []string {
	return []string{section + "." + name + ".", section + "[" + strconv.Quote(name) + "]."}
}

func extensionForm(e config.Extension) *form {
	f := newForm()
	f.Values["code"] = e.Code
	f.Values["type"] = e.EffectiveType()
	f.Values["destination"] = e.Destination
	f.Values["members"] = strings.Join(e.Members, "\n")
	f.Values["distribution"] = e.Distribution
	if e.MaxParallel != 0 {
		f.Values["max_parallel"] = strconv.Itoa(e.MaxParallel)
	}
	if e.Timeout != 0 {
		f.Values["timeout"] = e.Timeout.String()
	}
	f.Values["ringing"] = e.Ringing
	f.Values["announcement"] = e.Announcement
	if e.Confirm {
		f.Values["confirm"] = "on"
	}
	if e.Transfer {
		f.Values["transfer"] = "on"
	}
	if q := e.Queue; q != nil {
		f.Values["queue.max_wait"] = q.MaxWait.String()
		f.Values["queue.message"] = q.Message
	}
	f.Values["recording"] = e.Recording
	f.Values["recording_notice"] = e.RecordingNotice
	f.Values["caller_id"] = e.CallerID
	f.Values["on_failure"] = e.OnFailure
	return f
}

// members reads the members field: one a line (commas too), blank lines
// dropped, in the order typed.
func members(s string) []string {
	var out []string
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
		if m := strings.TrimSpace(line); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// extensionFromForm is the body of PUT extensions/{name}. A number or a
// duration that does not parse goes to the API as typed, which names the
// field; only the fields the type uses are sent.
func extensionFromForm(f *form) map[string]any {
	m := map[string]any{"type": f.V("type")}
	for _, k := range []string{"code", "distribution", "ringing", "announcement", "recording", "recording_notice", "caller_id", "on_failure", "timeout"} {
		if v := strings.TrimSpace(f.V(k)); v != "" {
			m[k] = v
		}
	}
	if v := strings.TrimSpace(f.V("max_parallel")); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			m["max_parallel"] = n
		} else {
			m["max_parallel"] = v
		}
	}
	if f.V("confirm") != "" {
		m["confirm"] = true
	}
	if f.V("transfer") != "" {
		m["transfer"] = true
	}
	if wait, msg := strings.TrimSpace(f.V("queue.max_wait")), strings.TrimSpace(f.V("queue.message")); wait != "" || msg != "" {
		q := map[string]any{}
		if wait != "" {
			q["max_wait"] = wait
		}
		if msg != "" {
			q["message"] = msg
		}
		m["queue"] = q
	}
	if f.V("type") == config.TypeGroup {
		if ms := members(f.V("members")); len(ms) > 0 {
			m["members"] = ms
		}
	} else if d := strings.TrimSpace(f.V("destination")); d != "" {
		m["destination"] = d
	}
	return m
}

// extensionPage is the data of one extension's page.
type extensionPage struct {
	Name    string
	New     bool // not saved yet
	Version string
	Form    *form
	Used    []string // the numbers whose calls go to it
}

func (u *UI) renderExtension(w http.ResponseWriter, r *http.Request, s *session, status int, p extensionPage) {
	if !p.New {
		var nums map[string]config.Number
		_, _ = u.get(r, s, "/numbers?q="+url.QueryEscape(p.Name)+"&limit=50", &nums)
		for _, nr := range sortedNamed(nums) {
			if nr.V.Extension == p.Name {
				p.Used = append(p.Used, nr.Name)
			}
		}
	}
	title := p.Name
	if p.New {
		title = "New extension"
	}
	u.render(w, r, s, status, "extension", pageData{Title: title, Nav: "extensions", Data: p})
}

func (u *UI) extension(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	var e config.Extension
	res, err := u.get(r, s, "/extensions/"+url.PathEscape(name), &e)
	if err != nil {
		u.fail(w, r, s, name, res, err)
		return
	}
	u.renderExtension(w, r, s, http.StatusOK, extensionPage{Name: name, Version: res.Version(), Form: extensionForm(e)})
}

// newExtension is the empty form of an extension not saved yet; its name
// is typed on the form.
func (u *UI) newExtension(w http.ResponseWriter, r *http.Request, s *session) {
	if u.api(r, s, http.MethodGet, "/extensions/new", nil, "").OK() { // one named "new"
		u.extension(w, r, s)
		return
	}
	res, err := u.get(r, s, "/extensions", nil)
	if err != nil {
		u.fail(w, r, s, "New extension", res, err)
		return
	}
	f := extensionForm(config.Extension{Type: config.TypeGroup})
	f.Values["name"] = strings.TrimSpace(r.URL.Query().Get("name"))
	u.renderExtension(w, r, s, http.StatusOK, extensionPage{New: true, Version: res.Version(), Form: f})
}

// saveExtension saves the form with PUT extensions/{name}; "POST
// /extensions" creates one under the name typed, refusing a name taken.
func (u *UI) saveExtension(w http.ResponseWriter, r *http.Request, s *session) {
	f := fromRequest(r)
	name, creating := r.PathValue("name"), r.PathValue("name") == ""
	p := extensionPage{Name: name, New: creating, Version: r.PostFormValue("version"), Form: f}
	if creating {
		name = strings.TrimSpace(f.V("name"))
		switch {
		case name == "":
			f.Errors["name"] = "a name is required"
		case u.api(r, s, http.MethodGet, "/extensions/"+url.PathEscape(name), nil, "").OK():
			f.Errors["name"] = "there is already an extension " + strconv.Quote(name)
		}
		if f.HasErrors() {
			u.renderExtension(w, r, s, http.StatusUnprocessableEntity, p)
			return
		}
	}
	res := u.api(r, s, http.MethodPut, "/extensions/"+url.PathEscape(name), extensionFromForm(f), r.PostFormValue("version"))
	if !res.OK() {
		f.apply(res.Problem(), extensionFields, objectPrefixes("extensions", name)...)
		// A name the API refuses is the name field's error.
		for i, o := range f.Other {
			if creating && strings.HasPrefix(o, "extensions[") && !strings.Contains(o, "].") {
				f.Errors["name"] = o[strings.Index(o, ": ")+2:]
				f.Other = append(f.Other[:i], f.Other[i+1:]...)
				break
			}
		}
		u.renderExtension(w, r, s, http.StatusUnprocessableEntity, p)
		return
	}
	msg := "Saved " + name + "."
	if creating {
		msg = "Created " + name + "."
	}
	u.back(w, r, s, "/extensions/"+url.PathEscape(name), msg)
}

// deleteExtension deletes one; the API refuses (409) while numbers or
// other extensions refer to it, and that refusal is shown on its page.
func (u *UI) deleteExtension(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	res := u.api(r, s, http.MethodDelete, "/extensions/"+url.PathEscape(name), nil, r.PostFormValue("version"))
	if res.OK() {
		u.back(w, r, s, "/extensions", "Deleted "+name+".")
		return
	}
	to := "/extensions/" + url.PathEscape(name)
	if p := res.Problem(); p.Status == http.StatusConflict {
		var refs []string
		for _, e := range p.Errors {
			refs = append(refs, e.Path)
		}
		u.back(w, r, s, to, "Not deleted: "+p.Detail+" ("+strings.Join(refs, ", ")+").")
		return
	}
	u.afterWrite(w, r, s, res, to, "")
}

func userForm(us config.User) *form {
	f := newForm()
	f.Values["extension"] = us.Extension
	if us.SMS {
		f.Values["sms"] = "on"
	}
	f.Values["blocklist"] = strings.Join(us.Blocklist, ", ")
	return f
}

// userPage is the data of one user's page.
type userPage struct {
	Name        string
	Version     string
	Form        *form
	HasPassword bool
	Devices     []registration
	HaveDevices bool
}

func (u *UI) loadUser(r *http.Request, s *session, name string) (config.User, string, *apiResult, error) {
	var us config.User
	res, err := u.get(r, s, "/users/"+url.PathEscape(name), &us)
	return us, res.Version(), res, err
}

func (u *UI) renderUser(w http.ResponseWriter, r *http.Request, s *session, status int, p userPage) {
	regs, have := u.registrations(r, s)
	p.HaveDevices = have
	for _, g := range regs {
		if g.User == p.Name {
			p.Devices = append(p.Devices, g)
		}
	}
	// Whatever was typed, a password is never rendered back.
	delete(p.Form.Values, "password")
	u.render(w, r, s, status, "user", pageData{Title: p.Name, Nav: "users", Data: p})
}

func (u *UI) user(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	us, version, res, err := u.loadUser(r, s, name)
	if err != nil {
		u.fail(w, r, s, name, res, err)
		return
	}
	u.renderUser(w, r, s, http.StatusOK, userPage{Name: name, Version: version, Form: userForm(us), HasPassword: us.Password != ""})
}

// saveUser saves the form with PUT users/{name}. The API serves a
// password as config.Redacted and keeps the stored one when it gets that
// back, so an empty password field sends it back as read: the password
// stays as it was (or none).
func (u *UI) saveUser(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	us, _, res, err := u.loadUser(r, s, name)
	if err != nil {
		u.fail(w, r, s, name, res, err)
		return
	}
	had := us.Password != ""
	f := fromRequest(r)
	us.Extension = strings.TrimSpace(f.V("extension"))
	us.SMS = f.V("sms") != ""
	us.Blocklist = splitList(f.V("blocklist"))
	if pw := r.PostFormValue("password"); pw != "" {
		us.Password = pw
	}
	res = u.api(r, s, http.MethodPut, "/users/"+url.PathEscape(name), us, r.PostFormValue("version"))
	if !res.OK() {
		f.apply(res.Problem(), userFields, objectPrefixes("users", name)...)
		u.renderUser(w, r, s, http.StatusUnprocessableEntity, userPage{Name: name, Version: r.PostFormValue("version"), Form: f, HasPassword: had})
		return
	}
	msg := "Saved " + name + "."
	if r.PostFormValue("password") != "" {
		msg = "Saved " + name + " and the new password: its devices sign in with it from their next registration."
	}
	u.back(w, r, s, "/users/"+url.PathEscape(name), msg)
}
