package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// layImage puts the files of the unpacked image at rootfs into root,
// over what is there but folders. A file owned by root that only root may write is
// linked, which costs nothing; others are copied, so that a container
// cannot change the image for later pods by writing into them.
func layImage(root *os.Root, rootfs string, chown bool) error {
	return filepath.WalkDir(rootfs, func(src string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name, err := filepath.Rel(rootfs, src)
		if err != nil || name == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		mode := info.Mode()
		switch {
		case mode.IsDir():
			if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
				// Made by an earlier image or as a volume, it keeps
				// its owner and mode, as a mount would hide the image's.
				return nil
			}
			if err := replace(root, name, func() error { return root.Mkdir(name, 0o755) }); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := replace(root, name, func() error { return root.Symlink(target, name) }); err != nil {
				return err
			}
		case mode.IsRegular() && st != nil && st.Uid == 0 && mode&0o022 == 0:
			return replace(root, name, func() error { return linkInto(root, src, name) })
		case mode.IsRegular():
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			err = writeFile(root, name, f)
			f.Close()
			if err != nil {
				return err
			}
		default:
			return nil
		}
		if chown && st != nil {
			if err := root.Lchown(name, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if mode&fs.ModeSymlink == 0 {
			return root.Chmod(name, mode.Perm()|mode&fs.ModeSticky)
		}
		return nil
	})
}

// linkInto makes name in root a hard link to the file src, outside it.
// The folder of name is opened through root, which follows no symbolic
// link out of it.
func linkInto(root *os.Root, src, name string) error {
	dir, err := root.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := unix.Linkat(unix.AT_FDCWD, src, int(dir.Fd()), filepath.Base(name), 0); err != nil {
		return &fs.PathError{Op: "link", Path: name, Err: err}
	}
	return nil
}

// rootName returns the name in the pod's root of the absolute path p of
// a container.
func rootName(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	name := filepath.Clean(p[1:])
	if name != "." && !filepath.IsLocal(name) {
		return "", fmt.Errorf("path %q leaves the root", p)
	}
	return name, nil
}

// mountVolumes makes the volumes that c mounts: a folder at the mount
// path of the first container that mounts the volume, and symbolic links
// to it at other paths.
func (p *podRun) mountVolumes(ctx context.Context, pod *corev1.Pod, c *corev1.Container) error {
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			return fmt.Errorf("volume mount %s at %s: the test agent supports no subPath", m.Name, m.MountPath)
		}
		name, err := rootName(m.MountPath)
		if err != nil {
			return fmt.Errorf("volume mount %s: %w", m.Name, err)
		}
		if first, ok := p.volumes[m.Name]; ok {
			if first != name {
				err = p.linkVolume(first, name)
			}
		} else {
			err = p.makeVolume(ctx, pod, m.Name, name)
		}
		if err != nil {
			return fmt.Errorf("volume %s at %s: %w", m.Name, m.MountPath, err)
		}
		p.volumes[m.Name] = name
	}
	return nil
}

// linkVolume makes name a symbolic link to the volume at first.
func (p *podRun) linkVolume(first, name string) error {
	if err := p.root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	// Relative, so that it leads to the volume with chroot or without.
	target, err := filepath.Rel(filepath.Dir(name), first)
	if err != nil {
		return err
	}
	return replace(p.root, name, func() error { return p.root.Symlink(target, name) })
}

// makeVolume makes the volume vol of pod at name in the root.
func (p *podRun) makeVolume(ctx context.Context, pod *corev1.Pod, vol, name string) error {
	i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vol })
	if i < 0 {
		return errors.New("no such volume")
	}
	v := &pod.Spec.Volumes[i]
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	if err := p.root.MkdirAll(name, 0o755); err != nil {
		return err
	}
	switch {
	case v.EmptyDir != nil:
		// As a kubelet makes them: writable by all.
		if err := p.chown(name, fsGroup); err != nil {
			return err
		}
		return p.root.Chmod(name, 0o777)
	case v.Secret != nil:
		s := v.Secret
		secret, err := p.a.client.Secrets(pod.Namespace).Get(ctx, s.SecretName, metav1.GetOptions{})
		if err != nil {
			if isOptionalMissing(err, s.Optional) {
				return nil
			}
			return err
		}
		return p.writeVolume(name, secret.Data, s.Items, s.DefaultMode, fsGroup)
	case v.ConfigMap != nil:
		s := v.ConfigMap
		cm, err := p.a.client.ConfigMaps(pod.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			if isOptionalMissing(err, s.Optional) {
				return nil
			}
			return err
		}
		data := maps.Clone(cm.BinaryData)
		if data == nil {
			data = make(map[string][]byte, len(cm.Data))
		}
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		return p.writeVolume(name, data, s.Items, s.DefaultMode, fsGroup)
	}
	return errors.New("the test agent supports only emptyDir, secret and configMap volumes")
}

// writeVolume writes the files of a secret or configMap volume at dir:
// each key of data, or the keys that items name at their paths.
func (p *podRun) writeVolume(dir string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, fsGroup *int64) error {
	if items == nil {
		for _, k := range slices.Sorted(maps.Keys(data)) {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, item := range items {
		value, ok := data[item.Key]
		if !ok {
			return fmt.Errorf("no key %q", item.Key)
		}
		if !filepath.IsLocal(item.Path) {
			return fmt.Errorf("path %q of key %q leaves the volume", item.Path, item.Key)
		}
		name := filepath.Join(dir, item.Path)
		if err := p.root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(corev1.SecretVolumeSourceDefaultMode)
		switch {
		case item.Mode != nil:
			mode = fs.FileMode(*item.Mode)
		case defaultMode != nil:
			mode = fs.FileMode(*defaultMode)
		}
		if fsGroup != nil {
			mode |= 0o440 // as a kubelet gives fsGroup a read-only volume
		}
		if err := replaceFile(p.root, name, value, mode.Perm()); err != nil {
			return err
		}
		if err := p.chown(name, fsGroup); err != nil {
			return err
		}
	}
	return nil
}

// chown gives name the group gid, if the agent can and gid is set.
func (p *podRun) chown(name string, gid *int64) error {
	if !p.a.chroot || gid == nil {
		return nil
	}
	return p.root.Lchown(name, -1, int(*gid))
}

// replaceFile writes a new file name in root, in place of what is there,
// with mode whatever the umask.
func replaceFile(root *os.Root, name string, data []byte, mode fs.FileMode) error {
	err := replace(root, name, func() error { return root.WriteFile(name, data, mode) })
	if err != nil {
		return err
	}
	return root.Chmod(name, mode)
}

// prepareFiles makes what the runtime gives a container besides its
// image and volumes: an empty termination message file that its user can
// write, /etc/hosts, and with chroot /proc/self/exe, a link to exe, the
// path of its executable, for Go's os.Executable, which reads it.
func (p *podRun) prepareFiles(pod *corev1.Pod, c *corev1.Container, exe string) error {
	if c.TerminationMessagePath != "" {
		name, err := rootName(c.TerminationMessagePath)
		if err != nil {
			return fmt.Errorf("termination message: %w", err)
		}
		if err := p.root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		if err := replaceFile(p.root, name, nil, 0o666); err != nil {
			return err
		}
	}
	if err := p.root.MkdirAll("etc", 0o755); err != nil {
		return err
	}
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t%s\n", pod.Name)
	if err := replaceFile(p.root, "etc/hosts", []byte(hosts), 0o644); err != nil {
		return err
	}
	if !p.a.chroot {
		return nil
	}
	if err := p.root.MkdirAll("proc/self", 0o755); err != nil {
		return err
	}
	if err := replace(p.root, "proc/self/exe", func() error { return p.root.Symlink(exe, "proc/self/exe") }); err != nil {
		return err
	}
	return p.makeDevices()
}

// makeDevices makes the devices every container runtime gives a
// container, which programs open without asking: Go's os/exec opens
// /dev/null for a program's standard input.
func (p *podRun) makeDevices() error {
	if err := p.root.MkdirAll("dev", 0o755); err != nil {
		return err
	}
	// Made by path, outside the root: an image's /dev must be a folder,
	// not a link that would lead there elsewhere.
	if fi, err := p.root.Lstat("dev"); err != nil || !fi.IsDir() {
		return fmt.Errorf("the image's /dev is not a folder")
	}
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}} {
		path := filepath.Join(p.rootDir, "dev", d.name)
		if _, err := os.Lstat(path); err == nil {
			continue // from another container of the pod
		}
		if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("making /dev/%s: %w", d.name, err)
		}
		// Mknod's mode is cut by the umask.
		if err := os.Chmod(path, 0o666); err != nil {
			return err
		}
	}
	return nil
}

// terminationMessage returns the last MaxContainerTerminationMessage bytes
// of c's termination message file, as a kubelet does, or with
// FallbackToLogsOnError after a failure and an empty file, the end of its
// log.
func (p *podRun) terminationMessage(c *corev1.Container, exitCode int32, log string) string {
	var msg []byte
	if name, err := rootName(c.TerminationMessagePath); c.TerminationMessagePath != "" && err == nil {
		if msg, err = readTail(p.root, name, maxTerminationMessage); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Sprintf("Error on reading termination log %s: %v", c.TerminationMessagePath, err)
		}
	}
	if len(msg) > 0 || exitCode == 0 || c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		return string(msg)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	data = data[tail(data, maxTerminationLogLines):]
	return string(data[max(0, len(data)-maxTerminationLogBytes):])
}

// What a kubelet keeps of a termination message, from its file or from
// the log.
const (
	maxTerminationMessage  = 4096
	maxTerminationLogBytes = 2048
	maxTerminationLogLines = 80
)

// readTail returns the last n bytes of the file name in root.
func readTail(root *os.Root, name string, n int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a file", name)
	}
	size := min(info.Size(), n)
	b := make([]byte, size)
	k, err := f.ReadAt(b, info.Size()-size)
	if k == len(b) {
		err = nil
	}
	return b[:k], err
}
