package registrar

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Users resolves the users of the compiled configuration. The caller builds
// it from the accounts' users; the registrar never reads the configuration.
type Users interface {
	// LookupUser finds a user by SIP domain (realm) and username (the user
	// name or the extension number); ok=false if unknown.
	LookupUser(domain, username string) (account, user, password string, ok bool)
}

// Contact is one registered binding of a user's device. It has the fields of
// store.Contact in the same order, so a plain type conversion adapts one to
// the other.
type Contact struct {
	Account string
	User    string
	// URI is the Contact URI as the device sent it; it is the Request-URI of
	// requests sent to the device.
	URI string
	// Source is the host:port the REGISTER came from. Requests to a
	// device behind NAT or on a connection are sent there (like Kamailio's
	// fix_nated_register/received); see Destination.
	Source string
	// Transport is the transport the REGISTER arrived on: UDP, TCP, TLS, WS, WSS.
	Transport string
	// UserAgent is the device's User-Agent header, for display.
	UserAgent string
	// InstanceID is the +sip.instance Contact parameter (RFC 5626), without
	// quotes or angle brackets; a new binding with the same instance replaces
	// the old one (a rebooted phone behind NAT comes back on a new port).
	InstanceID string
	// Expires is when the binding lapses.
	Expires time.Time
	// Path is the REGISTER's Path (RFC 3327), in order: a proxy (Kamailio)
	// that relayed it and wants the requests to the device back.
	Path []string
	// NAT is set when the REGISTER showed the device behind NAT
	// (detectNAT): requests go to Source.
	NAT bool
	// Client is the IP address the REGISTER is accounted to, as the
	// Authenticator's Source gives it (behind a trusted proxy, the address
	// the proxy names): only such an address may call as a user.
	Client string
}

// NewRequest builds a request of the given method to the device: the
// Request-URI is the registered Contact URI, the destination is
// Destination, the route its Path and the transport the one it registered
// over. The caller adds the other headers (sipgo's client fills in To,
// From, Call-ID, CSeq, Via).
func (c Contact) NewRequest(method sip.RequestMethod) (*sip.Request, error) {
	var uri sip.Uri
	if err := sip.ParseUri(c.URI, &uri); err != nil {
		return nil, fmt.Errorf("registrar: contact uri %q: %w", c.URI, err)
	}
	req := sip.NewRequest(method, uri)
	if d := c.Destination(); d != "" {
		req.SetDestination(d)
	}
	for _, hop := range c.Path {
		req.AppendHeader(sip.NewHeader("Route", hop))
	}
	if c.Transport != "" {
		req.SetTransport(strings.ToUpper(c.Transport))
	}
	return req, nil
}

// Contacts stores registrations. internal/store implements it for the shared
// database (through a small adapter); [MemContacts] is an in-memory one.
type Contacts interface {
	// PutContact inserts or replaces the binding (Account, User, URI).
	PutContact(ctx context.Context, c Contact) error
	// DeleteContact removes one binding; removing a missing one is not an error.
	DeleteContact(ctx context.Context, account, user, uri string) error
	// Contacts lists the bindings of a user that have not expired at now.
	Contacts(ctx context.Context, account, user string, now time.Time) ([]Contact, error)
}
