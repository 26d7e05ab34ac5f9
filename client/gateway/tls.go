package gateway

import (
	"crypto/tls"
	"fmt"
	"log"
	"sync"
)

// certStore holds the configured certificates, by name.
type certStore struct {
	specs []Certificate
	log   *log.Logger

	// mu guards certs, first and warned.
	mu     sync.RWMutex
	certs  map[string]*tls.Certificate
	first  *tls.Certificate
	warned map[string]bool
}

func loadCertificates(specs []Certificate, logger *log.Logger) (*certStore, error) {
	s := &certStore{specs: specs, log: logger, warned: map[string]bool{}}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads every certificate's files again; on an error the ones in
// use stay.
func (s *certStore) Reload() error {
	certs := map[string]*tls.Certificate{}
	var first *tls.Certificate
	for _, c := range s.specs {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return fmt.Errorf("gateway certificate %q: load cert_file %s and key_file %s: %w", c.Name, c.CertFile, c.KeyFile, err)
		}
		if _, dup := certs[c.Name]; dup {
			return fmt.Errorf("gateway certificate %q is declared twice", c.Name)
		}
		certs[c.Name] = &pair
		if first == nil {
			first = &pair
		}
	}
	s.mu.Lock()
	s.certs, s.first = certs, first
	s.mu.Unlock()
	return nil
}

func (s *certStore) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.certs)
}

func (s *certStore) has(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.certs[name] != nil
}

func (s *certStore) get(name string) *tls.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.certs[name]; c != nil {
		return c
	}
	return s.first
}

// warnUnknown logs, once per name, a route naming a certificate the
// configuration lacks.
func (s *certStore) warnUnknown(name, namespace, service string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warned[name] {
		return
	}
	s.warned[name] = true
	s.log.Printf("[WARN] gateway: a route of service %q in namespace %q names certificate %q, which this gateway's configuration lacks (gateway { certificate %q { cert_file key_file } }); serving the default certificate",
		service, namespace, name, name)
}

// getCertificate picks the certificate for the client's SNI: the one a
// route of that host (exact, then wildcard) names, else the first
// configured.
func (g *Gateway) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := g.certs.get(g.table.Load().certFor(hello.ServerName))
	if c == nil {
		return nil, fmt.Errorf("gateway: no certificate configured")
	}
	return c, nil
}

// ReloadCertificates reads the certificate files again (SIGHUP); on an
// error the certificates in use stay.
func (g *Gateway) ReloadCertificates() error { return g.certs.Reload() }
