// Package azure links Azure Blob Storage into package datastore: a program
// that imports it, for its side effect, opens azblob://CONTAINER/PREFIX
// datastores. It is apart because Azure's client adds to the start-up time
// of every command of the program; dagger built with -tags azure imports
// it.
//
// The account comes from $AZURE_STORAGE_ACCOUNT, and credentials from
// $AZURE_STORAGE_KEY, $AZURE_STORAGE_SAS_TOKEN, or Azure's default
// credential chain (environment, workload identity, managed identity).
package azure

import (
	_ "gocloud.dev/blob/azureblob" // the driver of azblob:// URLs

	"github.com/daggerflow/dagger/datastore/internal/cloud"
)

func init() {
	cloud.Register("azblob")
}
