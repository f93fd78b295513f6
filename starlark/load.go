package starlark

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.starlark.net/resolve"
	sl "go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
)

// A Package is the code of a flow: the flow file and every module it
// loads, transitively, by slash-separated path relative to the flow file's
// folder. It is what runs a flow anywhere: a subprocess or a pod gets the
// package, not the folder.
type Package struct {
	Flow  string            // the flow file, e.g. "hello.star"
	Files map[string]string // path -> source
}

const packageMagic = "dagger package 1\n"

// Encode returns the package's canonical encoding: the flow's path, then
// every file as its path, its length and its bytes, in path order.
func (p *Package) Encode() []byte {
	var b strings.Builder
	b.WriteString(packageMagic)
	fmt.Fprintf(&b, "%s\n", p.Flow)
	for _, name := range slices.Sorted(maps.Keys(p.Files)) {
		fmt.Fprintf(&b, "%s\n%d\n%s", name, len(p.Files[name]), p.Files[name])
	}
	return []byte(b.String())
}

// Hash returns the package's content hash, which changes whenever the code
// of the flow or of a module it loads changes.
func (p *Package) Hash() string {
	sum := sha256.Sum256(p.Encode())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DecodePackage decodes a package encoded by Encode.
func DecodePackage(data []byte) (*Package, error) {
	rest, ok := strings.CutPrefix(string(data), packageMagic)
	if !ok {
		return nil, errors.New("decoding code package: not a dagger code package")
	}
	line := func() (string, bool) {
		l, r, ok := strings.Cut(rest, "\n")
		rest = r
		return l, ok
	}
	flow, ok := line()
	if !ok {
		return nil, errors.New("decoding code package: truncated")
	}
	p := &Package{Flow: flow, Files: make(map[string]string)}
	for rest != "" {
		name, ok1 := line()
		size, ok2 := line()
		n, err := strconv.Atoi(size)
		if !ok1 || !ok2 || err != nil || n < 0 || n > len(rest) {
			return nil, fmt.Errorf("decoding code package: bad entry for %q", name)
		}
		p.Files[name], rest = rest[:n], rest[n:]
	}
	if _, ok := p.Files[p.Flow]; !ok {
		return nil, fmt.Errorf("decoding code package: flow file %q is missing", p.Flow)
	}
	return p, nil
}

// A Flow is a flow whose code passed every static check: ready to run,
// nothing of it run yet.
type Flow struct {
	Graph   *dag.Graph
	Package *Package

	builtins *builtins.Set
	dir      string                 // folder prefix of file names in positions
	file     string                 // where the flow file was read, for the run's record
	progs    map[string]*sl.Program // compiled files by package path
}

// Dir returns the folder of the flow file as positions name it: "" or a
// path ending in a slash.
func (f *Flow) Dir() string { return f.dir }

// Path returns the flow file's path as positions name it.
func (f *Flow) Path() string { return f.dir + f.Package.Flow }

// File returns the absolute path of the flow file, for a flow read by
// Load; "" for a flow read from a file system or a code package, which a
// path on this machine does not find again.
func (f *Flow) File() string { return f.file }

// Builtins returns the builtins the flow was loaded with: the names its
// code was checked against, and the values it runs with.
func (f *Flow) Builtins() *builtins.Set { return f.builtins }

// Load reads the flow file at path and every module it loads, and makes
// every static check of them against the builtins of set, running none of
// their code: parse errors, the graph's rules (dag.Extract and
// dag.Validate), undefined names, loads that are missing, cyclic or
// outside the flow's folder. Positions name files as path does. The flow
// keeps a copy of set: adding to set later does not change it.
//
// An invalid flow gives a dag.ErrorList with every problem in source order,
// and the Flow too, as far as the flow file could be read, so that its graph
// can still be shown; a file that cannot be read gives an ordinary error.
func Load(path string, set *builtins.Set) (*Flow, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir, base := filepath.Split(path)
	// Modules are read through root, which refuses paths that leave the
	// flow's folder, symbolic links included.
	root, err := os.OpenRoot(cmp.Or(dir, "."))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	l := &loader{
		dir:  filepath.ToSlash(dir),
		file: abs,
		set:  set.Clone(),
		pkg:  &Package{Flow: base, Files: map[string]string{base: string(src)}},
		read: func(rel string) ([]byte, error) {
			return root.ReadFile(filepath.FromSlash(rel))
		},
	}
	return l.load()
}

// LoadFS is Load for the flow file called name in fsys, such as an
// embed.FS: modules are read from fsys, relative to the flow file's
// folder, and positions name files by their names in fsys.
func LoadFS(fsys fs.FS, name string, set *builtins.Set) (*Flow, error) {
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(name)
	l := &loader{
		dir: dir,
		set: set.Clone(),
		pkg: &Package{Flow: base, Files: map[string]string{base: string(src)}},
		read: func(rel string) ([]byte, error) {
			return fs.ReadFile(fsys, dir+rel)
		},
	}
	return l.load()
}

// LoadPackage is Load for a code package; positions name files as dir +
// their path in the package.
func LoadPackage(pkg *Package, dir string, set *builtins.Set) (*Flow, error) {
	l := &loader{
		dir: dir,
		set: set.Clone(),
		pkg: &Package{Flow: pkg.Flow, Files: map[string]string{pkg.Flow: pkg.Files[pkg.Flow]}},
		read: func(rel string) ([]byte, error) {
			src, ok := pkg.Files[rel]
			if !ok {
				return nil, fmt.Errorf("%s is not in the code package: %w", rel, fs.ErrNotExist)
			}
			return []byte(src), nil
		},
	}
	return l.load()
}

type loader struct {
	dir    string
	file   string
	set    *builtins.Set
	read   func(rel string) ([]byte, error)
	pkg    *Package
	progs  map[string]*sl.Program
	parsed map[string]*syntax.File // modules read, by package path; nil for one that could not be
	errs   dag.ErrorList
	// resolvable says which names a load()ed module may use.
	resolvable func(name string) bool
}

func (l *loader) load() (*Flow, error) {
	name := l.pkg.Flow
	f, err := dag.Parse(l.dir+name, l.pkg.Files[name])
	if err != nil {
		return nil, err
	}
	g, err := dag.Extract(f, l.set.Has)
	l.errs = append(l.errs, errList(err)...)
	l.errs = append(l.errs, errList(dag.Validate(g))...)
	l.progs = make(map[string]*sl.Program)
	l.parsed = make(map[string]*syntax.File)
	kinds := g.DeclaredKinds()
	l.resolvable = l.set.Resolvable(kinds, false)
	l.compile(name, f, l.set.Resolvable(kinds, true), map[string]bool{name: true})
	flow := &Flow{Graph: g, Package: l.pkg, builtins: l.set, dir: l.dir, file: l.file, progs: l.progs}
	l.errs.Sort()
	return flow, l.errs.Err()
}

// compile resolves and compiles a parsed file, then loads, parses and
// compiles the modules it loads. active holds the files being loaded, to
// find cycles.
func (l *loader) compile(rel string, f *syntax.File, isPredeclared func(string) bool, active map[string]bool) {
	prog, err := sl.FileProgram(f, isPredeclared)
	if err != nil {
		// The graph checks may have explained the same problem already.
		seen := make(map[dag.Pos]bool)
		for _, e := range l.errs {
			seen[e.Pos] = true
		}
		for _, e := range errList(err) {
			if seen[e.Pos] {
				continue
			}
			if name, ok := strings.CutPrefix(e.Msg, "undefined: "); ok && l.set.FlowOnly(name) && rel != l.pkg.Flow {
				e.Msg = name + " can be called in the flow file only, not in a module"
				e.Hint = "modules hold plain helpers; call " + name + " in the flow"
			}
			l.errs = append(l.errs, e)
		}
	} else {
		l.progs[rel] = prog
	}
	// The loads are checked even in a file that failed to resolve, so
	// that every problem is reported at once.
	for _, stmt := range f.Stmts {
		load, ok := stmt.(*syntax.LoadStmt)
		if !ok {
			continue
		}
		at := dag.Pos{File: l.dir + rel, Line: int(load.Load.Line), Col: int(load.Load.Col)}
		mod, err := modulePath(rel, load.ModuleName())
		if err != nil {
			l.errs = append(l.errs, &dag.Error{Pos: at, Msg: err.Error(), Hint: "load modules by a path relative to the loading file, inside the flow's folder"})
			continue
		}
		if active[mod] {
			l.errs = append(l.errs, &dag.Error{Pos: at, Msg: fmt.Sprintf("load cycle: %s loads %s, which loads it again", rel, mod)})
			continue
		}
		mf, seen := l.parsed[mod]
		if !seen {
			mf = l.module(at, rel, mod)
			l.parsed[mod] = mf // nil if it could not be read: reported once
			if mf == nil {
				continue
			}
			active[mod] = true
			l.compile(mod, mf, l.resolvable, active)
			delete(active, mod)
		}
		if _, ok := l.progs[mod]; ok {
			l.checkExports(at, mod, mf, load)
		}
	}
}

// module reads and parses the module mod, which rel loads at at; nil if
// it cannot, which it reports.
func (l *loader) module(at dag.Pos, rel, mod string) *syntax.File {
	src, err := l.read(mod)
	if err != nil {
		msg := fmt.Sprintf("cannot load %s: %v", mod, err)
		if errors.Is(err, fs.ErrNotExist) {
			msg = fmt.Sprintf("cannot load %s (from %s): no such file", l.dir+mod, l.dir+rel)
		}
		l.errs = append(l.errs, &dag.Error{Pos: at, Msg: msg})
		return nil
	}
	l.pkg.Files[mod] = string(src)
	mf, err := dag.Parse(l.dir+mod, src)
	if err != nil {
		l.errs = append(l.errs, dag.AsList(err)...)
		return nil
	}
	return mf
}

// checkExports reports names a load statement asks of a module that the
// module does not define.
func (l *loader) checkExports(at dag.Pos, mod string, f *syntax.File, load *syntax.LoadStmt) {
	defined := make(map[string]bool)
	for _, b := range f.Module.(*resolve.Module).Globals {
		defined[b.First.Name] = true
	}
	for _, id := range load.From {
		if !defined[id.Name] {
			l.errs = append(l.errs, &dag.Error{
				Pos: dag.Pos{File: at.File, Line: int(id.NamePos.Line), Col: int(id.NamePos.Col)},
				Msg: fmt.Sprintf("%s does not define %s", l.dir+mod, id.Name),
			})
		}
	}
}

// modulePath returns the package path of module as loaded from the file
// from, refusing paths outside the flow's folder.
func modulePath(from, module string) (string, error) {
	if module == "" || path.IsAbs(module) || strings.Contains(module, `\`) {
		return "", fmt.Errorf("cannot load %q: use a relative path with forward slashes", module)
	}
	p := path.Join(path.Dir(from), module)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("cannot load %q: it is outside the flow's folder", module)
	}
	return p, nil
}

// errList converts the errors of the dag and resolve packages to one list.
func errList(err error) dag.ErrorList {
	if err == nil {
		return nil
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) {
		l := make(dag.ErrorList, len(rl))
		for i, e := range rl {
			l[i] = &dag.Error{Pos: dag.Pos{File: e.Pos.Filename(), Line: int(e.Pos.Line), Col: int(e.Pos.Col)}, Msg: e.Msg}
		}
		return l
	}
	return dag.AsList(err)
}

// Init runs the top-level code of the flow, and of the modules it loads,
// on thread with the flow's builtins, and returns the flow's globals,
// frozen so that tasks can share them. The thread's Print and locals are
// the caller's; Init sets its Load and its context (builtins.ThreadContext), and
// cancels it when ctx is done.
func (f *Flow) Init(ctx context.Context, thread *sl.Thread) (sl.StringDict, error) {
	modulePredeclared := f.builtins.ModulePredeclared()
	cache := make(map[string]sl.StringDict)
	thread.Load = func(thread *sl.Thread, module string) (sl.StringDict, error) {
		from := strings.TrimPrefix(thread.CallFrame(0).Pos.Filename(), f.dir)
		rel, err := modulePath(from, module)
		if err != nil {
			return nil, err
		}
		if globals, ok := cache[rel]; ok {
			return globals, nil
		}
		prog, ok := f.progs[rel]
		if !ok {
			return nil, fmt.Errorf("cannot load %s: not in the flow's code package", module)
		}
		globals, err := prog.Init(thread, modulePredeclared)
		if err != nil {
			return nil, evalError(err) // with the module's own backtrace
		}
		globals.Freeze()
		cache[rel] = globals
		return globals, nil
	}
	builtins.SetThreadContext(thread, ctx)
	stop := cancelOnDone(ctx, thread)
	defer stop()
	globals, err := f.progs[f.Package.Flow].Init(thread, f.builtins.Predeclared())
	if err != nil {
		return nil, evalError(err)
	}
	globals.Freeze()
	return globals, nil
}
