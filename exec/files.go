package exec

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// prepare writes the flow's own files, those its package(include = [...])
// declaration adds to the code package, into dir, a task's new working
// directory, at their paths in the package. Each task gets copies: what a
// step changes there, no other task sees.
func (r *Runner) prepare(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, name := range r.flow.Included() {
		if err := writeFile(root, name, r.flow.Package.Files[name]); err != nil {
			return fmt.Errorf("writing the flow's file %s: %w", name, err)
		}
	}
	return nil
}

// writeFile writes data to the file name, a slash-separated path, in
// root, making its folders.
func writeFile(root *os.Root, name, data string) error {
	name = filepath.FromSlash(name)
	if d := filepath.Dir(name); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
