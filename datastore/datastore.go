package datastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/daggerflow/dagger/datastore/internal/bucket"
	"github.com/daggerflow/dagger/store"
)

const (
	// spoolMin is the size from which PutReader spools a blob to a
	// temporary file rather than holding it in memory. Below it, the
	// blob costs less memory than the clients' own upload buffers (the
	// S3 transfer manager's are 5 parts of 8 MiB).
	spoolMin = 4 << 20

	// ioChunk is the size of the reads and writes of blob content that
	// this package makes itself.
	ioChunk = 1 << 20
)

// A Datastore is a content-addressed store of blobs in object storage or
// a directory, named by a URL. It implements store.Blobs.
//
// A Datastore is safe for concurrent use.
type Datastore struct {
	bucket bucket.Bucket
	prefix string // "" or ending with "/": the keys of blobs start with it
	url    string // the URL as given, which Open refuses if it holds credentials
	name   string // the URL without secret-looking values, for messages
	dir    string // for file:// datastores, the directory; else ""

	// For file:// datastores, the files written since the last Sync.
	mu      sync.Mutex
	pending map[string]bool
	syncErr error // the failure of an earlier Sync; see Sync
}

var _ store.Blobs = (*Datastore)(nil)

// Open opens the datastore named by rawURL, one of
//
//	s3://BUCKET/PREFIX?PARAMS
//	gs://BUCKET/PREFIX?PARAMS
//	azblob://CONTAINER/PREFIX?PARAMS
//	file:///ABSOLUTE/DIR?PARAMS
//
// Credentials come from the environment, never from the URL. See the package
// documentation for the parameters. Open does not contact the service, so
// an unreachable datastore or refused credentials are reported by the first
// operation.
func Open(ctx context.Context, rawURL string) (*Datastore, error) {
	u, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	d := &Datastore{url: rawURL, name: redact(u)}
	if u.Scheme == "file" {
		d.dir = fileDir(u)
		d.pending = make(map[string]bool)
		if info, err := os.Stat(d.dir); err != nil || !info.IsDir() {
			return nil, fmt.Errorf("datastore %s: %s is not a directory", d, d.dir)
		}
		d.bucket = dirBucket{d.dir}
		return d, nil
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		d.prefix = p + "/"
	}
	open := *u
	open.Path, open.RawPath = "", ""
	if u.Scheme == "s3" {
		if !u.Query().Has("response_checksum_validation") {
			// Every read is verified by its SHA-256, which makes the
			// SDK's own checksum redundant; and the SDK logs a warning
			// for each response that carries none, as MinIO's and
			// Ceph's do not.
			q := u.Query()
			q.Set("response_checksum_validation", "when_required")
			open.RawQuery = q.Encode()
		}
		d.bucket, err = openS3(ctx, &open)
	} else {
		d.bucket, err = bucket.Lookup(u.Scheme)(ctx, &open)
	}
	if err != nil {
		// The client's error may quote the URL it was given.
		msg := strings.ReplaceAll(err.Error(), open.String(), d.name)
		return nil, fmt.Errorf("datastore %s: %s", d, scrub(msg))
	}
	return d, nil
}

// Check reports what is wrong with rawURL as the URL of a datastore, as
// Open would, for checking a command line before any work. Like Open, it
// does not contact the service.
func Check(ctx context.Context, rawURL string) error {
	d, err := Open(ctx, rawURL)
	if err != nil {
		return err
	}
	return d.Close()
}

// parse parses and checks rawURL.
func parse(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// The error quotes the URL, which may hold a secret.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("datastore: invalid URL (not shown, in case it holds a secret): %v", err)
	}
	if err := checkURL(u); err != nil {
		return nil, fmt.Errorf("datastore %s: %w", redact(u), err)
	}
	return u, nil
}

// checkURL reports what is wrong with u, if anything, as a datastore URL.
func checkURL(u *url.URL) error {
	switch u.Scheme {
	case "s3", "gs", "azblob", "file":
	case "":
		return errors.New("missing scheme: want s3://, gs://, azblob:// or file:///")
	default:
		return fmt.Errorf("unknown scheme %q: want s3, gs, azblob or file", u.Scheme)
	}
	if (u.Scheme == "gs" || u.Scheme == "azblob") && bucket.Lookup(u.Scheme) == nil {
		// The Google and Azure clients triple the start-up time of every
		// dagger command, so they are linked in only on request.
		pkg := map[string]string{"gs": "gcs", "azblob": "azure"}[u.Scheme]
		return fmt.Errorf("%s:// datastores are not linked into this program: build dagger with -tags %s, or import github.com/daggerflow/dagger/datastore/%s", u.Scheme, pkg, pkg)
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not supported: set them in the environment")
	}
	if u.Fragment != "" {
		return errors.New("a datastore URL has no fragment (#...)")
	}
	q := u.Query()
	for _, p := range []string{"prefix", "key"} {
		if q.Has(p) {
			return fmt.Errorf("parameter %q is not supported: the path of the URL is the prefix of the datastore", p)
		}
	}
	if u.Scheme == "file" {
		if u.Opaque != "" || u.Host != "" && u.Host != "localhost" || !filepath.IsAbs(fileDir(u)) {
			return errors.New("file URLs name an absolute directory, as file:///DIR, with three slashes")
		}
		for name, values := range u.Query() {
			for _, v := range values {
				if !fileParamBuiltIn(name, v) {
					return fmt.Errorf("parameter %s=%s is not supported: file URLs take none (but metadata=skip and no_tmp_dir=true, which older daggers wrote and which are what this one does)", name, v)
				}
			}
		}
		return nil
	}
	if u.Opaque != "" {
		return fmt.Errorf("malformed URL: want %s://BUCKET/PREFIX, with two slashes", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("missing bucket: want %s://BUCKET/PREFIX", u.Scheme)
	}
	for seg := range strings.SplitSeq(strings.Trim(u.Path, "/"), "/") {
		if seg == "." || seg == ".." || seg == "" && strings.Trim(u.Path, "/") != "" {
			return fmt.Errorf("invalid prefix %q: empty, . and .. segments are not allowed", u.Path)
		}
	}
	return nil
}

// fileParamBuiltIn reports whether name=value is a parameter of file URLs
// that older daggers, which reached folders through gocloud.dev's
// fileblob, set and documented, and which is this package's behaviour:
// no metadata files, and temporary files beside the blobs. Runs recorded
// with such a URL still open.
func fileParamBuiltIn(name, value string) bool {
	return name == "metadata" && value == "skip" || name == "no_tmp_dir" && value == "true"
}

// fileDir returns the directory named by the file URL u: file:///c:/dir
// is c:\dir on Windows.
func fileDir(u *url.URL) string {
	p := u.Path
	if os.PathSeparator != '/' {
		p = strings.TrimPrefix(p, "/")
	}
	return filepath.Clean(filepath.FromSlash(p))
}

// String returns the URL of the datastore, with the values of any
// parameters whose names look secret replaced.
func (d *Datastore) String() string {
	return d.name
}

// URL returns the URL the datastore was opened with: what a run records,
// and what a task runner opens. Open refuses credentials in a URL, so it
// holds none; String is for messages all the same.
func (d *Datastore) URL() string {
	return d.url
}

// Close releases the resources of the datastore.
func (d *Datastore) Close() error {
	if err := d.bucket.Close(); err != nil {
		return fmt.Errorf("datastore %s: close: %s", d, scrub(err.Error()))
	}
	return nil
}

// key returns the key of the blob whose hexadecimal digest is digest.
func (d *Datastore) key(digest string) string {
	return d.prefix + "blobs/sha256/" + digest[:2] + "/" + digest
}

// Put stores the concatenation of parts unless a blob of the same content
// is present. It uploads the parts one after the other, copying none.
func (d *Datastore) Put(ctx context.Context, parts ...[]byte) (store.Hash, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("datastore %s: put blob: %w", d, err)
	}
	hw := sha256.New()
	readers := make([]io.Reader, len(parts))
	var size int64
	for i, p := range parts {
		// A chunk at a time, so that a collection need not wait for
		// the hashing of a large part to end.
		for rest := p; len(rest) > 0; rest = rest[min(len(rest), ioChunk):] {
			hw.Write(rest[:min(len(rest), ioChunk)])
		}
		readers[i] = bytes.NewReader(p)
		size += int64(len(p))
	}
	h := store.HashOf([sha256.Size]byte(hw.Sum(nil)))
	if err := d.upload(ctx, h, io.MultiReader(readers...), size); err != nil {
		return "", err
	}
	return h, nil
}

// upload stores the blob h of the given size from r unless it is present.
//
// The check costs a request, but saves uploading content that is already
// there, which is common: the same code package, inputs or outputs in run
// after run. A present object of another size is replaced: it can only be
// damaged, as objects are written whole.
func (d *Datastore) upload(ctx context.Context, h store.Hash, r io.Reader, size int64) error {
	key := d.key(h.Digest())
	present, err := d.bucket.Size(ctx, key)
	switch {
	case err == nil && present == size:
		d.addPending(key)
		return nil
	case err != nil && d.bucket.Code(err) != bucket.NotFound:
		return d.fail(ctx, "put blob "+string(h), key, err)
	}
	if err := d.bucket.Upload(ctx, key, r, size); err != nil {
		return d.fail(ctx, "put blob "+string(h), key, err)
	}
	d.addPending(key)
	return nil
}

// PutReader stores everything read from r. A blob of less than spoolMin
// bytes is read into memory and stored by Put. A larger one is copied to a
// temporary file while being hashed, and uploaded from there only if it is
// not present; the file is removed before PutReader returns.
//
// Spooling locally, rather than uploading to a temporary object and
// copying it into place once the hash is known, uploads no content that is
// present, leaves no debris in the bucket if the process is killed, and is
// not bound by the limits of server-side copies (5 GiB for one S3
// CopyObject), at the cost of local disk space for the largest blob in
// flight, in os.TempDir ($TMPDIR).
func (d *Datastore) PutReader(ctx context.Context, r io.Reader) (store.Hash, int64, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, fmt.Errorf("datastore %s: put blob: %w", d, err)
	}
	var head bytes.Buffer
	_, err := io.CopyN(&head, ctxReader{ctx, r}, spoolMin)
	switch err {
	case io.EOF:
		h, err := d.Put(ctx, head.Bytes())
		return h, int64(head.Len()), err
	case nil:
		return d.spool(ctx, head.Bytes(), r)
	}
	return "", 0, fmt.Errorf("datastore %s: put blob: read: %w", d, err)
}

// spool stores prefix followed by everything read from r by way of a
// temporary file.
func (d *Datastore) spool(ctx context.Context, prefix []byte, r io.Reader) (_ store.Hash, _ int64, err error) {
	f, err := os.CreateTemp("", "dagger-blob-*")
	if err != nil {
		return "", 0, fmt.Errorf("datastore %s: put blob: %w", d, err)
	}
	defer func() {
		if rmErr := errors.Join(f.Close(), os.Remove(f.Name())); rmErr != nil && err == nil {
			err = fmt.Errorf("datastore %s: put blob: %w", d, rmErr)
		}
	}()
	hw := sha256.New()
	w := io.MultiWriter(f, hw)
	if _, err := w.Write(prefix); err != nil {
		return "", 0, fmt.Errorf("datastore %s: put blob: %w", d, err)
	}
	n, err := io.CopyBuffer(w, ctxReader{ctx, r}, make([]byte, ioChunk))
	if err != nil {
		return "", 0, fmt.Errorf("datastore %s: put blob: %w", d, err)
	}
	n += int64(len(prefix))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("datastore %s: put blob: %w", d, err)
	}
	h := store.HashOf([sha256.Size]byte(hw.Sum(nil)))
	if err := d.upload(ctx, h, f, n); err != nil {
		return "", 0, err
	}
	return h, n, nil
}

// ctxReader makes a copy loop notice cancellation between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Get returns the content of blob h after checking that it hashes to h.
func (d *Datastore) Get(ctx context.Context, h store.Hash) ([]byte, error) {
	op := "get blob " + string(h)
	r, key, err := d.open(ctx, op, h)
	if err != nil {
		return nil, err
	}
	defer r.Close() // read-only: nothing to lose
	// The size is known, so the content is read into a buffer of the
	// right size, hashing each chunk as it arrives.
	data := make([]byte, r.Size())
	hw := sha256.New()
	for off := 0; off < len(data); {
		end := min(off+ioChunk, len(data))
		if _, err := io.ReadFull(r, data[off:end]); err != nil {
			return nil, d.fail(ctx, op, key, err)
		}
		hw.Write(data[off:end])
		off = end
	}
	if got := store.HashOf([sha256.Size]byte(hw.Sum(nil))); got != h {
		return nil, d.corrupt(op, key, got)
	}
	return data, nil
}

// Open returns a reader of the content of blob h, which verifies the hash
// when it reaches the end.
func (d *Datastore) Open(ctx context.Context, h store.Hash) (io.ReadCloser, error) {
	op := "open blob " + string(h)
	r, key, err := d.open(ctx, op, h)
	if err != nil {
		return nil, err
	}
	return &blobReader{ctx: ctx, d: d, r: r, op: "read blob " + string(h), key: key, want: h, hash: sha256.New()}, nil
}

// open starts reading blob h for operation op.
func (d *Datastore) open(ctx context.Context, op string, h store.Hash) (bucket.Reader, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("datastore %s: %s: %w", d, op, err)
	}
	if _, err := store.ParseHash(string(h)); err != nil {
		return nil, "", fmt.Errorf("datastore %s: %s: %w", d, op, err)
	}
	key := d.key(h.Digest())
	r, err := d.bucket.NewReader(ctx, key)
	if err != nil {
		return nil, "", d.fail(ctx, op, key, err)
	}
	return r, key, nil
}

// blobReader verifies the content of a blob as it is read.
type blobReader struct {
	ctx  context.Context
	d    *Datastore
	r    bucket.Reader
	op   string
	key  string
	want store.Hash
	hash hash.Hash
}

func (r *blobReader) Read(p []byte) (int, error) {
	// A chunk at a time, so that a collection need not wait for the
	// hashing of a large read to end.
	n, err := r.r.Read(p[:min(len(p), ioChunk)])
	r.hash.Write(p[:n])
	switch {
	case err == io.EOF:
		if got := store.HashOf([sha256.Size]byte(r.hash.Sum(nil))); got != r.want {
			return n, r.d.corrupt(r.op, r.key, got)
		}
	case err != nil:
		err = r.d.fail(r.ctx, r.op, r.key, err)
	}
	return n, err
}

// Size returns the size of the blob, as store.Blobs.Open promises of a
// Store's readers, so that a reader of a large blob allocates exactly what
// it needs.
func (r *blobReader) Size() int64 {
	return r.r.Size()
}

// WriteTo lets io.Copy move large blobs in big chunks instead of its
// default 32 KiB buffer.
func (r *blobReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, ioChunk)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (r *blobReader) Close() error {
	return r.r.Close()
}

// addPending notes that the object key must be flushed by the next Sync,
// if the datastore is a directory. That includes blobs that were already
// present, as another process may have stored them and not flushed them
// yet.
func (d *Datastore) addPending(key string) {
	if d.dir == "" {
		return
	}
	d.mu.Lock()
	d.pending[key] = true
	d.mu.Unlock()
}

// Sync makes the blobs stored so far durable. Object stores have made
// them durable by the time Put returns, so Sync does nothing there. In a
// directory, it flushes the files of the blobs stored since the last Sync,
// and the directories that name them, at once, which costs far less than
// flushing each file as it is written.
//
// A failed Sync is reported by every later one as well: the kernel reports
// a write-back error only once, after which the lost data would look clean.
func (d *Datastore) Sync(ctx context.Context) error {
	if d.dir == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("datastore %s: sync: %w", d, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.syncErr != nil {
		return fmt.Errorf("datastore %s: sync: earlier failure: %w", d, d.syncErr)
	}
	dirs := make(map[string]bool)
	for key := range d.pending {
		p := filepath.Join(d.dir, filepath.FromSlash(key))
		if err := syncPath(p); err != nil {
			d.syncErr = err
			return fmt.Errorf("datastore %s: sync: %w", d, err)
		}
		// The directories that Put may have created on the way.
		for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
			dirs[dir] = true
			if dir == d.dir || dir == filepath.Dir(dir) {
				break
			}
		}
	}
	for dir := range dirs {
		if err := syncPath(dir); err != nil {
			d.syncErr = err
			return fmt.Errorf("datastore %s: sync: %w", d, err)
		}
	}
	clear(d.pending)
	return nil
}

// syncPath flushes the file or directory p to stable storage.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
