package builtins

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEnvRefused(t *testing.T) {
	checkRefused(t, "env=HF_TOKEN", "env=HOME", `env.get("HOME")`)
	checkRefused(t, "exec", "env=HF_TOKEN", `env.get("HF_TOKEN", "none")`)
}

func TestEnvGet(t *testing.T) {
	t.Setenv("DAGGER_TEST_SET", "value")
	t.Setenv("DAGGER_TEST_EMPTY", "")
	tests := []struct {
		allow string
		expr  string
		want  string // repr
	}{
		{"env", `env.get("DAGGER_TEST_SET")`, `"value"`},
		{"env=DAGGER_TEST_SET", `env.get("DAGGER_TEST_SET", "other")`, `"value"`},
		{"env=DAGGER_TEST_EMPTY", `env.get("DAGGER_TEST_EMPTY", "other")`, `""`},
		{"env", `env.get("DAGGER_TEST_UNSET")`, `None`},
		{"env=DAGGER_TEST_UNSET", `env.get("DAGGER_TEST_UNSET", default = 3)`, `3`},
	}
	for _, test := range tests {
		tt := newTaskTest(t, context.Background(), test.allow)
		v, err := tt.eval(test.expr)
		if err != nil {
			t.Errorf("%s: %v", test.expr, err)
			continue
		}
		if got := v.String(); got != test.want {
			t.Errorf("%s: got %s, want %s", test.expr, got, test.want)
		}
	}
}

// TestEnvRedacts checks that a value read never shows in what the task
// prints, itself or through the programs it runs.
func TestEnvRedacts(t *testing.T) {
	t.Setenv("DAGGER_TEST_TOKEN", "hf_abcdef")
	tt := newTaskTest(t, context.Background(), "env=DAGGER_TEST_TOKEN", "exec")
	for _, expr := range []string{
		`print("before:", "hf_abcdef")`, // not read yet: shown
		`env.get("DAGGER_TEST_TOKEN")`,
		`print("token:", env.get("DAGGER_TEST_TOKEN"))`,
		`exec.run(["echo", "Bearer " + env.get("DAGGER_TEST_TOKEN")])`,
	} {
		if _, err := tt.eval(expr); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
	}
	want := []string{"before: hf_abcdef", "token: ***", "Bearer ***"}
	if diff := cmp.Diff(want, tt.lines()); diff != "" {
		t.Errorf("printed (-want +got):\n%s", diff)
	}
}
