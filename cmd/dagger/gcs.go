//go:build gcs

package main

import _ "github.com/daggerflow/dagger/datastore/gcs" // gs:// datastores
