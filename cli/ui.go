package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/history"
	"github.com/daggerflow/dagger/ui"
)

func uiCommand() *urfave.Command {
	return &urfave.Command{
		Name:  "ui",
		Usage: "serve a web page of the runs, live as they run",
		Description: "UI serves, at --addr, a web page of the runs recorded in the store: the runs,\n" +
			"each run's step graph coloured as its tasks run, statistics of each step, its\n" +
			"tasks, their logs and artifacts; and the JSON API the page reads, under /api/.\n" +
			"It only reads the store. On an address other than loopback it requires a\n" +
			"token: --token, or one it makes up and prints in the URL. Ctrl-C stops it.\n" +
			"The store is --store, else $DAGGER_HOME, else .daggerflow in the current\n" +
			"directory.",
		Flags: []urfave.Flag{
			&urfave.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "listen on `HOST:PORT`"},
			&urfave.StringFlag{Name: "store", Usage: "read the runs recorded in `DIR`"},
			&urfave.StringFlag{Name: "token", Usage: "require `TOKEN` of every request (made up when --addr is not loopback)"},
		},
		Action: serveUI,
	}
}

// serveUI is the action of dagger ui.
func serveUI(c *urfave.Context) error {
	if c.NArg() > 0 {
		return &usageError{cmd: c.Command.HelpName, msg: fmt.Sprintf("takes no arguments, not %q", c.Args().First())}
	}
	addr, token := c.String("addr"), c.String("token")
	if token == "" && !ui.IsLoopback(addr) {
		token = ui.NewToken()
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, dir, err := openStore(ctx, c.String("store"), false)
	if errors.Is(err, history.ErrNoStore) {
		return &exitError{code: exitInvalid, err: fmt.Errorf("%w: run a flow first, or give --store", err)}
	}
	if err != nil {
		return failed(err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return failed(err)
	}
	srv := &http.Server{
		Handler:           ui.New(st, ui.Options{Token: token}),
		ReadHeaderTimeout: 10 * time.Second,
		// Requests end with the server, event streams included.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	u := url.URL{Scheme: "http", Host: printedHost(ln.Addr()), Path: "/"}
	if token != "" {
		u.RawQuery = url.Values{"token": {token}}.Encode()
	}
	if _, err := fmt.Fprintf(c.App.Writer, "dagger ui: runs of %s at %s (Ctrl-C stops)\n", dir, u.String()); err != nil {
		ln.Close()
		return failed(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return failed(err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	return nil
}

// printedHost is the host:port of the URL dagger ui prints for a listener
// on addr: on every address (0.0.0.0 or ::), this machine's name, which
// others can reach it by, rather than an address no browser visits.
func printedHost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}
