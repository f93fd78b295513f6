// Package bucket is what package datastore needs of a service that keeps
// objects: a few calls and a classification of their errors. Package
// datastore implements it for S3 and for directories; the packages that
// link in Google Cloud Storage and Azure Blob Storage (datastore/gcs,
// datastore/azure) register theirs, so that a program pays for those
// clients only when it imports them.
package bucket

import (
	"context"
	"io"
	"net/url"
	"sync"
)

// A Bucket keeps objects by key. Its methods are safe for concurrent use.
type Bucket interface {
	// Size returns the size of the object key.
	Size(ctx context.Context, key string) (int64, error)

	// Upload stores the size bytes read from r as the object key,
	// whole: a reader of key sees either the old object, if any, or all
	// of the new one.
	Upload(ctx context.Context, key string, r io.Reader, size int64) error

	// NewReader returns a reader of the object key.
	NewReader(ctx context.Context, key string) (Reader, error)

	// Code classifies an error returned by the other methods.
	Code(err error) Code

	Close() error
}

// ContentType is the type of every object Upload stores: blobs are
// bytes, and the type is set so that no client sniffs the content to
// guess another.
const ContentType = "application/octet-stream"

// A Reader reads an object.
type Reader interface {
	io.ReadCloser
	// Size returns the size of the whole object.
	Size() int64
}

// A Code says what an error of a Bucket means, as far as package
// datastore acts on it.
type Code int

const (
	Unknown Code = iota
	// NotFound: no such object, or no such bucket.
	NotFound
	// PermissionDenied: the credentials do not grant the request.
	PermissionDenied
	// Unavailable: the service failed, throttled the request or did not
	// answer in time.
	Unavailable
)

// An Opener opens the bucket named by a URL of its scheme, whose path is
// empty: the prefix of a datastore is package datastore's business. It
// rejects parameters it does not know, and does not contact the service.
type Opener func(ctx context.Context, u *url.URL) (Bucket, error)

// openers holds the Openers that packages registered, by scheme. It is
// written only by the init functions of those packages, as
// database/sql's drivers are registered: a program links a client in by
// importing its package, which is the point.
var openers sync.Map // string -> Opener

// Register makes open the Opener of URLs of the given scheme. It panics if
// the scheme has one, as two linked-in clients for one scheme are a
// mistake in the program.
func Register(scheme string, open Opener) {
	if _, dup := openers.LoadOrStore(scheme, open); dup {
		panic("datastore: two clients registered for scheme " + scheme)
	}
}

// Lookup returns the Opener registered for scheme, or nil.
func Lookup(scheme string) Opener {
	if open, ok := openers.Load(scheme); ok {
		return open.(Opener)
	}
	return nil
}
