package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"
	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/builtins"
)

// embedderSet returns the builtins of a program that embeds dagger: the
// standard ones, fetch, a plain function, kv, a module, and emit, which
// only flow files may call.
func embedderSet() *builtins.Set {
	prices := map[string]string{"price/apple": "3", "price/fig": "5"}
	set := builtins.Standard()
	for _, err := range []error{
		set.Add("fetch", sl.NewBuiltin("fetch", func(_ *sl.Thread, b *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
			var path string
			if err := sl.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &path); err != nil {
				return nil, err
			}
			return sl.String("page " + path), nil
		})),
		set.Add("kv", &starlarkstruct.Module{Name: "kv", Members: sl.StringDict{
			"get": sl.NewBuiltin("kv.get", func(_ *sl.Thread, b *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
				var key string
				if err := sl.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &key); err != nil {
					return nil, err
				}
				v, ok := prices[key]
				if !ok {
					return nil, fmt.Errorf("%s: no key %s", b.Name(), key)
				}
				return sl.String(v), nil
			}),
		}}),
		set.AddFlowOnly("emit", sl.NewBuiltin("emit", func(_ *sl.Thread, b *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
			var v sl.Value
			if err := sl.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
				return nil, err
			}
			return sl.String(fmt.Sprintf("emitted %s", v)), nil
		})),
	} {
		if err != nil {
			panic(err) // the names above are valid
		}
	}
	return set
}

// TestEmbedder checks and runs every flow in testdata/embed with the
// dagger of a program that adds the builtins of embedderSet: its check
// output must match NAME.check, and a valid flow's run, with both
// executors, NAME.run. The process executor's runner is that program too,
// so it knows the builtins. The stock dagger refuses a flow that uses
// them (testdata/check/embedder_builtin.star).
func TestEmbedder(t *testing.T) {
	t.Chdir(repoRoot)
	t.Setenv(mainEnv, "embedder") // for the process executor: see TestMain
	for _, flow := range glob(t, "testdata/embed/*.star") {
		name := strings.TrimSuffix(flow, ".star")
		t.Run(filepath.Base(name), func(t *testing.T) {
			r := runWith(t, embedderSet(), "check", flow)
			golden(t, name+".check", txtar.Format(&txtar.Archive{
				Comment: fmt.Appendf(nil, "exit %d\n", r.code),
				Files: []txtar.File{
					{Name: "stdout", Data: []byte(r.stdout)},
					{Name: "stderr", Data: []byte(r.stderr)},
				},
			}))
			if r.code != exitOK {
				return
			}
			if stock := runDagger(t, "check", flow); stock.code != exitInvalid || !strings.Contains(stock.stderr, flow+":") {
				t.Errorf("the stock dagger check of %s: exit %d, want %d with a positioned error\n%s", flow, stock.code, exitInvalid, stock.stderr)
			}
			g := loadGraphWith(t, flow, embedderSet())
			var outputs []string
			for _, executor := range []string{inProcess, subprocess} {
				r := runWith(t, embedderSet(), "run", "--store", t.TempDir(), "--executor", executor, flow)
				outputs = append(outputs, formatResult(r, g))
			}
			golden(t, name+".run", []byte(outputs[0]))
			if diff := gocmp.Diff(outputs[0], outputs[1]); diff != "" {
				t.Errorf("--executor process printed differently (-inprocess +process):\n%s", diff)
			}
		})
	}
	orphans(t, "testdata/embed/*.check", "testdata/embed")
	orphans(t, "testdata/embed/*.run", "testdata/embed")
}
