package agent

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestExpand(t *testing.T) {
	env := [][2]string{{"A", "a"}, {"B", "b"}, {"A", "a2"}}
	for _, test := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"$(A)", "a2"}, // the last of a name wins
		{"$(A)$(B)", "a2b"},
		{"x$(B)y", "xby"},
		{"$$(A)", "$(A)"},
		{"$$", "$"},
		{"$$$", "$$"},
		{"$", "$"},
		{"a$b", "a$b"},
		{"$(NOPE)", "$(NOPE)"},
		{"$()", "$()"},
		{"$(A", "$(A"},
		{"$($(A))", "$($(A))"},
	} {
		if got := expand(test.in, lookupIn(env)); got != test.want {
			t.Errorf("expand(%q) = %q, want %q", test.in, got, test.want)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "X=image", "Y=image"}, [][2]string{{"X", "kube"}, {"Z", "z"}})
	want := []string{"PATH=/bin", "X=kube", "Y=image", "Z=z"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := mergeEnv(nil, nil); len(got) != 1 || got[0] != "PATH="+defaultPath {
		t.Errorf("mergeEnv(nil, nil) = %q, want the default PATH", got)
	}
}

func TestTail(t *testing.T) {
	for _, test := range []struct {
		data string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 0, ""},
		{"a\nb\nc\n", 1, "c\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\nc", 2, "b\nc"},
		{"\n\n", 1, "\n"},
	} {
		if got := test.data[tail([]byte(test.data), test.n):]; got != test.want {
			t.Errorf("tail(%q, %d) = %q, want %q", test.data, test.n, got, test.want)
		}
	}
}

// A file is an entry of a test tar.
type file struct {
	name, link string
	typ        byte
}

func TestUntarRefusesEscapes(t *testing.T) {
	for _, test := range []struct {
		name  string
		files []file
	}{
		{"dot-dot", []file{{name: "../x", typ: tar.TypeReg}}},
		{"absolute dot-dot", []file{{name: "/../x", typ: tar.TypeReg}}},
		{"inner dot-dot", []file{{name: "a/../../x", typ: tar.TypeReg}}},
		{"through an absolute link", []file{{name: "l", link: "/", typ: tar.TypeSymlink}, {name: "l/x", typ: tar.TypeReg}}},
		{"through a relative link", []file{{name: "l", link: "../..", typ: tar.TypeSymlink}, {name: "l/x", typ: tar.TypeReg}}},
		{"hard link out", []file{{name: "h", link: "../outside", typ: tar.TypeLink}}},
	} {
		t.Run(test.name, func(t *testing.T) {
			dir := t.TempDir()
			rootfs := filepath.Join(dir, "a", "b", "rootfs")
			if err := os.MkdirAll(rootfs, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "a", "b", "outside"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			root, err := os.OpenRoot(rootfs)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			if err := untar(root, tar.NewReader(tarOf(t, test.files)), false); err == nil {
				t.Error("untar succeeded")
			}
			for _, name := range []string{"x", "a/x", "a/b/x"} {
				if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
					t.Errorf("untar wrote %s, outside the root", name)
				}
			}
		})
	}
}

func TestUntar(t *testing.T) {
	files := []file{
		{name: "./", typ: tar.TypeDir},
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/tool", typ: tar.TypeReg},
		{name: "usr/bin/tool2", typ: tar.TypeReg}, // with no entry for its folder
		{name: "sbin", link: "/bin", typ: tar.TypeSymlink},
		{name: "bin/same", link: "bin/tool", typ: tar.TypeLink},
		{name: "dev/null", typ: tar.TypeChar},
	}
	rootfs := t.TempDir()
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := untar(root, tar.NewReader(tarOf(t, files)), false); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(rootfs, func(path string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(rootfs, path)
		got = append(got, rel+" "+d.Type().String())
		return err
	})
	want := []string{". d---------", "bin d---------", "bin/same ----------", "bin/tool ----------", "dev d---------",
		"sbin L---------", "usr d---------", "usr/bin d---------", "usr/bin/tool2 ----------"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	a, _ := os.Stat(filepath.Join(rootfs, "bin/tool"))
	b, _ := os.Stat(filepath.Join(rootfs, "bin/same"))
	if !os.SameFile(a, b) {
		t.Error("the hard link is another file")
	}
	if got := a.Mode().Perm(); got != 0o755 {
		t.Errorf("mode %v, want 0755 without setuid", got)
	}
}

// tarOf returns a tar of files, each regular file holding its name, with
// mode 04755.
func tarOf(t *testing.T, files []file) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Linkname: f.link, Typeflag: f.typ, Mode: 0o4755}
		if f.typ == tar.TypeReg {
			hdr.Size = int64(len(f.name))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if f.typ == tar.TypeReg {
			tw.Write([]byte(f.name))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func TestIdentity(t *testing.T) {
	pod := func(sc *corev1.PodSecurityContext, csc *corev1.SecurityContext) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{
			SecurityContext: sc,
			Containers:      []corev1.Container{{Name: "c", SecurityContext: csc}},
		}}
	}
	for _, test := range []struct {
		name    string
		pod     *corev1.Pod
		user    string // the image's
		want    *syscall.Credential
		wantErr string
	}{
		{"image's", pod(nil, nil), "65532:65532", &syscall.Credential{Uid: 65532, Gid: 65532}, ""},
		{"image's uid alone", pod(nil, nil), "7", &syscall.Credential{Uid: 7}, ""},
		{"root by default", pod(nil, nil), "", &syscall.Credential{}, ""},
		{"pod's over image's", pod(&corev1.PodSecurityContext{RunAsUser: new(int64(1)), RunAsGroup: new(int64(2))}, nil), "65532:65532",
			&syscall.Credential{Uid: 1, Gid: 2}, ""},
		{"container's over pod's", pod(&corev1.PodSecurityContext{RunAsUser: new(int64(1)), FSGroup: new(int64(9)), SupplementalGroups: []int64{8}},
			&corev1.SecurityContext{RunAsUser: new(int64(3))}), "",
			&syscall.Credential{Uid: 3, Groups: []uint32{8, 9}}, ""},
		{"non-root", pod(&corev1.PodSecurityContext{RunAsNonRoot: new(true)}, nil), "0",
			nil, "container has runAsNonRoot and image will run as root"},
		{"non-root by name", pod(nil, &corev1.SecurityContext{RunAsNonRoot: new(true)}), "nobody",
			nil, "cannot verify user is non-root"},
		{"user by name", pod(nil, nil), "nobody", nil, "only numeric users"},
	} {
		t.Run(test.name, func(t *testing.T) {
			got, err := identity(test.pod, &test.pod.Spec.Containers[0], test.user)
			if test.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.wantErr) {
					t.Fatalf("error %v, want one with %q", err, test.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(test.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
