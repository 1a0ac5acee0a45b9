package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// messageJSON is one message of the API's message log (GET messages).
type messageJSON struct {
	ID         string    `json:"id"`
	Direction  string    `json:"direction"`
	Number     string    `json:"number"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	User       string    `json:"user"`
	Body       string    `json:"body"`
	State      string    `json:"state"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	Deliveries []struct {
		User        string     `json:"user"`
		Device      string     `json:"device"`
		Trunk       string     `json:"trunk"`
		State       string     `json:"state"`
		Attempts    int        `json:"attempts"`
		NextAttempt *time.Time `json:"next_attempt"`
		LastError   string     `json:"last_error"`
		Log         []struct {
			At     time.Time `json:"at"`
			Status int       `json:"status"`
			Error  string    `json:"error"`
		} `json:"log"`
	} `json:"deliveries"`
}

// messageFilters are the message log's filters the page passes on.
var messageFilters = []string{"number", "user", "direction", "state"}

// messages is the message log: the API's filters, one page at a time.
func (u *UI) messages(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	f := newForm()
	for _, k := range append(messageFilters, "cursor") {
		if v := strings.TrimSpace(r.URL.Query().Get(k)); v != "" {
			q.Set(k, v)
			f.Values[k] = v
		}
	}
	var out struct {
		Messages []messageJSON `json:"messages"`
		Next     string        `json:"next"`
	}
	res := u.api(r, s, http.MethodGet, "/messages?"+q.Encode(), nil, "")
	if res.OK() {
		_ = res.Decode(&out)
	} else {
		f.apply(res.Problem(), messageFilters)
	}
	d := map[string]any{"Messages": out.Messages, "Directions": []string{"inbound", "outbound", "internal"},
		"States": []string{"queued", "delivered", "failed"}}
	if out.Next != "" {
		q.Set("cursor", out.Next)
		q.Del("limit")
		d["Next"] = "/messages?" + q.Encode()
	}
	u.render(w, r, s, http.StatusOK, "messages", pageData{Title: "Messages", Form: f, Data: d})
}

// message is one message with each delivery and its attempts.
func (u *UI) message(w http.ResponseWriter, r *http.Request, s *session) {
	var m messageJSON
	if res, err := u.get(r, s, "/messages/"+url.PathEscape(r.PathValue("id")), &m); err != nil {
		u.fail(w, r, s, "Message", res, err)
		return
	}
	u.render(w, r, s, http.StatusOK, "message", pageData{Title: "Message", Nav: "messages", Data: m})
}
