package sipserver

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/registrar"
)

// SourceHeader carries the address a trusted front proxy (Kamailio's
// dispatcher, deploy/kamailio) received a request from, as IP:port. It is
// believed only from the addresses of Config.TrustedProxies; anyone else's
// is ignored, so a caller cannot pose as a trunk by writing it.
const SourceHeader = "X-Switchboard-Source"

// source is the address a request is accounted to: trunk classification,
// rate limits and lockouts. It is the packet's source, or, for a request
// relayed by a trusted proxy, the address the proxy says it came from.
func (s *Server) source(req *sip.Request) netip.Addr {
	src := registrar.SourceAddr(req)
	if !slices.Contains(s.cfg.TrustedProxies, src) {
		return src
	}
	h := req.GetHeader(SourceHeader)
	if h == nil {
		return src
	}
	v := strings.TrimSpace(h.Value())
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return a.Unmap()
	}
	return src
}
