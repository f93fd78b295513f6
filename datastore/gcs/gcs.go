// Package gcs links Google Cloud Storage into package datastore: a program
// that imports it, for its side effect, opens gs://BUCKET/PREFIX
// datastores. It is apart because Google's client costs every command of
// the program several milliseconds at start-up; dagger built with -tags
// gcs imports it.
//
// Credentials come from Application Default Credentials:
// $GOOGLE_APPLICATION_CREDENTIALS, gcloud's, or the metadata server of
// the machine or pod (workload identity).
package gcs

import (
	_ "gocloud.dev/blob/gcsblob" // the driver of gs:// URLs

	"github.com/daggerflow/dagger/datastore/internal/cloud"
)

func init() {
	cloud.Register("gs")
}
