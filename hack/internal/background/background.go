//go:build unix

// Package background runs a test service of dagger in a background process,
// for the hack commands that start and stop one by hand:
//
//	eval "$(hack/NAME up)"   # start it, or find it running, and set the environment
//	hack/NAME down           # stop it
//
// "up" prints the service's environment as export lines: that of the
// background process if one runs, or else of one that it starts, the
// command's own executable with the argument "serve" in a session of its
// own, once that process has written its state (process ID, environment,
// URL; and its log) in a folder of ${XDG_CACHE_HOME:-$HOME/.cache}/dagger.
package background

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
)

// A Command is a command that runs a service in the background.
type Command struct {
	// Name is the command's name, for its usage and log lines.
	Name string
	// Dir is the state folder, below ${XDG_CACHE_HOME:-$HOME/.cache}/dagger.
	Dir string
	// StartTimeout bounds how long "up" waits for the service to be
	// ready, and StopTimeout how long "down" waits for it to exit.
	StartTimeout, StopTimeout time.Duration
	// Prepare, if not nil, runs in "up" before it starts the background
	// process: for work whose progress is to show, and which is not to
	// count in StartTimeout.
	Prepare func() error
	// Serve runs the service, in the background process, until ctx is
	// done, on SIGTERM or SIGINT. Once the service is ready, it calls
	// ready with the service's environment, as "NAME=value" strings, and
	// its URL, whose host answers on TCP as long as it runs. If ready
	// fails, Serve stops the service and returns the error.
	Serve func(ctx context.Context, dir string, ready func(env []string, url string) error) error
	// Hidden are the variables of the environment that "up" does not
	// print.
	Hidden []string
}

// pollInterval is how often "up" and "down" look whether the background
// process is ready or gone.
const pollInterval = 100 * time.Millisecond

// Main runs the command with the arguments of os.Args, and exits with the
// error, if any, on standard error.
func (c Command) Main() {
	log.SetFlags(0)
	log.SetPrefix(c.Name + ": ")
	if len(os.Args) != 2 {
		log.Fatalf("usage: %s up|down", c.Name)
	}
	dir, err := c.stateDir()
	if err != nil {
		log.Fatal(err)
	}
	switch os.Args[1] {
	case "up":
		err = c.up(dir)
	case "down":
		err = c.down(dir)
	case "serve": // the background process that "up" starts
		err = c.serve(dir)
	default:
		err = fmt.Errorf("unknown command %q: want up or down", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

func (c Command) stateDir() (string, error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(cache, "dagger", c.Dir)
	return dir, os.MkdirAll(dir, 0o700) // the environment file holds secrets
}

// running returns the process ID and environment file of the background
// process if it is running.
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
	// the service answers, too.
	b, err = os.ReadFile(filepath.Join(dir, "url"))
	if err != nil {
		return 0, nil, false
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, nil, false
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return 0, nil, false
	}
	conn.Close()
	return pid, env, true
}

func (c Command) up(dir string) error {
	if _, env, ok := running(dir); ok {
		_, err := os.Stdout.Write(env)
		return err
	}
	clean(dir)
	if c.Prepare != nil {
		if err := c.Prepare(); err != nil {
			return err
		}
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
	deadline := time.After(c.StartTimeout)
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("background process exited (%w): %s", err, out)
		case <-deadline:
			// SIGTERM lets it stop what it started.
			cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("background process did not start within %v; see %s", c.StartTimeout, logFile.Name())
		case <-time.After(pollInterval):
		}
		if pid, env, ok := running(dir); ok && pid == cmd.Process.Pid {
			_, err := os.Stdout.Write(env)
			return err
		}
	}
}

func (c Command) down(dir string) error {
	pid, _, ok := running(dir)
	if !ok {
		clean(dir)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for deadline := time.Now().Add(c.StopTimeout); time.Now().Before(deadline); time.Sleep(pollInterval) {
		if syscall.Kill(pid, 0) != nil {
			clean(dir)
			return nil
		}
	}
	return fmt.Errorf("background process %d did not stop within %v", pid, c.StopTimeout)
}

// clean removes the state of a background process that is not running.
func clean(dir string) {
	for _, name := range []string{"pid", "env", "url"} {
		os.Remove(filepath.Join(dir, name))
	}
}

// serve runs the service until it receives SIGTERM or SIGINT.
func (c Command) serve(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return c.Serve(ctx, dir, func(env []string, serviceURL string) error {
		var exports strings.Builder
		for _, kv := range env {
			name, value, _ := strings.Cut(kv, "=")
			if !slices.Contains(c.Hidden, name) {
				fmt.Fprintf(&exports, "export %s=%s\n", name, shellQuote(value))
			}
		}
		return errors.Join(
			writeFile(filepath.Join(dir, "env"), exports.String()),
			writeFile(filepath.Join(dir, "url"), serviceURL+"\n"),
			// Last, as "up" takes the process ID for the sign of a
			// service ready.
			writeFile(filepath.Join(dir, "pid"), strconv.Itoa(os.Getpid())+"\n"),
		)
	})
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
