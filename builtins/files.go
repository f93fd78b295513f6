package builtins

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/dag"
)

// filesModule returns the module files, with which a step that declares
// the capability files reads and writes files in its task's directory:
//
//	files.read(path)            the file's text, a string
//	files.read_bytes(path)      the file's content, bytes
//	files.write(path, data)     writes a string or bytes, making folders
//	files.exists(path)          whether anything is there
//	files.list(path = ".")      the names in a folder, sorted
//	files.remove(path)          removes a file, or a folder and all it holds
//	files.artifact(path)        the file as a File, to keep as an artifact
//
// A path is relative to the task's directory and cannot leave it: an
// absolute path, a path through "..", or one through a symbolic link
// that leads outside, is refused. The directory is opened as an os.Root
// for each call, so that the check and the use cannot disagree, whatever
// a program the step runs does to it meanwhile.
func filesModule() starlark.Value {
	return &starlarkstruct.Module{Name: "files", Members: starlark.StringDict{
		"artifact":   starlark.NewBuiltin("files.artifact", filesArtifact),
		"exists":     starlark.NewBuiltin("files.exists", filesExists),
		"list":       starlark.NewBuiltin("files.list", filesList),
		"read":       starlark.NewBuiltin("files.read", filesRead),
		"read_bytes": starlark.NewBuiltin("files.read_bytes", filesRead),
		"remove":     starlark.NewBuiltin("files.remove", filesRemove),
		"write":      starlark.NewBuiltin("files.write", filesWrite),
	}}
}

// openDir opens the directory of task t as an os.Root, through which no
// path reaches outside it.
func openDir(t *Task) (*os.Root, error) {
	dir, err := t.Dir()
	if err != nil {
		return nil, err
	}
	return os.OpenRoot(dir)
}

// A filesCall is a call of a builtin of files on a path: the task's
// directory opened for it, and what its errors need.
type filesCall struct {
	fn   string // the builtin, such as files.read
	path string
	dir  string
	root *os.Root
}

// startFiles checks that the step running on thread declared the
// capability files and that path stays in its task's directory, and
// opens the directory for fn. The caller closes the root.
func startFiles(thread *starlark.Thread, fn, path string) (*filesCall, error) {
	t, err := Require(thread, fn, dag.Capability{Kind: dag.CapFiles})
	if err != nil {
		return nil, err
	}
	c := &filesCall{fn: fn, path: path}
	if path == "" {
		return nil, fmt.Errorf("%s: the path is empty: name a file in the task's directory, or \".\" for the directory", fn)
	}
	if !filepath.IsLocal(path) {
		return nil, c.outside()
	}
	if c.dir, err = t.Dir(); err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	if c.root, err = os.OpenRoot(c.dir); err != nil {
		return nil, fmt.Errorf("%s: opening the task's directory: %w", fn, err)
	}
	return c, nil
}

// startPath is startFiles for a builtin whose one argument is the path,
// which it returns too.
func startPath(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (*filesCall, string, error) {
	var path string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &path); err != nil {
		return nil, "", err
	}
	c, err := startFiles(thread, b.Name(), path)
	return c, path, err
}

func (c *filesCall) outside() error {
	return fmt.Errorf("%s: path %q is outside the task's directory", c.fn, c.path)
}

// error returns err, which the root returned, for the caller of c.fn. The
// root refuses a path that a symbolic link leads outside with an error
// that does not say so in terms a flow's author can act on.
func (c *filesCall) error(err error) error {
	if !errors.Is(err, fs.ErrNotExist) && escapes(c.dir, c.path) {
		return c.outside()
	}
	// The errors of a file the root opened name it by its full path,
	// which means nothing to the flow: name it as the flow did.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if rel, ok := strings.CutPrefix(pe.Path, c.dir+string(filepath.Separator)); ok {
			pe.Path = rel
		}
	}
	return fmt.Errorf("%s: %w", c.fn, err)
}

// escapes reports whether p, a local path, leads outside dir through a
// symbolic link: whether the deepest of p and its parents that exists
// resolves to a file outside dir.
func escapes(dir, p string) bool {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	for q := filepath.Join(dir, p); q != dir; q = filepath.Dir(q) {
		if real, err := filepath.EvalSymlinks(q); err == nil {
			rel, err := filepath.Rel(realDir, real)
			return err != nil || rel != "." && !filepath.IsLocal(rel)
		}
	}
	return false
}

// filesRead is files.read and files.read_bytes.
func filesRead(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, path, err := startPath(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	defer c.root.Close()
	f, err := openRegular(c.root, path)
	if err != nil {
		return nil, c.error(err)
	}
	defer f.Close() // read-only
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, c.error(err)
	}
	if b.Name() == "files.read_bytes" {
		return starlark.Bytes(data), nil
	}
	return starlark.String(data), nil
}

func filesWrite(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		path string
		data starlark.Value
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &path, "data", &data); err != nil {
		return nil, err
	}
	var content string
	switch data := data.(type) {
	case starlark.String:
		content = string(data)
	case starlark.Bytes:
		content = string(data)
	default:
		return nil, fmt.Errorf("%s: data is %s, not a string or bytes", b.Name(), a(data.Type()))
	}
	c, err := startFiles(thread, b.Name(), path)
	if err != nil {
		return nil, err
	}
	defer c.root.Close()
	if dir := filepath.Dir(path); dir != "." {
		if err := c.root.MkdirAll(dir, 0o777); err != nil {
			return nil, c.error(err)
		}
	}
	if err := c.root.WriteFile(path, []byte(content), 0o666); err != nil {
		return nil, c.error(err)
	}
	return starlark.None, nil
}

func filesExists(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, path, err := startPath(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	defer c.root.Close()
	_, err = c.root.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return starlark.False, nil
	case err != nil:
		return nil, c.error(err)
	}
	return starlark.True, nil
}

func filesList(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	path := "."
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path?", &path); err != nil {
		return nil, err
	}
	c, err := startFiles(thread, b.Name(), path)
	if err != nil {
		return nil, err
	}
	defer c.root.Close()
	f, err := c.root.Open(path)
	if err != nil {
		return nil, c.error(err)
	}
	defer f.Close() // read-only
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, c.error(err)
	}
	slices.Sort(names)
	list := make([]starlark.Value, len(names))
	for i, name := range names {
		list[i] = starlark.String(name)
	}
	return starlark.NewList(list), nil
}

func filesRemove(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, path, err := startPath(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	defer c.root.Close()
	if filepath.Clean(path) == "." {
		return nil, fmt.Errorf("%s: cannot remove the task's directory itself; remove what it holds", b.Name())
	}
	// Removing what is not there is an error, as it is for os.Remove:
	// the step expected something else.
	if _, err := c.root.Lstat(path); err != nil {
		return nil, c.error(err)
	}
	if err := c.root.RemoveAll(path); err != nil {
		return nil, c.error(err)
	}
	return starlark.None, nil
}

// filesArtifact is files.artifact: it streams the file's content into the
// run's blobs, never holding more than a buffer of it in memory, and
// returns it as a File.
func filesArtifact(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c, path, err := startPath(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	defer c.root.Close()
	t := ThreadTask(thread)
	if t.Blobs == nil {
		return nil, fmt.Errorf("%s: the task has no blobs to keep the file in", b.Name())
	}
	f, err := openRegular(c.root, path)
	if err != nil {
		return nil, c.error(err)
	}
	defer f.Close() // read-only
	info, err := f.Stat()
	if err != nil {
		return nil, c.error(err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %q is not a regular file but a %s", b.Name(), path, fileKind(info.Mode()))
	}
	h, n, err := t.Blobs.PutReader(ThreadContext(thread), f)
	if err != nil {
		return nil, fmt.Errorf("%s: keeping %q in the run's blobs: %w", b.Name(), path, err)
	}
	file, err := NewFile(h, filepath.Base(path), n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return file, nil
}

// fileKind names the kind of file of mode, for messages.
func fileKind(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "folder"
	case mode&fs.ModeNamedPipe != 0:
		return "named pipe"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// openRegular opens the file name of root for reading, and fails unless
// it is a regular file: a named pipe or a device, opened as a file is,
// would block the step past its timeout, which cannot interrupt a read.
// It opens without blocking, then checks what it opened, so that the file
// cannot change between the check and the open.
func openRegular(root *os.Root, name string) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%q is not a regular file but a %s", name, fileKind(info.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
