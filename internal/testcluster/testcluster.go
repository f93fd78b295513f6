// Package testcluster runs a whole Kubernetes test cluster on loopback: a
// real etcd, kube-apiserver and kube-scheduler, with PodSecurity admission
// and RBAC as on a real cluster; nodes that run pods as local processes
// (package agent); an OCI registry for their images; and an S3-protocol
// datastore (package s3test) for the runs.
//
// Up prepares the cluster for dagger's driver as deploy/rbac.yaml tells
// an administrator to: a namespace that enforces the restricted Pod
// Security Standard, the driver's ServiceAccount, Role and RoleBinding in
// it, and a Secret holding the datastore's credentials for the pods. It
// writes a kubeconfig file for the administrator and one for the driver's
// ServiceAccount, so that tests run the driver with the least privilege it
// will have on a real cluster.
//
// The datastore speaks plain HTTP unless Options.TLSDatastore asks for
// HTTPS, with a certificate of a CA made for the cluster: then neither the
// driver nor the pods reach it unless they are handed that CA, the driver
// through its environment (Cluster.DatastoreEnv) and the pods through a
// Secret (Cluster.CASecret), as with an in-house datastore whose CA the
// runner image cannot know.
//
// The control plane's executables are built from the Go module proxy by
// the modules in hack/controlplane, once, and cached in the user's cache
// folder: the first build takes minutes (kube-apiserver: 4 to 9 on two
// cores), later ones nothing. hack/testcluster starts a cluster in the
// background for trying the driver by hand.
package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"

	"github.com/daggerflow/dagger/internal/s3test"
	"github.com/daggerflow/dagger/internal/testcluster/agent"
)

// Names of what Up creates in the cluster for the driver.
const (
	namespace         = "dagger"           // the namespace of the runs' pods
	serviceAccount    = "dagger"           // the driver's, from deploy/rbac.yaml
	credentialsSecret = "dagger-datastore" // the datastore's credentials, for envFrom
	caSecret          = "dagger-ca"        // the datastore's CA, under key ca.crt, with TLSDatastore
	repository        = "dagger"           // the registry's repository of runner images
)

// Options configure a cluster.
type Options struct {
	// Dir is a folder for the cluster's files: logs, etcd's data,
	// certificates, kubeconfig files and the nodes' pods. It must exist;
	// nothing in it is removed.
	Dir string
	// Nodes are the cluster's nodes. If nil, there are two with 4 CPUs,
	// 8 GiB of memory and room for 110 pods each: node-1, and node-2 with
	// an nvidia.com/gpu and the label gpu=true.
	Nodes []agent.Node
	// TLSDatastore makes the datastore speak HTTPS, with a certificate of
	// a CA made for the cluster, rather than plain HTTP.
	TLSDatastore bool
}

// defaultNodes returns the nodes of a cluster whose Options have none.
func defaultNodes() []agent.Node {
	capacity := func(extra corev1.ResourceList) corev1.ResourceList {
		l := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("4"),
			corev1.ResourceMemory: resource.MustParse("8Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
		for name, q := range extra {
			l[name] = q
		}
		return l
	}
	return []agent.Node{
		{Name: "node-1", Capacity: capacity(nil)},
		{
			Name:     "node-2",
			Labels:   map[string]string{"gpu": "true"},
			Capacity: capacity(corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}),
		},
	}
}

// A Cluster is a running test cluster.
type Cluster struct {
	URL    string       // of the API server: https://127.0.0.1:PORT
	Token  string       // a bearer token of system:masters
	Client *http.Client // for URL: it trusts the API server's certificate
	REST   *rest.Config // for client-go, with Token

	Kubeconfig       string // the path of a kubeconfig file with Token
	DriverKubeconfig string // the path of a kubeconfig file of the driver's ServiceAccount
	Namespace        string // the namespace of the runs' pods, in both kubeconfig files

	Registry string // the registry's host:port; it speaks plain HTTP

	Datastore string // the s3:// URL of the runs' datastore
	// DatastoreEnv is the environment, as "NAME=value" strings, in
	// which AWS clients reach the datastore: its credentials, region
	// and endpoint, and settings that keep the user's own AWS
	// configuration out (see s3test.Server.Env); with TLSDatastore,
	// also SSL_CERT_FILE and AWS_CA_BUNDLE set to CAFile, so that they
	// trust the datastore's CA, and only it: the AWS SDKs read the
	// second, which a developer's environment may set, in place of the
	// first.
	DatastoreEnv []string
	// CredentialsSecret is the Secret of Namespace that holds the
	// variables of DatastoreEnv that make sense in a pod, for its
	// containers' envFrom.
	CredentialsSecret string
	// CAFile is, with TLSDatastore, the path of a file that holds the
	// certificate, in PEM, of the CA that signed the datastore's; empty
	// without.
	CAFile string
	// CASecret is, with TLSDatastore, the Secret of Namespace whose key
	// ca.crt holds what CAFile does, for the pods to trust; empty
	// without.
	CASecret string

	s3        *s3test.Server
	closeOnce sync.Once
	closeErr  error
	closers   []func() error // run last first by Close
}

// DatastoreAt returns the URL of a datastore under prefix in the
// cluster's S3 bucket, for a test that keeps its runs apart.
func (c *Cluster) DatastoreAt(prefix string) string { return c.s3.URL(prefix) }

// Start starts a cluster in a folder of tb's and closes it when tb ends;
// it fails tb if the cluster does not come up. It builds what is missing,
// but a test binary had better call Build from TestMain: go test's
// timeout starts with the tests, and a first build can outlast it.
//
// The cluster's processes are killed if the test binary dies.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is like Start, with opts; a Dir left empty is a folder of
// tb's.
func StartWith(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	c, err := Up(tb.Context(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// Up starts a cluster, building the control plane first if it is not
// cached, and returns when the cluster is ready: its nodes registered, and
// the driver's namespace, ServiceAccount and Secret created. ctx bounds
// the start only. If Up fails, it stops what it started.
//
// The processes of the control plane are killed when the thread that
// started them exits, that is with the calling process; the caller must
// Close the cluster to stop them before.
func Up(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Dir == "" {
		return nil, errors.New("testcluster: no Dir")
	}
	nodes := opts.Nodes
	if nodes == nil {
		nodes = defaultNodes()
	}
	bin, err := Build()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Namespace: namespace, CredentialsSecret: credentialsSecret}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if err := c.startControlPlane(ctx, bin, opts.Dir); err != nil {
		return nil, err
	}
	if err := c.startRegistry(); err != nil {
		return nil, err
	}
	if err := c.startDatastore(opts); err != nil {
		return nil, err
	}
	if err := c.prepareNamespace(ctx, opts.Dir); err != nil {
		return nil, err
	}
	a, err := agent.Start(ctx, agent.Config{REST: c.REST, Nodes: nodes, Dir: filepath.Join(opts.Dir, "nodes")})
	if err != nil {
		return nil, fmt.Errorf("testcluster: starting the nodes: %w", err)
	}
	// The nodes stop their pods before the control plane stops.
	c.closers = append(c.closers, a.Close)
	return c, nil
}

// startDatastore starts the S3-protocol server of the runs' datastore and
// sets c's fields about it.
func (c *Cluster) startDatastore(opts Options) error {
	listen := s3test.Listen
	if opts.TLSDatastore {
		listen = s3test.ListenTLS
	}
	s3, err := listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	c.closers = append(c.closers, s3.Close)
	c.s3 = s3
	c.Datastore = s3.URL("dagger")
	for _, kv := range s3.Env() {
		if !strings.HasPrefix(kv, "DAGGER_DATASTORE=") {
			c.DatastoreEnv = append(c.DatastoreEnv, kv)
		}
	}
	if !opts.TLSDatastore {
		return nil
	}
	c.CAFile = filepath.Join(opts.Dir, "datastore-ca.crt")
	if err := os.WriteFile(c.CAFile, s3.CACert, 0o644); err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	c.CASecret = caSecret
	c.DatastoreEnv = append(c.DatastoreEnv, "SSL_CERT_FILE="+c.CAFile, "AWS_CA_BUNDLE="+c.CAFile)
	return nil
}

// Close stops the cluster, once however often it is called: the nodes
// with their pods first, then the datastore and the registry, whose
// contents are lost, then the scheduler, the API server and etcd.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for i := len(c.closers) - 1; i >= 0; i-- {
			errs = append(errs, c.closers[i]())
		}
		c.closers = nil
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Env returns the environment, as "NAME=value" strings, in which the
// dagger command runs its tasks on the cluster as its ServiceAccount:
// KUBECONFIG (the driver's kubeconfig file), DAGGER_NAMESPACE,
// DAGGER_REGISTRY (the repository for runner images),
// DAGGER_CREDENTIALS_SECRET, DAGGER_CA_SECRET with TLSDatastore,
// DAGGER_DATASTORE and the datastore's credentials (DatastoreEnv); and
// DAGGER_TESTCLUSTER_ADMIN_KUBECONFIG, for looking at the whole cluster
// with kubectl --kubeconfig.
func (c *Cluster) Env() []string {
	env := []string{
		"KUBECONFIG=" + c.DriverKubeconfig,
		"DAGGER_TESTCLUSTER_ADMIN_KUBECONFIG=" + c.Kubeconfig,
		"DAGGER_NAMESPACE=" + c.Namespace,
		"DAGGER_REGISTRY=" + c.Registry + "/" + repository,
		"DAGGER_CREDENTIALS_SECRET=" + c.CredentialsSecret,
		"DAGGER_DATASTORE=" + c.Datastore,
	}
	if c.CASecret != "" {
		env = append(env, "DAGGER_CA_SECRET="+c.CASecret)
	}
	return append(env, c.DatastoreEnv...)
}

// Do sends a request to the API server with the admin token.
func (c *Cluster) Do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	return c.Client.Do(req)
}
