package builtins

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/dag"
	"github.com/daggerflow/dagger/store"
)

// A File is a file kept as an artifact, the value files.artifact returns:
// the hash of its content, which the run's blobs hold, its base name and
// its size. The value is small however big the file, so an artifact that
// holds one is saved and loaded quickly; the content moves, streamed, only
// when files.artifact stores it and when path() puts it back on disk.
//
// A File is immutable and hashable. Two Files are equal when their
// contents are, whatever their names: the name is where path() puts the
// content, not part of what it is.
type File struct {
	hash store.Hash
	name string
	size int64
}

var (
	_ starlark.HasAttrs   = File{}
	_ starlark.Comparable = File{}
)

// NewFile returns the File of content hash h, of size bytes, that path()
// names name. name must be a base name: not empty, "." or "..", and
// without a slash, a backslash or a NUL byte.
func NewFile(h store.Hash, name string, size int64) (File, error) {
	if _, err := store.ParseHash(string(h)); err != nil {
		return File{}, fmt.Errorf("file %q: %w", name, err)
	}
	if err := checkFileName(name); err != nil {
		return File{}, err
	}
	if size < 0 {
		return File{}, fmt.Errorf("file %q: negative size %d", name, size)
	}
	return File{hash: h, name: name, size: size}, nil
}

// checkFileName reports a name that is not a plain base name, which path()
// could not create in a directory as it is, on any system.
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("file name %q is not a base name", name)
	}
	return nil
}

// ContentHash returns the hash of the file's content in the run's blobs.
func (f File) ContentHash() store.Hash { return f.hash }

// Name returns the file's base name.
func (f File) Name() string { return f.name }

// Size returns the size of the file's content in bytes.
func (f File) Size() int64 { return f.size }

// String returns the file as dagger inspect shows it:
// file("model.pt", 1234 bytes, sha256:...).
func (f File) String() string {
	return fmt.Sprintf("file(%s, %d bytes, %s)", syntax.Quote(f.name, false), f.size, f.hash)
}

func (f File) Type() string         { return "file" }
func (f File) Freeze()              {} // immutable
func (f File) Truth() starlark.Bool { return starlark.True }

// Hash hashes the content's hash, since equal Files have the same content.
func (f File) Hash() (uint32, error) { return starlark.String(f.hash).Hash() }

// CompareSameType compares Files by content for == and !=; Files have no
// order.
func (f File) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	g := y.(File)
	switch op {
	case syntax.EQL:
		return f.hash == g.hash, nil
	case syntax.NEQ:
		return f.hash != g.hash, nil
	}
	return false, fmt.Errorf("%s %s %s not implemented: files have no order", f.Type(), op, g.Type())
}

// Attr returns name, size and the method path.
func (f File) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(f.name), nil
	case "size":
		return starlark.MakeInt64(f.size), nil
	case "path":
		return starlark.NewBuiltin("path", f.path).BindReceiver(f), nil
	}
	return nil, nil
}

// AttrNames lists the attributes of a File.
func (f File) AttrNames() []string { return []string{"name", "path", "size"} }

// path is the method path(): it puts the content in the task's directory,
// unless it is there already, and returns where, relative to the
// directory, so that a program the step runs can open it.
func (f File) path(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	const fn = "file.path"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	t, err := Require(thread, fn, dag.Capability{Kind: dag.CapFiles})
	if err != nil {
		return nil, err
	}
	root, err := openDir(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	defer root.Close()
	// The file goes under its own name, or, if other content has that
	// name, into a folder named after its hash, where a second call finds
	// it.
	for _, p := range []string{f.name, path.Join(f.hash.Digest()[:16], f.name), path.Join(f.hash.Digest(), f.name)} {
		same, err := f.sameAs(root, p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := f.materialize(thread, t, root, p); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", fn, f, err)
			}
			return starlark.String(p), nil
		case err != nil:
			return nil, fmt.Errorf("%s: %s: %w", fn, f, err)
		case same:
			return starlark.String(p), nil
		}
	}
	return nil, fmt.Errorf("%s: %s: %q and the folders it would go to instead hold other content: remove them", fn, f, f.name)
}

// sameAs reports whether the file p of root holds f's content. It reads
// the file only if its size is f's. The error wraps fs.ErrNotExist if p
// does not exist.
func (f File) sameAs(root *os.Root, p string) (bool, error) {
	info, err := root.Stat(p)
	if err != nil || !info.Mode().IsRegular() || info.Size() != f.size {
		return false, err
	}
	r, err := root.Open(p)
	if err != nil {
		return false, err
	}
	defer r.Close() // read-only
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return false, err
	}
	return store.HashOf([sha256.Size]byte(h.Sum(nil))) == f.hash, nil
}

// materialize writes f's content, streamed from the run's blobs, which
// check it against its hash, to the new file p of root.
func (f File) materialize(thread *starlark.Thread, t *Task, root *os.Root, p string) (err error) {
	ctx := ThreadContext(thread)
	if t.Blobs == nil {
		return errors.New("the task has no blobs to read the content from")
	}
	src, err := t.Blobs.Open(ctx, f.hash)
	if err != nil {
		return err
	}
	defer src.Close() // read-only
	if dir := path.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, 0o777); err != nil {
			return err
		}
	}
	dst, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			root.Remove(p) // a part of the content is no content
		}
	}()
	n, err := io.Copy(dst, src)
	if err != nil {
		return fmt.Errorf("copying the content from the run's blobs: %w", err)
	}
	if n != f.size {
		return fmt.Errorf("the content has %d bytes, not %d", n, f.size)
	}
	return nil
}
