package datastore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/daggerflow/dagger/datastore/internal/bucket"
	"github.com/daggerflow/dagger/store"
)

// ErrUnavailable is wrapped by the errors of operations that failed
// because of the datastore rather than the blob asked for: the service
// could not be reached (connection refused, DNS, timeout, connection
// lost), refused the credentials or found none, has no such bucket, or
// failed or throttled on its side. Such an error may go away by itself or
// by fixing the platform, without changing the flow, so a task that meets
// one fails with a retryable error.
var ErrUnavailable = errors.New("datastore unavailable")

// errNoBlob is the error of reading an absent blob. It reads better than
// fs.ErrNotExist's "file does not exist" when the blob is an object.
type errNoBlob struct{}

func (errNoBlob) Error() string        { return "no such blob" }
func (errNoBlob) Is(target error) bool { return target == fs.ErrNotExist }

// fail returns the error of operation op on the object key that failed
// with err.
//
// The error keeps err's message, without secrets, but wraps only what
// callers act on (ErrUnavailable, fs.ErrNotExist or the context's error),
// not err itself: clients' errors hold requests and responses that may
// quote credentials in ways no scrubbing of messages foresees.
func (d *Datastore) fail(ctx context.Context, op, key string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("datastore %s: %s: %w", d, op, ctxErr)
	}
	if hint := d.unavailable(err); hint != "" {
		return fmt.Errorf("datastore %s: %s: %w: %s; %s", d, op, ErrUnavailable, scrub(err.Error()), hint)
	}
	if d.bucket.Code(err) == bucket.NotFound {
		return fmt.Errorf("datastore %s: %s: %w (object %s)", d, op, errNoBlob{}, key)
	}
	return fmt.Errorf("datastore %s: %s: %s", d, op, scrub(err.Error()))
}

// corrupt returns the error of operation op finding that the object key
// has content hash got.
func (d *Datastore) corrupt(op, key string, got store.Hash) error {
	return fmt.Errorf("datastore %s: %s: %w: object %s has content hash %s", d, op, store.ErrCorrupt, key, got)
}

// unavailable returns what to check if err means that the datastore is
// unavailable, or "" if it does not.
func (d *Datastore) unavailable(err error) string {
	code := d.bucket.Code(err)
	switch status := httpStatus(err); {
	case isNetwork(err):
		return "check that the endpoint is reachable from here (address, DNS, proxy, firewall) and that the service is up"
	case isNoBucket(err):
		return "check that the bucket exists"
	case status == 401, status == 403, code == bucket.PermissionDenied, isNoCredentials(err):
		return "check the credentials in the environment (" + credentialVars(d.name) + ") and that they grant reading, writing and, for s3, listing (s3:ListBucket, without which S3 answers 403 for absent objects) the bucket"
	case errors.Is(err, fs.ErrPermission):
		return "check the permissions of " + d.dir
	case status == 408, status == 429, status >= 500, code == bucket.Unavailable:
		return "check the health and load of the service, which failed or throttled the request"
	}
	return ""
}

// isNetwork reports whether err says that the service could not be
// reached, or the connection to it was lost or timed out.
func isNetwork(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var netErr net.Error // also a syscall.Errno, such as ENOENT, hence the Timeout test
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.As(err, &netErr) && netErr.Timeout() ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

// httpStatus returns the HTTP status code of the response that err
// reports, or 0. Only the AWS SDK's errors say it by a method; the Google
// and Azure clients' errors are classified by their bucket's Code, so
// that this package need not link those clients in (see package gcs).
func httpStatus(err error) int {
	var aws interface{ HTTPStatusCode() int } // aws-sdk-go-v2 and smithy-go
	if errors.As(err, &aws) {
		return aws.HTTPStatusCode()
	}
	return 0
}

// isNoBucket reports whether err says that the bucket does not exist,
// which clients report as the absence of the object. The Google and Azure
// clients say so in their messages.
func isNoBucket(err error) bool {
	var aws interface{ ErrorCode() string } // smithy-go's APIError
	if errors.As(err, &aws) {
		return aws.ErrorCode() == "NoSuchBucket"
	}
	msg := err.Error()
	return strings.Contains(msg, "bucket doesn't exist") || strings.Contains(msg, "ContainerNotFound")
}

// isNoCredentials reports whether err says that the client found no
// credentials. The AWS SDK reports this only in words.
func isNoCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to retrieve credentials") ||
		strings.Contains(msg, "failed to refresh cached credentials") ||
		strings.Contains(msg, "could not find default credentials")
}

// credentialVars names the environment variables that hold the
// credentials of the datastore named.
func credentialVars(name string) string {
	scheme, _, _ := strings.Cut(name, ":")
	switch scheme {
	case "s3":
		return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with the shared config files, or the role of the machine"
	case "gs":
		return "GOOGLE_APPLICATION_CREDENTIALS, or the default credentials of gcloud or of the machine"
	case "azblob":
		return "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING, or Azure AD variables such as AZURE_CLIENT_ID"
	}
	return "none are used"
}

// scrub returns s with the values of environment variables whose names look
// secret replaced, in case a client's message quotes one.
func scrub(s string) string {
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		// Shorter values would match innocent text.
		if len(value) >= 8 && looksSecret(name) {
			s = strings.ReplaceAll(s, value, "REDACTED")
		}
	}
	return s
}

// looksSecret reports whether a variable or parameter named name may hold
// a secret.
func looksSecret(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"secret", "token", "password", "passwd", "credential", "signature", "sig", "key", "connection_string", "connectionstring"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
