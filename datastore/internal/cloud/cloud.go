// Package cloud offers the buckets of gocloud.dev/blob's drivers to
// package datastore, for the schemes whose clients only gocloud wraps
// here: Google Cloud Storage and Azure Blob Storage. It is apart because
// gocloud.dev/blob brings gRPC and OpenTelemetry, whose package
// initialisers would slow every dagger command.
package cloud

import (
	"context"
	"io"
	"net/url"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/daggerflow/dagger/datastore/internal/bucket"
)

// Register offers URLs of scheme to the gocloud driver registered for it,
// which the caller links in.
func Register(scheme string) {
	bucket.Register(scheme, open)
}

func open(ctx context.Context, u *url.URL) (bucket.Bucket, error) {
	b, err := blob.DefaultURLMux().OpenBucketURL(ctx, u)
	if err != nil {
		return nil, err
	}
	return cloudBucket{b}, nil
}

type cloudBucket struct {
	b *blob.Bucket
}

func (c cloudBucket) Size(ctx context.Context, key string) (int64, error) {
	attrs, err := c.b.Attributes(ctx, key)
	if err != nil {
		return 0, err
	}
	return attrs.Size, nil
}

func (c cloudBucket) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	return c.b.Upload(ctx, key, r, &blob.WriterOptions{ContentType: bucket.ContentType})
}

func (c cloudBucket) NewReader(ctx context.Context, key string) (bucket.Reader, error) {
	return c.b.NewReader(ctx, key, nil)
}

func (c cloudBucket) Code(err error) bucket.Code {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return bucket.NotFound
	case gcerrors.PermissionDenied:
		return bucket.PermissionDenied
	case gcerrors.ResourceExhausted, gcerrors.Internal, gcerrors.DeadlineExceeded:
		return bucket.Unavailable
	}
	return bucket.Unknown
}

func (c cloudBucket) Close() error {
	return c.b.Close()
}
