package cli

import (
	"crypto/x509"
	"sync"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// useFallbackRoots makes Mozilla's roots, built in, those that a task
// runner trusts when the system has none, as in the runner image of a pod,
// which holds the dagger executable alone: without them, HTTPS to S3, GCS
// or Azure fails there. Parsing them costs about a millisecond, so only the
// step command pays it, not every command at start-up, as importing
// golang.org/x/crypto/x509roots/fallback would. x509.SetFallbackRoots may
// be called once in a process, hence the Once.
var useFallbackRoots = sync.OnceFunc(func() {
	defer func() {
		// A program that embeds dagger may have set them already, by
		// importing that package; its roots stay.
		_ = recover()
	}()
	pool := x509.NewCertPool()
	for c := range bundle.Roots() {
		cert, err := x509.ParseCertificate(c.Certificate)
		if err != nil {
			continue // the bundle's own tests parse every root
		}
		if c.Constraint == nil {
			pool.AddCert(cert)
		} else {
			pool.AddCertWithConstraint(cert, c.Constraint)
		}
	}
	x509.SetFallbackRoots(pool)
})
