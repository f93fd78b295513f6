package kubeexec_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/daggerflow/dagger/internal/testcluster"
)

// TestMain builds the test cluster's control plane, if it is not cached,
// before the tests: go test's timeout starts with them, and a first build
// can outlast it. With -short, nothing is built.
func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		if _, err := testcluster.Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
