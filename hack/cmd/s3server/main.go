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
	"context"
	"errors"
	"log"
	"time"

	"github.com/daggerflow/dagger/hack/internal/background"
	"github.com/daggerflow/dagger/internal/s3test"
)

func main() {
	background.Command{
		Name:         "s3server",
		Dir:          "s3server",
		StartTimeout: 10 * time.Second,
		StopTimeout:  10 * time.Second,
		Serve:        serve,
		// Variables of s3test.Server.Env that would hide the user's own
		// AWS configuration from the shell, which the server does not
		// need.
		Hidden: []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED"},
	}.Main()
}

// serve runs the server until ctx is done.
func serve(ctx context.Context, _ string, ready func(env []string, url string) error) error {
	srv, err := s3test.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	err = ready(srv.Env(), srv.Endpoint)
	if err == nil {
		log.Printf("listening on %s", srv.Endpoint)
		<-ctx.Done()
	}
	return errors.Join(err, srv.Close())
}
