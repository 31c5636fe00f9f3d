package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACME configures automatic certificates (RFC 8555) for the hosts in the
// route table. Only exact hosts get certificates: a wildcard route would
// let any client make the router ask for certificates of names nobody
// uses, so wildcard hosts need Config.GetCertificate instead.
type ACME struct {
	// Cache stores account keys and certificates, so that a restarted
	// router does not ask again (ACME servers rate-limit). Required; use
	// autocert.DirCache for a directory.
	Cache autocert.Cache

	// DirectoryURL is the ACME server's directory. If empty, Let's
	// Encrypt's production directory.
	DirectoryURL string

	// Email is the account's contact address. If empty, none.
	Email string

	// HTTPClient talks to the ACME server (e.g. one that trusts a test
	// server's root). If nil, http.DefaultClient.
	HTTPClient *http.Client

	// RenewBefore is how long before expiry a certificate is renewed. If
	// zero, 30 days.
	RenewBefore time.Duration

	// AcceptTOS is asked to accept the ACME server's terms of service. If
	// nil, they are accepted.
	AcceptTOS func(tosURL string) bool
}

func (a *ACME) validate() error {
	if a.Cache == nil {
		return fmt.Errorf("%w: ACME.Cache is nil", ErrInvalidConfig)
	}
	return nil
}

type acmeState struct {
	mgr *autocert.Manager
}

func (rt *Router) initACME() {
	a := rt.cfg.ACME
	m := &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       a.Cache,
		HostPolicy:  rt.hostPolicy,
		RenewBefore: a.RenewBefore,
		Email:       a.Email,
		Client:      &acme.Client{DirectoryURL: a.DirectoryURL, HTTPClient: a.HTTPClient},
	}
	if a.AcceptTOS != nil {
		m.Prompt = a.AcceptTOS
	}
	if a.DirectoryURL == "" {
		m.Client.DirectoryURL = acme.LetsEncryptURL
	}
	rt.acme.mgr = m
}

// hostPolicy allows certificates only for exact hosts in the route table.
func (rt *Router) hostPolicy(_ context.Context, host string) error {
	if rt.table.Load().exact[normalizeHost(host)] != nil {
		return nil
	}
	return fmt.Errorf("%w: %s is not routed", ErrInvalidHost, host)
}

// tlsConfig is the TLS configuration of ServeTLS; nil without a
// certificate source.
func (rt *Router) tlsConfig() *tls.Config {
	if rt.acme.mgr != nil {
		tc := rt.acme.mgr.TLSConfig()
		tc.MinVersion = tls.VersionTLS12
		return tc
	}
	if rt.cfg.GetCertificate != nil {
		return &tls.Config{
			GetCertificate: rt.cfg.GetCertificate,
			NextProtos:     []string{"h2", "http/1.1"},
			MinVersion:     tls.VersionTLS12,
		}
	}
	return nil
}
