package agent

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// An imageStore pulls images and unpacks each once, by digest, into a
// folder of its own: dir/ALGORITHM-HEX/{rootfs,config.json}.
type imageStore struct {
	dir   string
	chown bool // whether to give files their owners in the image

	mu   sync.Mutex
	busy map[string]chan struct{} // folders being made, closed when done
}

func newImageStore(dir string, chown bool) *imageStore {
	return &imageStore{dir: dir, chown: chown, busy: make(map[string]chan struct{})}
}

// An image is a pulled and unpacked image.
type image struct {
	id     string // repository@digest, a container status's imageID
	rootfs string // the folder of its files
	config v1.Config
}

// parseImage parses a pod's image reference, for plain HTTP when its
// registry is on this machine.
func parseImage(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, err
	}
	if isLoopback(ref.Context().RegistryStr()) {
		return name.ParseReference(s, name.Insecure)
	}
	return ref, nil
}

// isLoopback reports whether the registry host[:port] is on this machine.
func isLoopback(registry string) bool {
	host, _, err := net.SplitHostPort(registry)
	if err != nil {
		host = registry
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// pull returns the image ref names, for this machine's architecture,
// pulling and unpacking it unless it is there already. An image named by
// digest that is there costs no request.
func (s *imageStore) pull(ctx context.Context, ref name.Reference) (*image, error) {
	if d, ok := ref.(name.Digest); ok {
		if img, err := s.load(ref.Context(), d.DigestStr()); err == nil {
			return img, nil
		}
	}
	remoteImg, err := remote.Image(ref, remote.WithContext(ctx),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return nil, err
	}
	digest, err := remoteImg.Digest()
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock(ctx, digest.String())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if img, err := s.load(ref.Context(), digest.String()); err == nil {
		return img, nil
	}
	if err := s.unpack(remoteImg, s.folder(digest.String())); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", ref, err)
	}
	return s.load(ref.Context(), digest.String())
}

// folder returns the folder of the image of digest "ALGORITHM:HEX".
func (s *imageStore) folder(digest string) string {
	return filepath.Join(s.dir, strings.Replace(digest, ":", "-", 1))
}

// load returns the unpacked image of digest from repo.
func (s *imageStore) load(repo name.Repository, digest string) (*image, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, err
	}
	dir := s.folder(h.String())
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	img := &image{id: repo.Digest(h.String()).String(), rootfs: filepath.Join(dir, "rootfs")}
	if err := json.Unmarshal(data, &img.config); err != nil {
		return nil, fmt.Errorf("reading the config of image %s: %w", img.id, err)
	}
	return img, nil
}

// lock waits until no one else makes the folder named key, and keeps
// others from making it until unlock.
func (s *imageStore) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		s.mu.Lock()
		ch, busy := s.busy[key]
		if !busy {
			ch = make(chan struct{})
			s.busy[key] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.busy, key)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// unpack writes the files of img, and its config, to the folder dest. It
// works aside and renames into place, so that dest is whole or missing,
// even if another agent on the same folder unpacks the same image.
func (s *imageStore) unpack(img v1.Image, dest string) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	config, err := json.Marshal(cfg.Config)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(s.dir, ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	// Extract flattens the layers, applying their whiteouts.
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := untar(root, tar.NewReader(rc), s.chown); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), config, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		if _, serr := os.Stat(filepath.Join(dest, "config.json")); serr == nil {
			return nil // another agent was first
		}
		return err
	}
	return nil
}

// untar writes the files of tr into root, refusing a name that would
// leave it: os.Root follows no symbolic link out of its folder, absolute
// or relative. Modes keep no setuid or setgid bit; owners are kept if
// chown. Device files and FIFOs are left out.
func untar(root *os.Root, tr *tar.Reader, chown bool) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := localName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		if dir := filepath.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		mode := hdr.FileInfo().Mode()
		perm := mode.Perm() | mode&fs.ModeSticky
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			err = writeFile(root, name, tr)
		case tar.TypeSymlink:
			err = replace(root, name, func() error { return root.Symlink(hdr.Linkname, name) })
		case tar.TypeLink:
			var target string
			if target, err = localName(hdr.Linkname); err == nil {
				err = replace(root, name, func() error { return root.Link(target, name) })
			}
		default:
			continue
		}
		if err == nil && chown {
			err = root.Lchown(name, hdr.Uid, hdr.Gid)
		}
		if err == nil && hdr.Typeflag != tar.TypeSymlink {
			// After the chown, which would clear some bits.
			err = root.Chmod(name, perm)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// localName returns the name of an entry of an image's tar, relative to
// its root, or an error if it would leave the root.
func localName(s string) (string, error) {
	name := filepath.Clean(strings.TrimPrefix(s, "/"))
	if name != "." && !filepath.IsLocal(name) {
		return "", fmt.Errorf("entry %q leaves the image's root", s)
	}
	return name, nil
}

// writeFile writes name in root, replacing what is there, from r.
func writeFile(root *os.Root, name string, r io.Reader) error {
	return replace(root, name, func() error {
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		return errors.Join(err, f.Close())
	})
}

// replace removes name from root, if it is there and not a folder with
// something in it, and then calls create. Nothing is written through a
// file that was there, which may be a link to another's.
func replace(root *os.Root, name string, create func() error) error {
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return create()
}
