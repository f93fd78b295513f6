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
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/daggerflow/dagger/internal/testcluster"
)

// hidden are the variables of testcluster.Cluster.Env that "up" does not
// print: they would hide the user's own AWS configuration from the shell,
// which the cluster's datastore does not need.
var hidden = []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"}

// Timeouts of "up" waiting for the cluster to be ready (its executables
// already built) and of "down" waiting for it to stop: the nodes stop
// their pods, then each server has seconds to exit.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = time.Minute
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("testcluster: ")
	if len(os.Args) != 2 {
		log.Fatal("usage: testcluster up|down")
	}
	dir, err := stateDir()
	if err != nil {
		log.Fatal(err)
	}
	switch os.Args[1] {
	case "up":
		err = up(dir)
	case "down":
		err = down(dir)
	case "serve": // the background process that "up" starts
		err = serve(dir)
	default:
		err = fmt.Errorf("unknown command %q: want up or down", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

func stateDir() (string, error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(cache, "dagger", "testcluster", "run")
	return dir, os.MkdirAll(dir, 0o700) // the environment file holds secrets
}

// running returns the process ID and environment file of the cluster if
// it is running.
func running(dir string) (pid int, env []byte, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0, nil, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0, nil, false
	}
	env, err = os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		return 0, nil, false
	}
	// A process of that ID may be another after a reboot: check that
	// the API server answers, too.
	b, err = os.ReadFile(filepath.Join(dir, "apiserver"))
	if err != nil {
		return 0, nil, false
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, nil, false
	}
	c, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return 0, nil, false
	}
	c.Close()
	return pid, env, true
}

func up(dir string) error {
	if _, env, ok := running(dir); ok {
		_, err := os.Stdout.Write(env)
		return err
	}
	clean(dir)
	// Built here, where its progress shows, rather than in the
	// background under startTimeout.
	if _, err := testcluster.Build(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "serve")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own session, so that it outlives this process and the
	// terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(startTimeout)
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("cluster exited (%v): %s", err, out)
		case <-deadline:
			// SIGTERM lets it stop the servers it started.
			cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("cluster did not start within %v; see %s", startTimeout, logFile.Name())
		case <-time.After(100 * time.Millisecond):
		}
		if pid, env, ok := running(dir); ok && pid == cmd.Process.Pid {
			_, err := os.Stdout.Write(env)
			return err
		}
	}
}

func down(dir string) error {
	pid, _, ok := running(dir)
	if !ok {
		clean(dir)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for deadline := time.Now().Add(stopTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			clean(dir)
			return nil
		}
	}
	return fmt.Errorf("cluster (process %d) did not stop within %v", pid, stopTimeout)
}

// clean removes the state of a cluster that is not running.
func clean(dir string) {
	for _, name := range []string{"pid", "env", "apiserver"} {
		os.Remove(filepath.Join(dir, name))
	}
}

// serve runs the cluster until it receives SIGTERM or SIGINT.
func serve(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
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
	var env strings.Builder
	for _, kv := range c.Env() {
		name, value, _ := strings.Cut(kv, "=")
		if !slices.Contains(hidden, name) {
			fmt.Fprintf(&env, "export %s=%s\n", name, shellQuote(value))
		}
	}
	err = errors.Join(
		writeFile(filepath.Join(dir, "env"), env.String()),
		writeFile(filepath.Join(dir, "apiserver"), c.URL+"\n"),
		// Last, as "up" takes the process ID for the sign of a
		// cluster ready.
		writeFile(filepath.Join(dir, "pid"), strconv.Itoa(os.Getpid())+"\n"),
	)
	if err == nil {
		log.Printf("API server %s, registry %s, datastore %s; files in %s", c.URL, c.Registry, c.Datastore, clusterDir)
		<-ctx.Done()
	}
	return errors.Join(err, c.Close())
}

// shellQuote quotes s for a POSIX shell: a datastore's URL holds ? and &.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeFile writes a file atomically, so that "up" never reads half of it.
func writeFile(name, content string) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
