package runnerimage

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Path is where the image holds the executable, and its entrypoint.
const Path = "/dagger"

// UID is the user and group the image runs as: not root, so that pods meet
// the restricted Pod Security Standard, and numeric, so that the kubelet can
// check runAsNonRoot without a passwd file. 65532 is the "nonroot" user of
// distroless images.
const UID = 65532

// An Image is the runner image of one executable, ready to push. It holds
// the executable's path, not its content: an image the registry has
// already costs no more than hashing the file, and one it lacks is read
// from the file as it is uploaded.
type Image struct {
	path   string
	size   int64
	sum    [sha256.Size]byte // of the file, which the layer checks it still has
	goarch string
	tag    string
}

// FromExecutable reads the executable at path, such as the one
// os.Executable names, and returns its runner image for nodes of
// architecture goarch, such as "amd64". It refuses an executable that
// cannot run alone in an image on such a node: one that is not a Linux ELF
// executable, is dynamically linked, or is built for another architecture.
// The error then says how to build one that can.
func FromExecutable(path, goarch string) (*Image, error) {
	if goarch == "" {
		return nil, errors.New("runnerimage: no architecture given for the nodes (a GOARCH such as amd64)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("runnerimage: %w", err)
	}
	defer f.Close()
	if err := check(path, f, goarch); err != nil {
		return nil, fmt.Errorf("runnerimage: %w", err)
	}
	h := sha256.New()
	size, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("runnerimage: reading %s: %w", path, err)
	}
	im := &Image{path: path, size: size, goarch: goarch}
	h.Sum(im.sum[:0])
	im.tag = "sha256-" + hex.EncodeToString(im.sum[:8])
	return im, nil
}

// Tag returns the image's tag, "sha256-" and the first 16 hexadecimal digits
// of the SHA-256 of the executable.
func (im *Image) Tag() string { return im.tag }

// check returns why the file exe, at path, cannot be the only file of an
// image run on goarch nodes, or nil if it can.
func check(path string, exe io.ReaderAt, goarch string) error {
	build := "build it with CGO_ENABLED=0 GOOS=linux GOARCH=" + goarch + " go build"
	magic := make([]byte, 4)
	if n, _ := exe.ReadAt(magic, 0); !bytes.Equal(magic[:n], []byte(elf.ELFMAG)) {
		return fmt.Errorf("%s is %s, not a Linux executable: %s", path, format(magic[:n]), build)
	}
	f, err := elf.NewFile(exe)
	if err != nil {
		return fmt.Errorf("%s is not a valid ELF file (%w): %s", path, err, build)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is an ELF file of type %v, not an executable: %s", path, f.Type, build)
	}
	// Go marks the executables it builds for BSDs with their ABI; Linux
	// ones, and most others, carry none.
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("%s is built for another system (%v): %s", path, f.OSABI, build)
	}
	if arch := elfGOARCH(f); arch != goarch {
		return fmt.Errorf("%s is built for %s but the nodes run %s: %s", path, arch, goarch, build)
	}
	needs, err := dynamicNeeds(f)
	if err != nil {
		return fmt.Errorf("%s: reading its ELF headers: %w", path, err)
	}
	if len(needs) > 0 {
		return fmt.Errorf("%s is dynamically linked (it needs %s) and the image holds nothing else: %s",
			path, strings.Join(needs, ", "), build)
	}
	return nil
}

// format names the format of a file that is not ELF, from its first
// bytes.
func format(exe []byte) string {
	switch {
	case bytes.HasPrefix(exe, []byte{0xfe, 0xed, 0xfa, 0xce}), bytes.HasPrefix(exe, []byte{0xce, 0xfa, 0xed, 0xfe}),
		bytes.HasPrefix(exe, []byte{0xfe, 0xed, 0xfa, 0xcf}), bytes.HasPrefix(exe, []byte{0xcf, 0xfa, 0xed, 0xfe}),
		bytes.HasPrefix(exe, []byte{0xca, 0xfe, 0xba, 0xbe}):
		return "a Mach-O (macOS) executable"
	case bytes.HasPrefix(exe, []byte("MZ")):
		return "a PE (Windows) executable"
	case bytes.HasPrefix(exe, []byte("#!")):
		return "a script"
	}
	return "an unknown kind of file"
}

// dynamicNeeds returns what f needs from a dynamic loader: its interpreter
// (PT_INTERP) and its libraries (DT_NEEDED).
func dynamicNeeds(f *elf.File) ([]string, error) {
	var needs []string
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("reading PT_INTERP: %w", err)
		}
		needs = append(needs, string(bytes.TrimRight(b, "\x00")))
	}
	libs, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		return nil, fmt.Errorf("reading DT_NEEDED: %w", err)
	}
	return append(needs, libs...), nil
}

// elfGOARCH returns the GOARCH of the machine f is built for, or the ELF
// name of the machine if Go has no name for it.
func elfGOARCH(f *elf.File) string {
	le := f.ByteOrder == binary.LittleEndian
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_386:
		return "386"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_LOONGARCH:
		return "loong64"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_PPC64:
		if le {
			return "ppc64le"
		}
		return "ppc64"
	case elf.EM_MIPS:
		arch := "mips"
		if f.Class == elf.ELFCLASS64 {
			arch = "mips64"
		}
		if le {
			arch += "le"
		}
		return arch
	}
	return f.Machine.String()
}
