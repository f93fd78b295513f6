//go:build azure

package main

import _ "github.com/daggerflow/dagger/datastore/azure" // azblob:// datastores
