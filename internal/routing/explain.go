package routing

import "fmt"

// Explanation is a routing decision written out for people and scripts:
// `switchboard route` (text or --json, SPEC §6), the demo and the API's
// route endpoint. Its JSON field names are part of the contract.
type Explanation struct {
	Outcome        Outcome    `json:"outcome"`
	SIPStatus      int        `json:"sip_status,omitempty"`
	Number         string     `json:"number,omitempty"`
	Caller         string     `json:"caller"`
	Destination    string     `json:"destination,omitempty"`
	Attempts       [][]string `json:"attempts,omitempty"`
	CallerName     string     `json:"caller_name"`
	Tags           []string   `json:"tags"`
	RulesFired     []int      `json:"rules_fired"`
	Captcha        bool       `json:"captcha"`
	CaptchaPending bool       `json:"captcha_pending,omitempty"`
	Trace          []string   `json:"trace"`
}

// Explain routes req and adds the attempt plan of the destination.
// counter is asked for the rotation counter only when the destination is a
// rotating group (it may be nil: counter 0); `route` passes a function that
// reads the counter without advancing it, a real call one that advances it.
func Explain(s *Snapshot, req *Request, counter func(extension string) (uint64, error)) (*Explanation, error) {
	var d Decision
	s.Route(req, &d)
	ex := &Explanation{
		Outcome:        d.Outcome,
		SIPStatus:      d.SIPStatus,
		Number:         d.Number,
		Caller:         d.Caller,
		Destination:    d.Destination,
		CallerName:     d.CallerName,
		Tags:           append([]string{}, d.Tags...),
		RulesFired:     append([]int{}, d.RulesFired...),
		Captcha:        d.Captcha,
		CaptchaPending: d.CaptchaPending,
		Trace:          d.Trace(),
	}
	if d.Outcome != OutcomeRouted && d.Outcome != OutcomeForwarded {
		return ex, nil
	}
	var c uint64
	if counter != nil && s.IsRotating(d.Destination) {
		var err error
		if c, err = counter(d.Destination); err != nil {
			return nil, fmt.Errorf("rotation counter of %s: %w", d.Destination, err)
		}
	}
	p := s.Plan(d.Destination, req.Caller, c)
	ex.Attempts = p.Waves
	ex.Trace = append(ex.Trace, p.Notes...)
	return ex, nil
}
