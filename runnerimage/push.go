package runnerimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A PushOption changes how Push talks to the registry.
type PushOption func(*pushOptions)

type pushOptions struct {
	insecure bool
}

// Insecure lets Push use plain HTTP with a registry that is not on a
// loopback address, such as a registry inside a test cluster's network.
func Insecure() PushOption {
	return func(o *pushOptions) { o.insecure = true }
}

// Push makes sure the image is in the repository repo, such as
// "ghcr.io/acme/runner", and returns a reference to it by tag and digest,
// "repo:tag@sha256:...", for a pod's image. It first asks the registry for
// the tag, and uploads the image only if the registry does not have it.
//
// Push uses the credentials that docker and other tools use (docker's
// config.json and its credential helpers). It talks HTTPS, or plain HTTP
// to a registry on a loopback address or with the Insecure option.
func (im *Image) Push(ctx context.Context, repo string, opts ...PushOption) (string, error) {
	var o pushOptions
	for _, opt := range opts {
		opt(&o)
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		return "", fmt.Errorf("runnerimage: %w", err)
	}
	insecure := o.insecure || isLoopback(r.RegistryStr())
	if insecure {
		if r, err = name.NewRepository(repo, name.Insecure); err != nil {
			return "", fmt.Errorf("runnerimage: %w", err)
		}
	}
	tag := r.Tag(im.tag)
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(transportFor(insecure)),
	}

	// The tag names the executable, and the image is a function of the
	// executable alone, so a registry that has the tag has the image.
	desc, err := remote.Head(tag, ropts...)
	if err == nil {
		return tag.String() + "@" + desc.Digest.String(), nil
	}
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		return "", fmt.Errorf("runnerimage: looking for %s: %w", tag, err)
	}

	// The layer is compressed once, to a file: go-containerregistry reads
	// it more than once (for its digest, then its upload), and holding it
	// in memory would cost a third of the executable's size.
	layer, err := os.CreateTemp("", "dagger-layer-*.tar.gz")
	if err != nil {
		return "", fmt.Errorf("runnerimage: %w", err)
	}
	defer os.Remove(layer.Name())
	err = im.writeLayerFile(layer)
	if cerr := layer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("runnerimage: building %s: %w", tag, err)
	}
	img, err := im.build(layer.Name())
	if err != nil {
		return "", fmt.Errorf("runnerimage: building %s: %w", tag, err)
	}
	if err := remote.Write(tag, img, ropts...); err != nil {
		return "", fmt.Errorf("runnerimage: pushing %s: %w", tag, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("runnerimage: %w", err)
	}
	return tag.String() + "@" + digest.String(), nil
}

// build returns the OCI image: one gzipped tar layer, the file layer
// that writeLayerFile wrote, holding the executable at Path, and a config
// that runs it as UID.
func (im *Image) build(layerPath string) (v1.Image, error) {
	epoch := epoch()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return os.Open(layerPath)
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	id := strconv.Itoa(UID)
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Created:      v1.Time{Time: epoch},
		OS:           "linux",
		Architecture: im.goarch,
		Config: v1.Config{
			Entrypoint: []string{Path},
			User:       id + ":" + id,
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "runnerimage: executable at " + Path},
	})
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// writeLayerFile writes the layer to w: a gzipped tar holding the
// executable at Path. It fails if the executable is no longer the file
// the image was made from.
func (im *Image) writeLayerFile(w io.Writer) error {
	exe, err := os.Open(im.path)
	if err != nil {
		return err
	}
	defer exe.Close()
	return im.writeLayer(w, exe)
}

// epoch returns the time of everything in the image, so that its digest
// depends on the executable alone: 1970 rather than Go's zero time, as
// SOURCE_DATE_EPOCH=0 gives in other reproducible builds.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// writeLayer writes the layer, a gzipped tar holding the executable read
// from exe at Path, to w, and fails if exe is no longer the file the
// image was made from.
func (im *Image) writeLayer(w io.Writer, exe io.Reader) error {
	// A zero gzip header has no name and no time.
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     Path[1:],
		Mode:     0o555, // owned by root: the runner cannot change itself
		Size:     im.size,
		ModTime:  epoch(),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(tw, io.TeeReader(io.LimitReader(exe, im.size), h)); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), im.sum[:]) {
		return fmt.Errorf("%s changed since its image was made", im.path)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// isLoopback reports whether the registry host[:port] is on this machine.
func isLoopback(registry string) bool {
	host, _, err := net.SplitHostPort(registry)
	if err != nil {
		host = registry
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// transportFor returns the transport to a registry. go-containerregistry
// falls back to plain HTTP not only for loopback registries but also for
// private (RFC 1918) addresses and .local names, which would send
// credentials in the clear across a network: unless insecure, refuse it.
func transportFor(insecure bool) http.RoundTripper {
	if insecure {
		return remote.DefaultTransport
	}
	return httpsOnly{remote.DefaultTransport}
}

type httpsOnly struct{ next http.RoundTripper }

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			req.Body.Close() // as a RoundTripper must, even on error
		}
		return nil, fmt.Errorf("plain HTTP to %s refused (use the Insecure option to allow it)", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}
