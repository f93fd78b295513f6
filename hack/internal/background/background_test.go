//go:build unix

package background

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestServeState checks the state that the background process leaves for
// "up", without starting one: serve runs in the test's own process.
func TestServeState(t *testing.T) {
	dir := t.TempDir()
	c := Command{
		Serve: func(_ context.Context, _ string, ready func(env []string, url string) error) error {
			return ready([]string{"A=it's", "HIDDEN=x", "B=s3://b/p?endpoint=http://h&x=y"}, "http://127.0.0.1:1")
		},
		Hidden: []string{"HIDDEN"},
	}
	if err := c.serve(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"env": "export A='it'\\''s'\nexport B='s3://b/p?endpoint=http://h&x=y'\n",
		"url": "http://127.0.0.1:1\n",
		"pid": strconv.Itoa(os.Getpid()) + "\n",
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s file: got %q, want %q", name, got, want)
		}
	}
	// The URL does not answer: the state is not that of a running process.
	if _, _, ok := running(dir); ok {
		t.Errorf("running reports a process whose URL does not answer")
	}
}
