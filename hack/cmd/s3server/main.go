//go:build unix

// Command s3server runs the S3-protocol test server of internal/s3test in
// the background, for trying remote datastores by hand:
//
//	eval "$(hack/s3server up)"   # start it, or find it running, and set the environment
//	hack/s3server down           # stop it
//
// "up" prints export lines for DAGGER_DATASTORE, AWS_ENDPOINT_URL_S3,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION. The server
// listens on a free port of 127.0.0.1 and keeps objects in memory, so they
// are lost when it stops. Its state (process ID, environment, log) is in
// ${XDG_CACHE_HOME:-$HOME/.cache}/dagger/s3server.
package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/daggerflow/dagger/internal/s3test"
)

// printed are the variables that "up" prints: those a shell needs to reach
// the server, and not those of s3test.Server.Env that would hide the
// user's own AWS configuration from that shell.
var printed = []string{"DAGGER_DATASTORE", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}

// startTimeout bounds how long "up" waits for the server to listen and
// "down" for it to exit.
const startTimeout = 10 * time.Second

func main() {
	log.SetFlags(0)
	log.SetPrefix("s3server: ")
	if len(os.Args) != 2 {
		log.Fatal("usage: s3server up|down")
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
	dir := filepath.Join(cache, "dagger", "s3server")
	return dir, os.MkdirAll(dir, 0o700) // the environment file holds a secret
}

// running returns the process ID and environment file of the server if
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
	// the server answers, too.
	for line := range strings.Lines(string(env)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export AWS_ENDPOINT_URL_S3="); ok {
			u, err := url.Parse(strings.Trim(v, "'"))
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
	}
	return 0, nil, false
}

func up(dir string) error {
	if _, env, ok := running(dir); ok {
		_, err := os.Stdout.Write(env)
		return err
	}
	clean(dir)
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
			return fmt.Errorf("server exited (%v): %s", err, out)
		case <-deadline:
			cmd.Process.Kill()
			return fmt.Errorf("server did not start within %v; see %s", startTimeout, logFile.Name())
		case <-time.After(50 * time.Millisecond):
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
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			clean(dir)
			return nil
		}
	}
	return fmt.Errorf("server (process %d) did not stop within %v", pid, startTimeout)
}

// clean removes the state of a server that is not running.
func clean(dir string) {
	for _, name := range []string{"pid", "env"} {
		os.Remove(filepath.Join(dir, name))
	}
}

// serve runs the server until it receives SIGTERM or SIGINT.
func serve(dir string) error {
	srv, err := s3test.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	var env strings.Builder
	for _, kv := range srv.Env() {
		name, value, _ := strings.Cut(kv, "=")
		for _, p := range printed {
			if name == p {
				fmt.Fprintf(&env, "export %s='%s'\n", name, value)
			}
		}
	}
	err = errors.Join(
		writeFile(filepath.Join(dir, "env"), env.String()),
		writeFile(filepath.Join(dir, "pid"), strconv.Itoa(os.Getpid())+"\n"),
	)
	if err == nil {
		log.Printf("listening on %s", srv.Endpoint)
		<-stop
	}
	return errors.Join(err, srv.Close())
}

// writeFile writes a file atomically, so that "up" never reads half of it.
func writeFile(name, content string) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
