package kubeexec_test

import (
	"testing"

	"github.com/daggerflow/dagger/internal/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m) }
