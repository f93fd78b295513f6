//go:build unix && !linux

package store

import (
	"os"
	"path/filepath"
)

// blobPerm makes blob files read-only, as they are immutable. Temporary
// files are created with it too: the descriptor opened to create a file can
// write to it whatever its permissions.
const blobPerm = 0o444

// flushByPath is true because syncer flushes the files it is given.
const flushByPath = true

// syncer flushes blob files one by one, followed by the directories whose
// entries they were renamed into, for want of a file-system-wide flush.
type syncer struct {
	root string
}

func newSyncer(root string) (*syncer, error) {
	return &syncer{root: root}, nil
}

func (s *syncer) sync(paths []string) error {
	// The root and its parent are included because the first Put of a
	// store may have created them.
	dirs := map[string]bool{s.root: true, filepath.Dir(s.root): true}
	for _, p := range paths {
		if err := fsync(p); err != nil {
			return err
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := fsync(d); err != nil {
			return err
		}
	}
	return nil
}

func fsync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close() // the Sync error is the one worth reporting
		return err
	}
	return f.Close()
}

func (s *syncer) close() error {
	return nil
}

// startFlush does nothing: only Linux can start a flush without waiting
// for it.
func startFlush(*os.File, int64, int64) {}
