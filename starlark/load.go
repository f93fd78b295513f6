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
	"sync"
	"unicode"

	"go.starlark.net/resolve"
	sl "go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/dag"
)

// A Package is the code of a flow: the flow file, every module it loads,
// transitively, and the files its package(include = [...]) declaration
// names, by slash-separated path relative to the flow file's folder. It is
// what runs a flow anywhere: a subprocess or a pod gets the package, not
// the folder.
type Package struct {
	Flow  string            // the flow file, e.g. "hello.star"
	Files map[string]string // path -> content
}

// The magic lines of the code package's encodings. Version 1 wrote paths
// as they are, each ending at a newline, which a path can hold; version 2
// quotes them as Go does. Version 1 is still decoded: stores keep the code
// packages of their runs.
const (
	packageMagic   = "dagger package 2\n"
	packageMagicV1 = "dagger package 1\n"
)

// Encode returns the package's canonical encoding: the flow's path, then
// every file as its path, its length and its bytes, in path order; paths
// are quoted, as strconv.Quote does.
func (p *Package) Encode() []byte {
	var b strings.Builder
	b.WriteString(packageMagic)
	fmt.Fprintf(&b, "%q\n", p.Flow)
	for _, name := range slices.Sorted(maps.Keys(p.Files)) {
		fmt.Fprintf(&b, "%q\n%d\n%s", name, len(p.Files[name]), p.Files[name])
	}
	return []byte(b.String())
}

// Hash returns the package's content hash, which changes whenever the code
// of the flow or of a module it loads changes, or a file it includes.
func (p *Package) Hash() string {
	sum := sha256.Sum256(p.Encode())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DecodePackage decodes a package encoded by Encode, or by the Encode of
// an earlier version.
func DecodePackage(data []byte) (*Package, error) {
	path := strconv.Unquote
	rest, ok := strings.CutPrefix(string(data), packageMagic)
	if !ok {
		if rest, ok = strings.CutPrefix(string(data), packageMagicV1); !ok {
			return nil, errors.New("decoding code package: not a dagger code package")
		}
		path = func(s string) (string, error) { return s, nil }
	}
	line := func() (string, bool) {
		l, r, ok := strings.Cut(rest, "\n")
		rest = r
		return l, ok
	}
	quoted, ok := line()
	flow, err := path(quoted)
	if !ok || err != nil {
		return nil, errors.New("decoding code package: bad flow path")
	}
	p := &Package{Flow: flow, Files: make(map[string]string)}
	for rest != "" {
		quoted, ok1 := line()
		size, ok2 := line()
		name, err1 := path(quoted)
		n, err2 := strconv.Atoi(size)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || n < 0 || n > len(rest) {
			return nil, fmt.Errorf("decoding code package: bad entry for %s", quoted)
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
	dir      string   // folder prefix of file names in positions
	file     string   // where the flow file was read, for the run's record
	included []string // package paths of the flow's own files, sorted

	// Loading a flow resolves its files, which finds every undefined
	// name; compiling them is left to the first Init, for dagger check
	// never runs a flow, and compiling takes as long as every check of a
	// large flow together.
	compileOnce sync.Once
	resolved    map[string]uncompiled  // by package path, until compiled
	progs       map[string]*sl.Program // compiled files by package path
	compileErr  error
}

// An uncompiled file is a file of a flow that resolved without error, with
// the predicate it was resolved with, which compiling it takes again.
type uncompiled struct {
	f             *syntax.File
	isPredeclared func(string) bool
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

// Included returns the package paths, sorted, of the flow's own files:
// those of its folder that its package(include = [...]) declaration
// matches, which every task finds in its working directory.
func (f *Flow) Included() []string { return f.included }

// Builtins returns the builtins the flow was loaded with: the names its
// code was checked against, and the values it runs with.
func (f *Flow) Builtins() *builtins.Set { return f.builtins }

// Load reads the flow file at path, every module it loads and the files
// its package(include = [...]) declaration names, and makes every static
// check of them against the builtins of set, running none of their code:
// parse errors, the graph's rules (dag.Extract and dag.Validate),
// undefined names, loads that are missing, cyclic or outside the flow's
// folder, and patterns of package that match nothing, a folder or a file
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
	// Modules and the flow's own files are read through root, which
	// refuses paths that leave the flow's folder, symbolic links included.
	root, err := os.OpenRoot(cmp.Or(dir, "."))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	l := &loader{
		dir:   filepath.ToSlash(dir),
		file:  abs,
		set:   set.Clone(),
		pkg:   &Package{Flow: base, Files: map[string]string{base: string(src)}},
		files: root.FS(),
		read: func(rel string) ([]byte, error) {
			return root.ReadFile(filepath.FromSlash(rel))
		},
	}
	return l.load()
}

// LoadFS is Load for the flow file called name in fsys, such as an
// embed.FS: modules and the flow's own files are read from fsys, relative
// to the flow file's folder, and positions name files by their names in
// fsys. What fsys serves under that folder is the flow's folder: the
// symbolic links fsys follows are not checked.
func LoadFS(fsys fs.FS, name string, set *builtins.Set) (*Flow, error) {
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(name)
	files, err := fs.Sub(fsys, path.Clean(dir))
	if err != nil {
		return nil, err
	}
	l := &loader{
		dir:   dir,
		set:   set.Clone(),
		pkg:   &Package{Flow: base, Files: map[string]string{base: string(src)}},
		files: files,
		read: func(rel string) ([]byte, error) {
			return fs.ReadFile(fsys, dir+rel)
		},
	}
	return l.load()
}

// LoadPackage is Load for a code package; positions name files as dir +
// their path in the package. It reads no file: the flow's own files are
// those of the package that its package(include = [...]) patterns match.
func LoadPackage(pkg *Package, dir string, set *builtins.Set) (*Flow, error) {
	l := &loader{
		dir:  dir,
		set:  set.Clone(),
		pkg:  &Package{Flow: pkg.Flow, Files: map[string]string{pkg.Flow: pkg.Files[pkg.Flow]}},
		from: pkg,
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

// LoadPackageAt is LoadPackage for the code of the flow file at path, an
// absolute path, that is no longer there: the flow's File is path, as if
// it had been read from there.
func LoadPackageAt(pkg *Package, path string, set *builtins.Set) (*Flow, error) {
	f, err := LoadPackage(pkg, filepath.Dir(path)+string(filepath.Separator), set)
	if err != nil {
		return nil, err
	}
	f.file = path
	return f, nil
}

type loader struct {
	dir  string
	file string
	set  *builtins.Set
	read func(rel string) ([]byte, error)
	// files is the flow's folder, where the patterns of package(include =
	// [...]) are matched; nil when loading from a code package.
	files    fs.FS
	from     *Package // the code package LoadPackage reads
	included []string // package paths of the flow's own files
	pkg      *Package
	resolved map[string]uncompiled
	parsed   map[string]*syntax.File // modules read, by package path; nil for one that could not be
	errs     dag.ErrorList
	// resolvable says which names a load()ed module may use.
	resolvable func(name string) bool
}

func (l *loader) load() (*Flow, error) {
	name := l.pkg.Flow
	f, err := dag.Parse(l.dir+name, l.pkg.Files[name])
	if err != nil {
		return nil, err
	}
	// The flow file is resolved while its graph is extracted and
	// checked, on another core: the two only read the syntax tree, but
	// for the bindings that resolving writes and dag never reads.
	// Resolving needs the capabilities the steps declare, which the graph
	// tells: it is done with all of them, and again should the file use
	// the module of one that no step declares.
	done := make(chan error, 1)
	var asked []string // capability modules the resolver looked up
	go func() {
		all := l.set.Resolvable(nil, true)
		done <- resolve.File(f, func(name string) bool {
			if l.set.CapabilityOf(name) != "" {
				asked = append(asked, name)
				return l.set.IsPredeclared(name)
			}
			return all(name)
		}, sl.Universe.Has)
	}()
	g, err := dag.Extract(f, l.set.Has)
	l.errs = append(l.errs, errList(err)...)
	l.errs = append(l.errs, errList(dag.Validate(g))...)
	l.resolved = make(map[string]uncompiled)
	l.parsed = make(map[string]*syntax.File)
	kinds := g.DeclaredKinds()
	l.resolvable = l.set.Resolvable(kinds, false)
	isPredeclared := l.set.Resolvable(kinds, true)
	err = <-done
	if slices.ContainsFunc(asked, func(name string) bool { return !isPredeclared(name) }) {
		err = resolve.File(f, isPredeclared, sl.Universe.Has)
	}
	l.resolvedFile(name, f, isPredeclared, err, map[string]bool{name: true})
	if g.Package != nil {
		l.include(g.Package)
	}
	flow := &Flow{Graph: g, Package: l.pkg, builtins: l.set, dir: l.dir, file: l.file, resolved: l.resolved, included: l.included}
	l.errs.Sort()
	return flow, l.errs.Err()
}

// resolveFile resolves a parsed file, then loads, parses and resolves the
// modules it loads. active holds the files being loaded, to find cycles.
func (l *loader) resolveFile(rel string, f *syntax.File, isPredeclared func(string) bool, active map[string]bool) {
	err := resolve.File(f, isPredeclared, sl.Universe.Has)
	l.resolvedFile(rel, f, isPredeclared, err, active)
}

// resolvedFile is resolveFile once the file is resolved with
// isPredeclared, which failed with err if not nil.
func (l *loader) resolvedFile(rel string, f *syntax.File, isPredeclared func(string) bool, err error, active map[string]bool) {
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
			name, undefined := strings.CutPrefix(e.Msg, "undefined: ")
			switch kind := l.set.CapabilityOf(name); {
			case undefined && l.set.FlowOnly(name) && rel != l.pkg.Flow:
				e.Msg = name + " can be called in the flow file only, not in a module"
				e.Hint = "modules hold plain helpers; call " + name + " in the flow"
			case undefined && kind != "":
				e.Hint = fmt.Sprintf("%s is the module of the capability %s, which a step that uses it declares: step(NAME, allow = [%q])", name, kind, kind)
			}
			l.errs = append(l.errs, e)
		}
	} else {
		l.resolved[rel] = uncompiled{f, isPredeclared}
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
			l.resolveFile(mod, mf, l.resolvable, active)
			delete(active, mod)
		}
		if _, ok := l.resolved[mod]; ok {
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
	l.errs = append(l.errs, errList(dag.CheckModule(mf))...)
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

// MaxIncluded is the most bytes that the files a flow's package(include =
// [...]) declaration names may come to: the code package is read by every
// task, and held in memory while it is.
const MaxIncluded = 64 << 20

// include adds to the package the files of the flow's folder that the
// patterns of d match, and reports a pattern that matches nothing, a
// folder, a file that is not regular or that a symbolic link finds
// outside the flow's folder, and more than MaxIncluded bytes in all. A
// code package's files were checked when it was made: LoadPackage takes
// those the patterns match as they are.
func (l *loader) include(d *dag.PackageDecl) {
	if l.files == nil {
		for name, data := range l.from.Files {
			if slices.ContainsFunc(d.Include, func(p *dag.Pattern) bool { return matchPath(p.Pattern, name) }) {
				l.pkg.Files[name] = data
				l.included = append(l.included, name)
			}
		}
		slices.Sort(l.included)
		return
	}
	seen := make(map[string]bool)
	var size int64
	for _, p := range d.Include {
		at := p.Pos
		names, err := glob(l.files, p.Pattern)
		if err != nil {
			l.errs = append(l.errs, &dag.Error{Pos: at, Msg: fmt.Sprintf("pattern %q: %v", p.Pattern, err)})
			continue
		}
		if len(names) == 0 {
			l.errs = append(l.errs, &dag.Error{Pos: at, Msg: fmt.Sprintf("pattern %q matches no file in %s", p.Pattern, cmp.Or(strings.TrimSuffix(l.dir, "/"), "."))})
			continue
		}
		for _, name := range names {
			if seen[name] {
				continue
			}
			info, problem := l.stat(at, p.Pattern, name)
			if problem != nil {
				l.errs = append(l.errs, problem)
				continue
			}
			seen[name] = true
			if size += info.Size(); size > MaxIncluded {
				l.errs = append(l.errs, &dag.Error{
					Pos:  at,
					Msg:  fmt.Sprintf("the files package includes come to more than %d MiB with %s", MaxIncluded>>20, l.dir+name),
					Hint: "every task reads the code package: keep big data out of it, in file artifacts that a step makes",
				})
				return
			}
			if _, ok := l.pkg.Files[name]; !ok { // a module, read already
				data, err := fs.ReadFile(l.files, name)
				if err != nil {
					l.errs = append(l.errs, &dag.Error{Pos: at, Msg: fmt.Sprintf("cannot include %s: %v", l.dir+name, err)})
					continue
				}
				l.pkg.Files[name] = string(data)
			}
			l.included = append(l.included, name)
		}
	}
	slices.Sort(l.included)
}

// glob is fs.Glob, except that a pattern without wildcards matches a
// symbolic link whose target cannot be read too, for stat to report it.
func glob(fsys fs.FS, pattern string) ([]string, error) {
	if strings.ContainsAny(pattern, `*?[\`) {
		return fs.Glob(fsys, pattern)
	}
	if _, err := fs.Lstat(fsys, pattern); err != nil {
		return nil, nil
	}
	return []string{pattern}, nil
}

// stat returns what the file that pattern matches, called name, is, or
// the error that keeps it out of the package.
func (l *loader) stat(at dag.Pos, pattern, name string) (fs.FileInfo, *dag.Error) {
	errorf := func(hint, format string, args ...any) *dag.Error {
		return &dag.Error{Pos: at, Msg: fmt.Sprintf(format, args...), Hint: hint}
	}
	info, err := fs.Lstat(l.files, name)
	if err != nil {
		return nil, errorf("", "cannot include %s: %v", l.dir+name, err)
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		if target, err := fs.ReadLink(l.files, name); err == nil && leaves(path.Dir(name), target) {
			return nil, errorf("copy the file into the flow's folder", "%s is a symbolic link to %s, outside the flow's folder", l.dir+name, target)
		}
		// Load reads through an os.Root, which refuses a link that leaves
		// the flow's folder by way of another.
		if info, err = fs.Stat(l.files, name); err != nil {
			return nil, errorf("", "cannot include %s: %v", l.dir+name, err)
		}
	}
	switch {
	case info.IsDir():
		return nil, errorf(fmt.Sprintf("include the files in it with %q", name+"/*"), "pattern %q matches the folder %s", pattern, l.dir+name)
	case !info.Mode().IsRegular():
		return nil, errorf("", "cannot include %s: not a regular file", l.dir+name)
	}
	return info, nil
}

// leaves reports whether target, a path relative to dir, a folder of the
// flow's folder, or an absolute path, is outside the flow's folder.
func leaves(dir, target string) bool {
	if filepath.IsAbs(target) || path.IsAbs(target) {
		return true
	}
	p := path.Join(dir, filepath.ToSlash(target))
	return p == ".." || strings.HasPrefix(p, "../")
}

// matchPath reports whether name matches pattern, which dag.Extract
// checked, as fs.Glob matches it.
func matchPath(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok
}

// modulePath returns the package path of module as loaded from the file
// from, refusing paths outside the flow's folder.
func modulePath(from, module string) (string, error) {
	if module == "" || path.IsAbs(module) || strings.Contains(module, `\`) {
		return "", fmt.Errorf("cannot load %q: use a relative path with forward slashes", module)
	}
	// A file name may hold any byte but / and NUL; a control character,
	// which no terminal or log line shows as it is, is refused. (Starlark
	// strings written in UTF-8 source hold valid UTF-8 here: escapes of
	// other bytes are refused.)
	if strings.ContainsFunc(module, unicode.IsControl) {
		return "", fmt.Errorf("cannot load %q: a module's path holds no control characters", module)
	}
	if leaves(path.Dir(from), module) {
		return "", fmt.Errorf("cannot load %q: it is outside the flow's folder", module)
	}
	return path.Join(path.Dir(from), module), nil
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
	f.compileOnce.Do(f.compile)
	if f.compileErr != nil {
		return nil, f.compileErr
	}
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

// compile compiles the files Load resolved, and lets their syntax trees
// go. FileProgram resolves each file again, with the predicate Load
// resolved it with: it cannot fail where Load did not.
func (f *Flow) compile() {
	f.progs = make(map[string]*sl.Program, len(f.resolved))
	for rel, r := range f.resolved {
		prog, err := sl.FileProgram(r.f, r.isPredeclared)
		if err != nil {
			f.compileErr = fmt.Errorf("compiling %s: %w", f.dir+rel, err)
			return
		}
		f.progs[rel] = prog
	}
	f.resolved = nil
}
