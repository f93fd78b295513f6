package datastore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/daggerflow/dagger/datastore/internal/bucket"
)

// dirBucket keeps objects as files under a directory: the object a/b is
// the file DIR/a/b. A file is written to a temporary file beside it, then
// renamed, so that readers see it whole, and so that the rename stays on
// one file system, which $TMPDIR may not be.
type dirBucket struct {
	dir string
}

func (b dirBucket) path(key string) string {
	return filepath.Join(b.dir, filepath.FromSlash(key))
}

func (b dirBucket) Size(ctx context.Context, key string) (int64, error) {
	info, err := os.Stat(b.path(key))
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

func (b dirBucket) Upload(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	p := b.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		return err
	}
	f, err := createTemp(p)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.Remove(f.Name()))
		}
	}()
	_, err = io.Copy(f, ctxReader{ctx, r})
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// createTemp creates a new file whose name is path followed by a random
// suffix. Unlike os.CreateTemp, which makes files only their owner may
// read, it leaves the permissions to the umask, as for any other file:
// the other users of a shared directory may need to read it.
func createTemp(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path+"."+strconv.FormatUint(rand.Uint64(), 36)+".tmp", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
}

func (b dirBucket) NewReader(ctx context.Context, key string) (bucket.Reader, error) {
	f, err := os.Open(b.path(key))
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return sizedReader{f, info.Size()}, nil
}

// Code tells absent objects. Other errors are the file system's, which
// package datastore tells apart itself: a permission error says what to
// check in the directory, not in the credentials.
func (b dirBucket) Code(err error) bucket.Code {
	if errors.Is(err, fs.ErrNotExist) {
		return bucket.NotFound
	}
	return bucket.Unknown
}

func (b dirBucket) Close() error {
	return nil
}
