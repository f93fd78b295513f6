package gcs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/daggerflow/dagger/datastore"
	_ "github.com/daggerflow/dagger/datastore/gcs"
)

// TestLinked checks that importing the package makes gs:// a scheme
// datastore.Open takes. Reaching a bucket needs Google's servers, which
// tests here cannot.
func TestLinked(t *testing.T) {
	ds, err := datastore.Open(context.Background(), "gs://bucket/prefix")
	if err != nil {
		if strings.Contains(err.Error(), "not linked") {
			t.Fatal(err)
		}
		t.Skipf("no Google credentials here: %v", err)
	}
	ds.Close()
}
