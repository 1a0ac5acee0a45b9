package sipserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// tlsHandshakeTimeout bounds a TLS client's handshake: a connection that
// never completes one is closed rather than held (a variable for tests).
var tlsHandshakeTimeout = 10 * time.Second

// ListenTLS binds a SIP over TLS listener on addr (RFC 3261 §26.2, port
// 5061 by convention) with cfg's certificate; Serve serves it beside UDP
// and TCP, with the same handlers, guard and registrar. Call it between
// Listen and Serve.
func (s *Server) ListenTLS(addr string, cfg *tls.Config) error {
	if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil) {
		return errors.New("sip tls: a certificate is required")
	}
	cfg = cfg.Clone()
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sip tls listen %s: %w", addr, err)
	}
	s.tls = &tlsListener{Listener: l, cfg: cfg, timeout: tlsHandshakeTimeout}
	return nil
}

// TLSAddr returns the bound SIP over TLS address, or nil without one.
func (s *Server) TLSAddr() net.Addr {
	if s.tls == nil {
		return nil
	}
	return s.tls.Addr()
}

// serveTLS starts serving the TLS listener, if there is one. Its end at
// Shutdown (the listener closed) is no error.
func (s *Server) serveTLS() {
	if s.tls == nil {
		return
	}
	go func() {
		// The wire screen (wire.go) reads the decrypted stream, as on TCP.
		err := s.srv.ServeTLS(screenListener(s.tls, s.log))
		if err != nil && !errors.Is(err, net.ErrClosed) {
			select {
			case s.errc <- fmt.Errorf("tls: %w", err):
			default:
			}
		}
	}()
	s.log.Info("sip listening", "tls", s.tls.Addr())
}

// closeTLS closes the TLS listener, if there is one; its connections go
// with the user agent.
func (s *Server) closeTLS() {
	if s.tls != nil {
		_ = s.tls.Close()
	}
}

// tlsListener accepts TLS connections, each handshaking on a goroutine of
// its own within timeout, so that a client that stalls cannot hold up the
// others.
type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(c, l.cfg)
	_ = c.SetDeadline(time.Now().Add(l.timeout))
	go func() {
		// sipgo's first Read waits for this handshake (tls.Conn serialises
		// them) and then reads without a deadline.
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return
		}
		_ = c.SetDeadline(time.Time{})
	}()
	return tc, nil
}
