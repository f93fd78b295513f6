package datastore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	gcaws "gocloud.dev/aws"

	"github.com/daggerflow/dagger/datastore/internal/bucket"
)

// s3Bucket keeps objects in an S3 bucket through the AWS SDK, with the
// SDK's transfer manager for uploads, which sends large objects in parts,
// several at a time.
type s3Bucket struct {
	name     string
	client   *s3.Client
	uploads  *transfermanager.Client
	sse      tmtypes.ServerSideEncryption
	kmsKeyID string
}

// openS3 opens the bucket of the s3:// URL u. Its parameters are those of
// gocloud.dev's s3blob, which earlier versions of dagger opened S3
// through, so that URLs keep their meaning: the S3 options here, the
// SDK's configuration through gocloud.dev/aws, which reads it as s3blob
// did (and refuses unknown parameters).
func openS3(ctx context.Context, u *url.URL) (bucket.Bucket, error) {
	q := u.Query()
	take := func(name string) (string, bool) {
		v, ok := q.Get(name), q.Has(name)
		q.Del(name)
		return v, ok
	}
	b := &s3Bucket{name: u.Host}
	if v, ok := take("ssetype"); ok {
		values := s3types.ServerSideEncryptionAes256.Values()
		for _, t := range values {
			if strings.EqualFold(string(t), v) {
				b.sse = tmtypes.ServerSideEncryption(t)
			}
		}
		if b.sse == "" {
			return nil, fmt.Errorf("invalid value for ssetype: %q: want one of %v", v, values)
		}
	}
	b.kmsKeyID, _ = take("kmskeyid")
	var opts []func(*s3.Options)
	for _, p := range []struct {
		name string
		set  func(*s3.Options, bool)
	}{
		{"accelerate", func(o *s3.Options, v bool) { o.UseAccelerate = v }},
		{"disable_https", func(o *s3.Options, v bool) { o.EndpointOptions.DisableHTTPS = v }},
		{"use_path_style", func(o *s3.Options, v bool) { o.UsePathStyle = v }},
		{"s3ForcePathStyle", func(o *s3.Options, v bool) { o.UsePathStyle = v }}, // use_path_style's older name
	} {
		s, ok := take(p.name)
		if !ok {
			continue
		}
		v, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("invalid value for %s: %q: want true or false", p.name, s)
		}
		opts = append(opts, func(o *s3.Options) { p.set(o, v) })
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	b.client = s3.NewFromConfig(cfg, opts...)
	b.uploads = transfermanager.New(b.client, func(o *transfermanager.Options) {
		// The transfer manager does not take this from the client.
		o.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	})
	return b, nil
}

func (b *s3Bucket) Size(ctx context.Context, key string) (int64, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.name, Key: &key})
	if err != nil {
		return 0, err
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (b *s3Bucket) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	in := &transfermanager.UploadObjectInput{
		Bucket:        &b.name,
		Key:           &key,
		Body:          r,
		ContentLength: &size,
		ContentType:   aws.String(bucket.ContentType),
	}
	if b.sse != "" {
		in.ServerSideEncryption = b.sse
	}
	if b.kmsKeyID != "" {
		in.SSEKMSKeyID = &b.kmsKeyID
	}
	_, err := b.uploads.UploadObject(ctx, in)
	return err
}

func (b *s3Bucket) NewReader(ctx context.Context, key string) (bucket.Reader, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.name, Key: &key})
	if err != nil {
		return nil, err
	}
	return sizedReader{out.Body, aws.ToInt64(out.ContentLength)}, nil
}

// Code classifies err by S3's error code, else by the HTTP status of the
// response, as a HEAD request's errors have no body to carry a code.
func (b *s3Bucket) Code(err error) bucket.Code {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchBucket":
			return bucket.NotFound
		case "AccessDenied", "Forbidden":
			return bucket.PermissionDenied
		}
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		switch resp.HTTPStatusCode() {
		case http.StatusNotFound:
			return bucket.NotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return bucket.PermissionDenied
		}
	}
	return bucket.Unknown
}

func (b *s3Bucket) Close() error {
	return nil
}

// sizedReader is a reader of an object of known size.
type sizedReader struct {
	io.ReadCloser
	size int64
}

func (r sizedReader) Size() int64 {
	return r.size
}
