package azure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/daggerflow/dagger/datastore"
	_ "github.com/daggerflow/dagger/datastore/azure"
)

// TestLinked checks that importing the package makes azblob:// a scheme
// datastore.Open takes. Reaching a bucket needs Azure, which
// tests here cannot.
func TestLinked(t *testing.T) {
	ds, err := datastore.Open(context.Background(), "azblob://container/prefix")
	if err != nil {
		if strings.Contains(err.Error(), "not linked") {
			t.Fatal(err)
		}
		t.Skipf("no Azure account here: %v", err)
	}
	ds.Close()
}
