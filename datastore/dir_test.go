package datastore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"testing"
)

// TestDirUploadFails checks that an upload to a folder that fails
// half-way leaves neither the object nor a temporary file.
func TestDirUploadFails(t *testing.T) {
	errBroken := errors.New("broken source")
	tests := []struct {
		name string
		// fail is read after some content, given the upload's cancel.
		fail func(cancel func()) io.Reader
		want error
	}{
		{"cancelled", func(cancel func()) io.Reader {
			return readerFunc(func(p []byte) (int, error) {
				cancel()
				return copy(p, "x"), nil
			})
		}, context.Canceled},
		{"read error", func(func()) io.Reader { return readerFunc(func([]byte) (int, error) { return 0, errBroken }) }, errBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := io.MultiReader(bytes.NewReader(make([]byte, 3*ioChunk)), tt.fail(cancel))
			err := dirBucket{dir}.Upload(ctx, "blobs/sha256/ab/abc", r, 4*ioChunk)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Upload: %v, want %v", err, tt.want)
			}
			var files []string
			err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					files = append(files, p)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 0 {
				t.Errorf("files left after a failed upload: %q", files)
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
