package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// stopTimeout bounds how long a server of the control plane has to exit
// on SIGTERM before it is killed: the API server may take longer.
const stopTimeout = 5 * time.Second

// readyTimeout bounds how long a server has to become ready.
const readyTimeout = time.Minute

// A process is a server of the control plane, started by startProcess.
type process struct {
	name string
	cmd  *osexec.Cmd
	log  string        // the file of its output
	done chan struct{} // closed when it has exited
}

// startProcess starts the executable name of bin with args, logging to
// name.log in dir. The process is killed when the thread that started it
// exits, so that it never outlives a test binary that dies.
func startProcess(bin, dir, name string, args ...string) (*process, error) {
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("testcluster: %w", err)
	}
	// The process writes to its own copy of the file descriptor.
	defer logf.Close()
	p.cmd = osexec.Command(filepath.Join(bin, name), args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testcluster: starting %s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop stops the process: SIGTERM, then SIGKILL after stopTimeout. Its
// exit status says only how it was stopped, so stop returns no error.
func (p *process) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// waitFor calls ready until it succeeds, for at most readyTimeout, and
// fails at once, with the end of the process's output, if it exits.
func (p *process) waitFor(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			out, _ := os.ReadFile(p.log)
			return fmt.Errorf("testcluster: %s exited; the end of its output:\n%s", p.name, out[max(0, len(out)-4096):])
		case <-ctx.Done():
			return fmt.Errorf("testcluster: %s is not ready (%w): %w", p.name, context.Cause(ctx), err)
		case <-tick.C:
		}
	}
}

// statusOK returns the error of a request, or its status if it is not
// 200 OK, for waitFor.
func statusOK(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// freePort returns a port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testcluster: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomHex returns 32 random hexadecimal digits, for a token.
func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
