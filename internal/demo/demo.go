// Package demo places the demo's sample calls: simulated phones (a carrier
// delivering calls, the PSTN behind the trunk, and the users' phones) call
// a real Switchboard server over SIP on loopback, and each call is printed
// with who rang, who answered and what the server recorded.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/store"
	"github.com/switchboard/switchboard/internal/testphone"
)

// Loopback addresses of the simulated world: users' phones on 127.0.0.1,
// the carrier that delivers calls on CarrierIP, the PSTN behind the trunk
// on PSTNIP.
var (
	CarrierIP = netip.MustParseAddr("127.0.0.2")
	PSTNIP    = netip.MustParseAddr("127.0.0.3")
)

// Records reads back what the server recorded.
type Records interface {
	ListCalls(ctx context.Context, f store.CallFilter) ([]store.CallRecord, string, error)
}

// World is the set of simulated phones.
type World struct {
	Carrier *testphone.Phone
	PSTN    *testphone.Phone
	Users   map[string]*testphone.Phone
	doc     *config.Document
}

// NewWorld starts the phones and points doc's default trunk at the PSTN
// phone, accepting calls from the carrier phone only.
func NewWorld(ctx context.Context, doc *config.Document) (*World, error) {
	w := &World{Users: map[string]*testphone.Phone{}, doc: doc}
	var err error
	if w.Carrier, err = testphone.New(ctx, testphone.Config{Name: "carrier", User: "carrier", IP: CarrierIP}); err != nil {
		return nil, err
	}
	if w.PSTN, err = testphone.New(ctx, testphone.Config{Name: "pstn", User: "pstn", IP: PSTNIP}); err != nil {
		w.Close()
		return nil, err
	}
	name := doc.Defaults.Trunk
	tr := doc.Trunks[name]
	tr.Address = "sip:" + w.PSTN.Addr().String()
	tr.InboundFrom = []string{CarrierIP.String() + "/32"}
	doc.Trunks[name] = tr
	return w, nil
}

// Close stops every phone.
func (w *World) Close() {
	for _, p := range append([]*testphone.Phone{w.Carrier, w.PSTN}, mapValues(w.Users)...) {
		if p != nil {
			p.Close()
		}
	}
}

func mapValues(m map[string]*testphone.Phone) []*testphone.Phone {
	out := make([]*testphone.Phone, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// Register starts and registers a phone for every user of the account.
func (w *World) Register(ctx context.Context, server string) error {
	domain := w.doc.Domain
	if domain == "" {
		domain = w.doc.Account
	}
	for name, u := range w.doc.Users {
		p, err := testphone.New(ctx, testphone.Config{Name: name, User: name, Password: u.Password, Domain: domain, Registrar: server})
		if err != nil {
			return err
		}
		w.Users[name] = p
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		code, err := p.Register(rctx, time.Hour)
		cancel()
		if err != nil || code != 200 {
			return fmt.Errorf("register %s: %d %v", name, code, err)
		}
	}
	return nil
}

// Call is one sample call: who calls which number, and how each phone
// behaves for it.
type Call struct {
	What     string
	From     string
	Name     string
	Number   string
	Behavior map[string]testphone.Behavior // by user name, or "pstn"
	Keys     string                        // DTMF the caller sends once answered (an IVR)
	// PickupBy names a user who then dials Orbit to pick the call up (park).
	PickupBy, Orbit string
}

// Calls are the demo's sample calls for the sample account.
var Calls = []Call{
	{What: "sequential group, first member busy", From: "+442071234567", Name: "Sam Jones", Number: "+34910000000",
		Behavior: map[string]testphone.Behavior{"alice": {Mode: testphone.Busy}, "bob": {AnswerAfter: 300 * time.Millisecond}}},
	{What: "rotating group, call 1", From: "+34911222333", Number: "+34910000001"},
	{What: "rotating group, call 2", From: "+34911222333", Number: "+34910000001"},
	{What: "rotating group, call 3", From: "+34911222333", Number: "+34910000001"},
	{What: "multi-ring group in waves of 2", From: "+34911222333", Number: "+34910000002",
		Behavior: map[string]testphone.Behavior{"alice": {Mode: testphone.Busy}, "bob": {Mode: testphone.Busy},
			"carol": {Mode: testphone.NeverAnswer}, "dave": {AnswerAfter: 500 * time.Millisecond}}},
	{What: "withheld caller (rule: reject-503)", From: "anonymous", Number: "+34910000000"},
	{What: "US toll-free caller (rule 888*: reject-busy)", From: "+18885551234", Number: "+12125550100"},
	{What: "number forwarded by its own switch", From: "+34911222333", Number: "+34910000003"},
	{What: "number forwarded by its location", From: "+442079460000", Number: "+442071230000"},
	{What: "unknown number", From: "+34911222333", Number: "+34999999999"},
	{What: "IVR: the caller presses 2 (support)", From: "+34600111222", Number: "+34910000000", Keys: "2"},
	{What: "IVR: 3 parks the call; bob dials orbit 701", From: "+34600111333", Number: "+34910000000", Keys: "3",
		PickupBy: "bob", Orbit: "701"},
}

// Run places the calls through the server at addr and prints one line each.
func (w *World) Run(ctx context.Context, out io.Writer, addr string, recs Records, calls []Call) error {
	records := 0 // written so far: one per call, and one per pickup
	for i, c := range calls {
		for name, p := range w.Users {
			p.SetBehavior(c.Behavior[name])
		}
		w.PSTN.SetBehavior(c.Behavior["pstn"])
		status, err := w.place(ctx, addr, c)
		if err != nil {
			return fmt.Errorf("call %d: %w", i+1, err)
		}
		rang := w.rang()
		records++
		if c.PickupBy != "" {
			records++
		}
		rec, err := lastCall(ctx, recs, w.doc.Account, records, c.From)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%2d. %-44s %s -> %s: %s", i+1, c.What, c.From, c.Number, rec.Outcome)
		if status >= 300 {
			line += fmt.Sprintf(" (SIP %d)", status)
		}
		if len(rang) > 0 {
			line += "; rang " + strings.Join(rang, ", ")
		}
		if rec.AnsweredBy != "" {
			line += "; answered by " + rec.AnsweredBy
		}
		fmt.Fprintln(out, line)
	}
	return nil
}

// place makes one call, keeps it up briefly when answered and hangs up; it
// returns the final status the caller saw.
func (w *World) place(ctx context.Context, addr string, c Call) (int, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	call, err := w.Carrier.Dial(dctx, "sip:"+c.Number+"@"+addr, testphone.DialOptions{FromUser: c.From, FromDisplay: c.Name})
	if code := testphone.StatusCode(err); code != 0 {
		return code, nil
	}
	if err != nil {
		return 0, err
	}
	if c.Keys != "" {
		if err := call.SendDTMF(dctx, c.Keys); err != nil {
			return 0, err
		}
		time.Sleep(3 * time.Second) // the IVR's choice rings, hears its announcement, is bridged
	}
	if c.PickupBy != "" {
		p, ok := w.Users[c.PickupBy]
		if !ok {
			return 0, fmt.Errorf("no phone for user %q", c.PickupBy)
		}
		pick, err := p.Dial(dctx, "sip:"+c.Orbit+"@"+addr, testphone.DialOptions{})
		if err != nil {
			return 0, fmt.Errorf("%s dials orbit %s: %w", c.PickupBy, c.Orbit, err)
		}
		defer waitEnd(pick) // ended by Switchboard when the caller hangs up
	}
	time.Sleep(300 * time.Millisecond)
	if err := call.Hangup(dctx); err != nil {
		return 0, err
	}
	return 200, nil
}

// rang lists the phones that received an INVITE for the last call, with
// what each did.
func (w *World) rang() []string {
	var out []string
	for _, p := range append(mapValues(w.Users), w.PSTN) {
		for {
			select {
			case c := <-p.Incoming():
				waitEnd(c)
				what := "answered"
				switch {
				case c.EndReason() == testphone.EndCanceled:
					what = "cancelled"
				case c.Status() >= 300:
					what = fmt.Sprint(c.Status())
				}
				name := p.Config().Name
				if name == "pstn" {
					name = "pstn " + c.Invite().Recipient.User
				}
				out = append(out, name+" ("+what+")")
				continue
			default:
			}
			break
		}
	}
	return out
}

func waitEnd(c *testphone.Call) {
	select {
	case <-c.Ended():
	case <-time.After(3 * time.Second):
	}
}

// lastCall waits until the account has n call records and returns the
// newest one of caller (or the newest of all).
func lastCall(ctx context.Context, recs Records, account string, n int, caller string) (store.CallRecord, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _, err := recs.ListCalls(ctx, store.CallFilter{Account: account, Ended: true, Limit: 1000})
		if err != nil {
			return store.CallRecord{}, err
		}
		if len(got) >= n {
			for _, r := range got { // newest first; a park pickup writes its own
				if r.Caller == caller {
					return r, nil
				}
			}
			return got[0], nil
		}
		if time.Now().After(deadline) {
			return store.CallRecord{}, errors.New("the server wrote no call record")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
