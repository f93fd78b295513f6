//go:build unix

// Command testcluster runs the Kubernetes test cluster of
// internal/testcluster in the background, for running dagger's tasks on
// Kubernetes by hand:
//
//	eval "$(hack/testcluster up)"   # start it, or find it running, and set the environment
//	hack/testcluster down           # stop it
//
// "up" prints export lines for KUBECONFIG (a kubeconfig file of the
// driver's ServiceAccount, whose namespace is the runs'), DAGGER_NAMESPACE,
// DAGGER_REGISTRY, DAGGER_CREDENTIALS_SECRET, DAGGER_DATASTORE and the
// datastore's AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
// and AWS_REGION, and DAGGER_TESTCLUSTER_ADMIN_KUBECONFIG, a kubeconfig
// file of the cluster's administrator (kubectl --kubeconfig). The first
// "up" on a machine builds the control plane, which takes minutes.
//
// The cluster listens on free ports of 127.0.0.1. Its registry and
// datastore keep their contents in memory, and its etcd in a folder that
// the next "up" empties, so everything is lost when it stops. Its state
// (process ID, environment, logs, the cluster's files) is in
// ${XDG_CACHE_HOME:-$HOME/.cache}/dagger/testcluster/run.
package main

import (
	"context"
	"errors"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/daggerflow/dagger/hack/internal/background"
	"github.com/daggerflow/dagger/internal/testcluster"
)

func main() {
	background.Command{
		Name: "testcluster",
		Dir:  "testcluster/run",
		// The cluster is ready once its executables are built (by
		// Prepare) and its servers answer; it stops once the nodes have
		// stopped their pods and each server has had seconds to exit.
		StartTimeout: 2 * time.Minute,
		StopTimeout:  time.Minute,
		// Built here, where its progress shows, rather than in the
		// background under StartTimeout.
		Prepare: func() error {
			_, err := testcluster.Build()
			return err
		},
		Serve: serve,
		// Variables of testcluster.Cluster.Env that would hide the user's
		// own AWS configuration from the shell, which the cluster's
		// datastore does not need.
		Hidden: []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"},
	}.Main()
}

// serve runs the cluster until ctx is done.
func serve(ctx context.Context, dir string, ready func(env []string, url string) error) error {
	// The files of a cluster that stopped, or died, are of no use to
	// this one: etcd's data would even bring its objects back.
	clusterDir := filepath.Join(dir, "cluster")
	if err := os.RemoveAll(clusterDir); err != nil {
		return err
	}
	if err := os.Mkdir(clusterDir, 0o700); err != nil {
		return err
	}
	c, err := testcluster.Up(ctx, testcluster.Options{Dir: clusterDir})
	if err != nil {
		return err
	}
	err = ready(c.Env(), c.URL)
	if err == nil {
		log.Printf("API server %s, registry %s, datastore %s; files in %s", c.URL, c.Registry, c.Datastore, clusterDir)
		<-ctx.Done()
	}
	return errors.Join(err, c.Close())
}
