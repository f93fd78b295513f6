// Package datastore keeps content-addressed blobs (artifacts, logs,
// foreach manifests, code packages) in object storage chosen by URL, for
// runs whose tasks leave the machine. A *Datastore implements store.Blobs,
// as the local store does, with the same hashes, so that a task runner
// ("dagger step") in a subprocess or a pod reads and writes a run's blobs
// without the driver's metadata database.
//
// # URLs
//
//	s3://BUCKET/PREFIX?PARAMS        Amazon S3 and S3-compatible servers
//	gs://BUCKET/PREFIX?PARAMS        Google Cloud Storage
//	azblob://CONTAINER/PREFIX?PARAMS Azure Blob Storage
//	file:///ABSOLUTE/DIR?PARAMS      a directory, such as a shared mount
//
// S3 is reached through the AWS SDK, and directories directly. Google
// Cloud Storage and Azure Blob Storage go through gocloud.dev/blob's
// gcsblob and azureblob drivers, in packages datastore/gcs and
// datastore/azure, which a program imports to link them in; their
// parameters are those drivers' (gocloud.dev v0.47). The path of a URL
// is the prefix of the datastore. Unknown parameters are refused.
// Credentials are never part of the URL: a URL with user information is
// refused.
//
// For s3, the parameters are those that gocloud.dev's s3blob took, which
// dagger used before, so that URLs keep their meaning: region, profile (a
// shared config profile),
// endpoint (a URL), use_path_style=true (or its older name
// s3ForcePathStyle), disable_https, hostname_immutable, anonymous=true,
// role (an IAM role ARN to assume through STS), dualstack, fips,
// accelerate, ssetype and kmskeyid (server-side encryption),
// rate_limiter_capacity, request_checksum_calculation and
// response_checksum_validation; awssdk is accepted and ignored (v0.47 has
// only the AWS SDK v2). Everything else follows the AWS SDK's conventions,
// as the aws command does:
//
//   - credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
//     AWS_SESSION_TOKEN; else AWS_PROFILE (or the profile parameter) in
//     the shared files ~/.aws/config and ~/.aws/credentials
//     (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), including SSO and
//     assumed roles; else web identity (AWS_WEB_IDENTITY_TOKEN_FILE with
//     AWS_ROLE_ARN, as EKS sets for service accounts), container
//     credentials (ECS, EKS Pod Identity) and the EC2 instance role;
//   - region: the region parameter, else AWS_REGION or AWS_DEFAULT_REGION,
//     else the profile's;
//   - endpoint: the endpoint parameter, else AWS_ENDPOINT_URL_S3 or
//     AWS_ENDPOINT_URL.
//
// An S3-compatible server such as MinIO or Ceph's RGW is named with its
// endpoint and path-style addressing (https://HOST/BUCKET/KEY, as such
// servers rarely have a DNS name per bucket):
//
//	AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
//	s3://BUCKET/PREFIX?endpoint=http://minio.example:9000&use_path_style=true
//
// Two departures from the SDK's defaults: AWS_MAX_ATTEMPTS and
// AWS_RETRY_MODE are not honoured, as gocloud.dev/aws, which reads the
// parameters, installs its own retryer
// (standard mode, 3 attempts with exponential back-off, so an unreachable
// endpoint is reported after a few seconds); and
// response_checksum_validation defaults to when_required, because every
// read is verified by its SHA-256 anyway, while the SDK logs a warning for
// every response that lacks its checksum, as MinIO's and Ceph's do.
// Uploads carry the SDK's CRC32 checksum; an S3-compatible server that
// rejects it needs request_checksum_calculation=when_required.
//
// For gs, credentials are Application Default Credentials
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's, or the machine's); for
// azblob, AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY,
// AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING, else Azure
// AD (AZURE_CLIENT_ID and so on). See the drivers' documentation for their
// few parameters.
//
// For file, the directory must exist, and the URL has no parameters but
// metadata=skip and no_tmp_dir=true, which older daggers wrote (they
// reached folders through gocloud.dev's fileblob) and which are what this
// package does.
// Blobs are written to a temporary file beside their final place and
// renamed, so that readers see them whole (beside it rather than in
// $TMPDIR, which may be another file system, where renaming fails).
//
// # Layout and hashing
//
// A blob's key is
//
//	PREFIX/blobs/sha256/ab/abcdef0123...
//
// after the 64 lowercase hexadecimal digits of the SHA-256 of its content,
// which store.Hash writes "sha256:abcdef0123...": the same function and
// form as the local store, so hashes move between the two unchanged. The
// full digest names the object, so that a key is recognised on its own;
// the first two digits make a level of 256 "directories", which keeps
// directories of file datastores small and spreads keys across the
// partitions of object stores, which scale request rates by key prefix.
// The algorithm is part of the key so that another could be added beside
// it, and blobs/ leaves room beside it for objects of other kinds.
//
// Blobs are immutable, so Put first asks whether the object exists (a
// HEAD request) and uploads only if it does not, or if it has the wrong
// size, which only damage can cause as objects are written whole: the
// same code package or output is uploaded once per datastore however
// many runs store it. Concurrent writers of the same blob upload the same
// bytes, so the last one wins harmlessly.
//
// Every read is verified: Get hashes the content as it arrives and Open's
// reader hashes what it returns; a mismatch is reported as an error
// wrapping store.ErrCorrupt, by Get and in place of io.EOF by the reader.
// Such damage is not repaired by reading; Put of the right content
// repairs a blob of the wrong size only.
//
// # Streaming
//
// PutReader reads up to 4 MiB into memory and, if the content ends there,
// stores it as Put does. A larger blob is copied to a temporary file in
// os.TempDir ($TMPDIR) while being hashed, then checked for and uploaded
// from that file, which the clients send in parts (S3: multipart uploads
// of 8 MiB parts, 5 at a time, larger parts for blobs over 80 GiB, as the
// size is known), and removed. The content's address is only
// known at the end, and spooling it locally is what lets PutReader skip
// uploading present content like Put; the alternative, uploading to a
// temporary object and copying it into place, would upload every time,
// leave debris in the bucket when a process is killed, and meet the limits
// of server-side copies (5 GiB for one S3 CopyObject). Its cost is local
// disk space for the blobs in flight, which a pod needs as ephemeral
// storage.
//
// Open streams the download and verifies the hash at the end. Get reads
// the whole blob into memory, as its contract requires.
//
// # Durability
//
// Object stores have made a blob durable by the time its upload returns,
// so Sync does nothing for them. In a file datastore, Sync flushes the
// files of the blobs stored since the previous Sync, and their
// directories, at once.
//
// # Errors
//
// Errors name the datastore by its String form, which is its URL with the
// values of secret-looking parameters replaced, and never quote the
// credentials: the values of secret-looking environment variables are
// removed from the clients' messages, and the clients' errors themselves,
// which hold requests and responses, are not wrapped.
//
// An absent blob is an error wrapping fs.ErrNotExist. An error wrapping
// ErrUnavailable means that the datastore could not serve the request,
// whatever the blob: the service is unreachable (connection refused, DNS,
// timeout, connection lost), refused the credentials or found none, lacks
// the bucket, or failed or throttled on its side. Its message says what to
// check. Such failures may pass, or be fixed, without any change to the
// flow, so a task runner that meets one fails with a retryable error. Note
// that S3 answers 403, hence ErrUnavailable, for an absent object when
// the credentials may not list the bucket (s3:ListBucket): grant it.
//
// Open checks the URL and sets up the client without contacting the
// service, so a task that does not touch its datastore does not pay a
// round trip; the first operation reports an unreachable service.
package datastore
