package starlark

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/store"
)

// codecExec runs a Starlark program and returns its global v.
func codecExec(t testing.TB, src string) sl.Value {
	t.Helper()
	opts := &syntax.FileOptions{Set: true}
	predeclared := sl.StringDict{
		"struct": sl.NewBuiltin("struct", starlarkstruct.Make),
		"file":   sl.NewBuiltin("file", codecFile),
	}
	globals, err := sl.ExecFileOptions(opts, &sl.Thread{Name: "codec_test"}, "codec_test.star", src, predeclared)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	v, ok := globals["v"]
	if !ok {
		t.Fatalf("%s: no global v", src)
	}
	return v
}

// codecFile is file(content, name), the builtins.File of content named
// name, for Starlark expressions of values that hold Files.
func codecFile(_ *sl.Thread, b *sl.Builtin, args sl.Tuple, kwargs []sl.Tuple) (sl.Value, error) {
	var content, name string
	if err := sl.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &content, &name); err != nil {
		return nil, err
	}
	return builtins.NewFile(store.HashOf(sha256.Sum256([]byte(content))), name, int64(len(content)))
}

// codecExpr returns the value of a Starlark expression.
func codecExpr(t testing.TB, expr string) sl.Value {
	t.Helper()
	return codecExec(t, "v = "+expr)
}

// codecDump renders a Starlark value as lines of text, one per value in
// pre-order, for comparison with cmp.Diff. Unlike Starlark's ==, it tells
// apart types (1 and 1.0, lists and tuples), the sign of zero, and the
// order of dicts and sets, which are all part of what the codec must
// preserve. All NaNs look alike, since the codec canonicalizes them.
func codecDump(v sl.Value) []string {
	var lines []string
	var dump func(depth int, v sl.Value)
	dump = func(depth int, v sl.Value) {
		line := fmt.Sprintf("%d %T ", depth, v)
		switch v := v.(type) {
		case sl.Float:
			if f := float64(v); f != f {
				line += "NaN"
			} else {
				line += fmt.Sprintf("%v %#x", f, math.Float64bits(f))
			}
		case *sl.List, sl.Tuple, *sl.Dict, *sl.Set:
			line += fmt.Sprintf("len %d", sl.Len(v))
		case *starlarkstruct.Struct:
			line += fmt.Sprintf("constructor %v, %d fields", v.Constructor(), v.Len())
		default:
			line += v.String()
		}
		lines = append(lines, line)

		switch v := v.(type) {
		case *sl.List:
			for x := range v.Elements() {
				dump(depth+1, x)
			}
		case sl.Tuple:
			for _, x := range v {
				dump(depth+1, x)
			}
		case *sl.Dict:
			for k, x := range v.Entries() {
				dump(depth+1, k)
				dump(depth+1, x)
			}
		case *sl.Set:
			for x := range v.Elements() {
				dump(depth+1, x)
			}
		case *starlarkstruct.Struct:
			for name, x := range v.Entries() {
				dump(depth+1, sl.String(name))
				dump(depth+1, x)
			}
		}
	}
	dump(0, v)
	return lines
}

// codecRoundTrip encodes v, decodes the result and checks that it gets
// back the same value, which re-encodes to the same bytes.
func codecRoundTrip(t *testing.T, v sl.Value) []byte {
	t.Helper()
	data, err := Encode(v)
	if err != nil {
		t.Fatalf("Encode(%v): %v", v, err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode(Encode(%v)): %v", v, err)
	}
	if diff := cmp.Diff(codecDump(v), codecDump(got)); diff != "" {
		t.Fatalf("Decode(Encode(%v)) differs (-want +got):\n%s", v, diff)
	}
	if eq, err := sl.EqualDepth(v, got, codecMaxDepth+1); err != nil || !eq {
		t.Fatalf("Decode(Encode(%v)) = %v; Starlark equality is %v, %v", v, got, eq, err)
	}
	again, err := Encode(got)
	if err != nil {
		t.Fatalf("Encode(Decode(Encode(%v))): %v", v, err)
	}
	if !bytes.Equal(data, again) {
		t.Fatalf("re-encoding %v changed its bytes:\n% x\n% x", v, data, again)
	}
	return data
}

// codecNested returns n lists nested in one another around None.
func codecNested(n int) sl.Value {
	var v sl.Value = sl.None
	for range n {
		v = sl.NewList([]sl.Value{v})
	}
	return v
}

type codecSample struct {
	name string
	v    sl.Value
}

func codecSamples(t testing.TB) []codecSample {
	expr := func(src string) sl.Value { return codecExpr(t, src) }
	return []codecSample{
		{"None", sl.None},
		{"True", sl.True},
		{"False", sl.False},

		{"int 0", sl.MakeInt(0)},
		{"int 1", sl.MakeInt(1)},
		{"int -1", sl.MakeInt(-1)},
		{"int32 max", sl.MakeInt64(math.MaxInt32)},
		{"int32 min", sl.MakeInt64(math.MinInt32)},
		{"above int32", sl.MakeInt64(math.MaxInt32 + 1)},
		{"int64 max", sl.MakeInt64(math.MaxInt64)},
		{"int64 min", sl.MakeInt64(math.MinInt64)},
		{"above int64", expr("1 << 63")},
		{"below int64", expr("-(1 << 63) - 1")},
		{"2**64", expr("1 << 64")},
		{"2**100", expr("1 << 100")},
		{"-2**100", expr("-(1 << 100)")},
		{"2**1000 + 1", expr("(1 << 500) * (1 << 500) + 1")},

		{"float 0", sl.Float(0)},
		{"float -0", sl.Float(math.Copysign(0, -1))},
		{"float 1.5", sl.Float(1.5)},
		{"float 0.1", sl.Float(0.1)},
		{"float max", sl.Float(math.MaxFloat64)},
		{"float -max", sl.Float(-math.MaxFloat64)},
		{"float smallest", sl.Float(math.SmallestNonzeroFloat64)},
		{"float inf", sl.Float(math.Inf(+1))},
		{"float -inf", sl.Float(math.Inf(-1))},
		{"float nan", expr(`float("nan")`)},
		{"float integral", sl.Float(1)},

		{"empty string", sl.String("")},
		{"string", sl.String("hello")},
		{"unicode string", sl.String("héllo, 世界 ☃")},
		{"invalid UTF-8 string", sl.String("\xff\xfe\x80 not UTF-8 \xc3")},
		{"string with NUL", sl.String("a\x00b")},
		{"long string", sl.String(strings.Repeat("abc", 1000))},

		{"empty bytes", sl.Bytes("")},
		{"bytes", expr(`b"\x00\x01\xff"`)},
		{"bytes like a string", sl.Bytes("hello")},

		{"empty list", expr("[]")},
		{"list", expr(`[1, "a", None, 2.5]`)},
		{"empty tuple", expr("()")},
		{"tuple", expr("(1,)")},
		{"tuple of empties", expr("((), [], {}, set(), struct())")},
		{"list of tuple and list", expr("[(1, 2), [1, 2]]")},

		{"empty dict", expr("{}")},
		{"dict order", expr(`{"b": 1, "a": 2, "c": 3}`)},
		{"dict of mixed keys", expr(`{1: "int", 1.5: "float", "1": "string", b"1": "bytes", (1, 2): "tuple", None: "None", True: "bool", struct(a = 1): "struct"}`)},
		{"dict keys that are equal across types", expr(`{True: 1, 1: 2}`)},

		{"empty set", expr("set()")},
		{"set order", expr("set([3, 1, 2])")},
		{"set of mixed", expr(`set([(1, "x"), "x", b"x", 0.5, None, struct(a = ())])`)},

		{"empty struct", expr("struct()")},
		{"struct", expr(`struct(b = 1, a = [1, 2], c = struct(d = ()))`)},
		{"struct with odd names", starlarkstruct.FromStringDict(starlarkstruct.Default, sl.StringDict{
			"": sl.MakeInt(1), "a b": sl.MakeInt(2), "\xff": sl.MakeInt(3),
		})},

		{"artifact", expr(`{
			"name": "resnet",
			"layers": [64, 128, 256],
			"lr": 1e-3,
			"shape": (224, 224, 3),
			"labels": set(["cat", "dog"]),
			"weights": b"\x00\x01",
			"meta": struct(epoch = 10, loss = 0.25, best = True, parent = None),
			"big": 1 << 100,
		}`)},
		{"nested to the limit", codecNested(codecMaxDepth)},

		{"file", expr(`file("weights", "model.pt")`)},
		{"empty file", expr(`file("", "empty")`)},
		{"file with odd name", expr(`file("x", "a b\u00ff\x01..")`)},
		{"files in containers", expr(`[file("a", "a.txt"), (file("b", "b.txt"),), {"m": file("c", "c.txt")}, struct(f = file("d", "d.txt"))]`)},
		{"file as key and element", expr(`({file("a", "a.txt"): 1}, set([file("a", "a.txt"), file("b", "a.txt")]))`)},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, s := range codecSamples(t) {
		t.Run(s.name, func(t *testing.T) {
			codecRoundTrip(t, s.v)
		})
	}
}

// TestCodecEncoding pins the format: artifacts are stored by the hash of
// their encoding, so any change to these bytes orphans existing artifacts
// and calls for a new version byte.
func TestCodecEncoding(t *testing.T) {
	for _, test := range []struct {
		expr string
		want []byte
	}{
		{"None", []byte{0xD1, 0x01}},
		{"False", []byte{0xD1, 0x02}},
		{"True", []byte{0xD1, 0x03}},
		{"0", []byte{0xD1, 0x04, 0x00}},
		{"-1", []byte{0xD1, 0x04, 0x01}},
		{"1", []byte{0xD1, 0x04, 0x02}},
		{"300", []byte{0xD1, 0x04, 0xD8, 0x04}},
		{"1 << 64", []byte{0xD1, 0x05, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"-(1 << 64)", []byte{0xD1, 0x06, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"1.0", []byte{0xD1, 0x07, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0}},
		{"-0.0", []byte{0xD1, 0x07, 0x80, 0, 0, 0, 0, 0, 0, 0}},
		{`float("nan")`, []byte{0xD1, 0x07, 0x7F, 0xF8, 0, 0, 0, 0, 0, 0}},
		{`"hi"`, []byte{0xD1, 0x08, 0x02, 'h', 'i'}},
		{`b"hi"`, []byte{0xD1, 0x09, 0x02, 'h', 'i'}},
		{"[None]", []byte{0xD1, 0x0A, 0x01, 0x01}},
		{"(None,)", []byte{0xD1, 0x0B, 0x01, 0x01}},
		{`{"k": None}`, []byte{0xD1, 0x0C, 0x01, 0x08, 0x01, 'k', 0x01}},
		{"set([None])", []byte{0xD1, 0x0D, 0x01, 0x01}},
		{"struct(b = 1, a = None)", []byte{0xD1, 0x0E, 0x02, 0x01, 'a', 0x01, 0x01, 'b', 0x04, 0x02}},
		{`file("abc", "m.pt")`, slices.Concat([]byte{0xD1, 0x0F}, codecDigest("abc"), []byte{0x04, 'm', '.', 'p', 't', 0x03})},
	} {
		got, err := Encode(codecExpr(t, test.expr))
		if err != nil {
			t.Errorf("Encode(%s): %v", test.expr, err)
			continue
		}
		if diff := cmp.Diff(test.want, got); diff != "" {
			t.Errorf("Encode(%s) (-want +got):\n%s", test.expr, diff)
		}
	}
}

// TestCodecNaN checks that every NaN, whatever its sign and payload,
// encodes as the one canonical NaN.
func TestCodecNaN(t *testing.T) {
	want, err := Encode(sl.Float(math.Float64frombits(codecNaN)))
	if err != nil {
		t.Fatal(err)
	}
	for _, bits := range []uint64{0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001, 0xFFFFFFFFFFFFFFFF} {
		got, err := Encode(sl.Float(math.Float64frombits(bits)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Encode(NaN %#x) = % x, want % x", bits, got, want)
		}
	}
}

// TestCodecDeterminism checks that values built in different ways encode
// identically exactly when they are the same value, and that building the
// same value twice gives the same bytes.
func TestCodecDeterminism(t *testing.T) {
	same := [][]string{
		{
			`v = {"a": 1, "b": [2]}`,
			"v = {}\nv[\"a\"] = 1\nv[\"b\"] = [2]",
			`v = dict([("a", 1)], b = [2])`,
			// Removing and re-adding a key moves it to the end.
			"v = {\"b\": 0, \"a\": 1}\nv.pop(\"b\")\nv[\"b\"] = [2]",
		},
		{
			"v = struct(a = 1, b = 2)",
			"v = struct(b = 2, a = 1)",
			`v = struct(**{"b": 2, "a": 1})`,
		},
		{
			"v = set([1, 2, 3])",
			"v = set()\nv.add(1)\nv.add(2)\nv.add(3)\nv.add(1)",
			"v = set([1, 2]) | set([3, 2])",
		},
		{
			"v = [1, (2, 3)]",
			"v = []\nv.append(1)\nv.append(tuple([2, 3]))",
			"v = [1] + [(2,) + (3,)]",
		},
		{
			"v = 1 << 100",
			"v = (1 << 99) * 2",
			`v = int("1267650600228229401496703205376")`,
		},
		{
			// A big.Int in go.starlark.net, though small for the codec.
			"v = 1 << 40",
			"v = (1 << 100) // (1 << 60)",
			"v = 1099511627776",
		},
		{
			"v = -0.0",
			"v = 0.0 * -1",
		},
		{
			`v = float("nan")`,
			`v = float("inf") - float("inf")`,
			`v = -float("nan")`,
		},
	}
	for _, srcs := range same {
		want, err := Encode(codecExec(t, srcs[0]))
		if err != nil {
			t.Fatalf("%s: %v", srcs[0], err)
		}
		for _, src := range srcs {
			for range 2 {
				got, err := Encode(codecExec(t, src))
				if err != nil {
					t.Fatalf("%s: %v", src, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%q and %q encode differently (-first +second):\n%s", srcs[0], src, diff)
				}
			}
		}
	}

	// Starlark's == equates each of these pairs, but they are different
	// values all the same: a program can observe the difference by
	// iterating, by calling type, or by dividing by zero.
	differ := [][2]string{
		{`{"a": 1, "b": 2}`, `{"b": 2, "a": 1}`},
		{"set([1, 2])", "set([2, 1])"},
		{"1", "1.0"},
		{"0.0", "-0.0"},
		{"[1, 2]", "[1.0, 2]"},
		{"{1: None}", "{1.0: None}"},
	}
	for _, pair := range differ {
		x, y := codecExpr(t, pair[0]), codecExpr(t, pair[1])
		if eq, err := sl.Equal(x, y); err != nil || !eq {
			t.Errorf("%s == %s is %v, %v; want True", pair[0], pair[1], eq, err)
		}
		ex, err := Encode(x)
		if err != nil {
			t.Fatal(err)
		}
		ey, err := Encode(y)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(ex, ey) {
			t.Errorf("%s and %s both encode as % x", pair[0], pair[1], ex)
		}
	}
}

// codecGen generates random artifact values.
type codecGen struct {
	r *rand.Rand
}

func (g *codecGen) value(depth int) sl.Value {
	kinds := 12
	if depth >= 4 {
		kinds = 6 // scalars only
	}
	switch g.r.IntN(kinds) {
	case 0:
		return sl.None
	case 1:
		return sl.Bool(g.r.IntN(2) == 0)
	case 2:
		return g.int()
	case 3:
		return g.float()
	case 4:
		return sl.String(g.string())
	case 5:
		return sl.Bytes(g.string())
	case 6:
		return g.hashable(depth)
	case 7:
		return sl.NewList(g.values(depth))
	case 8:
		return sl.Tuple(g.values(depth))
	case 9:
		d := sl.NewDict(0)
		for range g.r.IntN(6) {
			if err := d.SetKey(g.hashable(depth+1), g.value(depth+1)); err != nil {
				panic(err)
			}
		}
		return d
	case 10:
		s := sl.NewSet(0)
		for range g.r.IntN(6) {
			if err := s.Insert(g.hashable(depth + 1)); err != nil {
				panic(err)
			}
		}
		return s
	default:
		fields := make(sl.StringDict)
		for range g.r.IntN(5) {
			fields[g.name()] = g.value(depth + 1)
		}
		return starlarkstruct.FromStringDict(starlarkstruct.Default, fields)
	}
}

func (g *codecGen) values(depth int) []sl.Value {
	elems := make([]sl.Value, g.r.IntN(6))
	for i := range elems {
		elems[i] = g.value(depth + 1)
	}
	return elems
}

// hashable returns a value that may be a dict key or set element.
func (g *codecGen) hashable(depth int) sl.Value {
	kinds := 8
	if depth >= 4 {
		kinds = 6
	}
	switch g.r.IntN(kinds) {
	case 0:
		return sl.None
	case 1:
		return sl.Bool(g.r.IntN(2) == 0)
	case 2:
		// A small range, so that keys collide.
		return sl.MakeInt(g.r.IntN(8))
	case 3:
		return g.float()
	case 4:
		return sl.String(g.name())
	case 5:
		return sl.Bytes(g.name())
	case 6:
		t := make(sl.Tuple, g.r.IntN(4))
		for i := range t {
			t[i] = g.hashable(depth + 1)
		}
		return t
	default:
		fields := make(sl.StringDict)
		for range g.r.IntN(4) {
			fields[g.name()] = g.hashable(depth + 1)
		}
		return starlarkstruct.FromStringDict(starlarkstruct.Default, fields)
	}
}

func (g *codecGen) int() sl.Value {
	switch g.r.IntN(4) {
	case 0:
		return sl.MakeInt(g.r.IntN(200) - 100)
	case 1:
		return sl.MakeInt64(int64(g.r.Uint64()))
	default:
		mag := make([]byte, 1+g.r.IntN(40))
		for i := range mag {
			mag[i] = byte(g.r.Uint32())
		}
		x := new(big.Int).SetBytes(mag)
		if g.r.IntN(2) == 0 {
			x.Neg(x)
		}
		return sl.MakeBigInt(x)
	}
}

func (g *codecGen) float() sl.Value {
	special := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, math.Inf(1), math.Inf(-1), math.NaN(), math.MaxFloat64, math.SmallestNonzeroFloat64}
	if i := g.r.IntN(2 * len(special)); i < len(special) {
		return sl.Float(special[i])
	}
	return sl.Float(math.Float64frombits(g.r.Uint64()))
}

func (g *codecGen) string() string {
	b := make([]byte, g.r.IntN(20))
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return string(b)
}

// name returns one of a few short strings, so that names collide.
func (g *codecGen) name() string {
	return []string{"", "a", "b", "ab", "é", "\xff"}[g.r.IntN(6)]
}

func TestCodecRandom(t *testing.T) {
	g := codecGen{rand.New(rand.NewPCG(1, 2))}
	for range 3000 {
		codecRoundTrip(t, g.value(0))
	}
}

func TestCodecDecodeMutable(t *testing.T) {
	v, err := Decode(codecMustEncode(t, codecExpr(t, `{"l": [1], "s": set(), "t": ([],)}`)))
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*sl.Dict)
	if err := d.SetKey(sl.String("new"), sl.None); err != nil {
		t.Errorf("SetKey on decoded dict: %v", err)
	}
	for _, key := range []string{"l", "s", "t"} {
		x, _, _ := d.Get(sl.String(key))
		var err error
		switch x := x.(type) {
		case *sl.List:
			err = x.Append(sl.None)
		case *sl.Set:
			err = x.Insert(sl.None)
		case sl.Tuple:
			err = x[0].(*sl.List).Append(sl.None)
		}
		if err != nil {
			t.Errorf("modifying decoded %s: %v", x.Type(), err)
		}
	}
}

func codecMustEncode(t testing.TB, v sl.Value) []byte {
	t.Helper()
	data, err := Encode(v)
	if err != nil {
		t.Fatalf("Encode(%v): %v", v, err)
	}
	return data
}

// codecHost is a value of an application-defined type.
type codecHost struct{}

func (codecHost) String() string        { return "<host>" }
func (codecHost) Type() string          { return "host" }
func (codecHost) Freeze()               {}
func (codecHost) Truth() sl.Bool        { return true }
func (codecHost) Hash() (uint32, error) { return 1, nil }

func TestCodecUnsupported(t *testing.T) {
	builtin := sl.Universe["len"]
	brand := starlarkstruct.FromStringDict(sl.String("point"), sl.StringDict{"x": sl.MakeInt(1)})
	for _, test := range []struct {
		name string
		v    sl.Value
		want UnsupportedError
	}{
		{"root", builtin, UnsupportedError{"", "builtin_function_or_method"}},
		{"list element", sl.NewList([]sl.Value{sl.None, sl.None, builtin}), UnsupportedError{"[2]", "builtin_function_or_method"}},
		{"tuple element", sl.Tuple{sl.None, codecHost{}}, UnsupportedError{"[1]", "host"}},
		{"nil", sl.Tuple{nil}, UnsupportedError{"[0]", "nil"}},
		{"function", codecExec(t, "def f(): pass\nv = [{\"f\": f}]"), UnsupportedError{`[0]["f"]`, "function"}},
		{"lambda in struct", codecExpr(t, "struct(x = struct(y = lambda: 1))"), UnsupportedError{".x.y", "function"}},
		{"dict value", codecExec(t, `v = {"k": [0, {"x": len}]}`), UnsupportedError{`["k"][1]["x"]`, "builtin_function_or_method"}},
		{"dict key", codecExpr(t, `{"a": 1, len: 2}`), UnsupportedError{".keys()[1]", "builtin_function_or_method"}},
		{"within dict key", codecExpr(t, `{(1, len): 2}`), UnsupportedError{".keys()[0][1]", "builtin_function_or_method"}},
		{"non-string dict key", codecExpr(t, `{(1, "a"): range(3)}`), UnsupportedError{`[(1, "a")]`, "range"}},
		{"set element", codecExpr(t, "set([1, len])"), UnsupportedError{"[1]", "builtin_function_or_method"}},
		{"module", sl.NewList([]sl.Value{&starlarkstruct.Module{Name: "m"}}), UnsupportedError{"[0]", "module"}},
		{"branded struct", sl.Tuple{brand}, UnsupportedError{"[0]", `struct with constructor "point"`}},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, err := Encode(test.v)
			var got *UnsupportedError
			if !errors.As(err, &got) {
				t.Fatalf("Encode(%v) = %v, want an *UnsupportedError", test.v, err)
			}
			if diff := cmp.Diff(test.want, *got); diff != "" {
				t.Errorf("Encode(%v) (-want +got):\n%s", test.v, diff)
			}
		})
	}
}

func TestCodecUnsupportedMessage(t *testing.T) {
	_, err := Encode(codecExpr(t, `[1, 2, {"k": len}]`))
	err = fmt.Errorf("artifact %q: %w", "model", err)
	const want = `artifact "model": value[2]["k"]: a builtin_function_or_method cannot be saved as an artifact; ` +
		"artifacts hold None, bool, int, float, string, bytes, list, tuple, dict, set, plain struct and file values"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	if got := (&UnsupportedError{Type: "image"}).Error(); !strings.HasPrefix(got, "value: an image cannot") {
		t.Errorf("got %s, want an article before a vowel", got)
	}
}

func TestCodecCycle(t *testing.T) {
	for _, test := range []struct {
		src  string
		want string
	}{
		{"v = [1]\nv.append(v)", "value: list contains itself: it reappears at value[1]"},
		{"v = {}\nv[\"self\"] = [v]", `value: dict contains itself: it reappears at value["self"][0]`},
		{"l = []\nv = (l,)\nl.append(v)", "value[0]: list contains itself: it reappears at value[0][0][0]"},
		{"l = []\nl.append(struct(l = l))\nv = {1: l}", "value[1]: list contains itself: it reappears at value[1][0].l"},
	} {
		_, err := Encode(codecExec(t, test.src))
		if err == nil || err.Error() != test.want {
			t.Errorf("%s: Encode returned error %v, want %s", test.src, err, test.want)
		}
		var unsupported *UnsupportedError
		if errors.As(err, &unsupported) {
			t.Errorf("%s: Encode returned an *UnsupportedError for a cycle", test.src)
		}
	}

	// Shared values are not cycles.
	codecRoundTrip(t, codecExec(t, "x = [1]\ny = {\"a\": x}\nv = [x, x, y, (y, x)]"))
}

func TestCodecDepth(t *testing.T) {
	for _, kind := range []string{"[None]", "(None,)", "{None: None}", "set([None])", "struct(x = None)"} {
		t.Run(kind, func(t *testing.T) {
			// The innermost container is the one too deep.
			v := codecExpr(t, kind)
			for range codecMaxDepth - 1 {
				v = sl.NewList([]sl.Value{v})
			}
			codecRoundTrip(t, v)

			_, err := Encode(sl.NewList([]sl.Value{v}))
			const want = "value[0][0][0][0][0][0][0][0]...: containers are nested more than 1000 deep"
			if err == nil || err.Error() != want {
				t.Errorf("Encode of %d nested containers: got error %v, want %s", codecMaxDepth+1, err, want)
			}
		})
	}

	data := []byte{codecVersion1}
	for range codecMaxDepth + 1 {
		data = append(data, codecTagList, 1)
	}
	data = append(data, codecTagNone)
	if _, err := Decode(data); err == nil || !strings.Contains(err.Error(), "containers are nested more than 1000 deep") {
		t.Errorf("Decode of %d nested lists: got error %v, want nesting error", codecMaxDepth+1, err)
	}
}

type codecBadEncoding struct {
	name string
	data []byte
	want string // in the error
}

func codecBadEncodings() []codecBadEncoding {
	v := byte(codecVersion1)
	return []codecBadEncoding{
		{"empty", nil, "invalid artifact encoding: no data"},
		{"unknown version", []byte{0x01, codecTagNone}, "unknown version byte 0x01"},
		{"no value", []byte{v}, "offset 1: unexpected end of data"},
		{"zero tag", []byte{v, 0x00}, "unknown tag 0x00"},
		{"unknown tag", []byte{v, 0xFF}, "unknown tag 0xff"},
		{"trailing data", []byte{v, codecTagNone, codecTagNone}, "offset 2: data continues after the value"},
		{"truncated varint", []byte{v, codecTagInt, 0x80}, "unexpected end of data"},
		{"long varint", []byte{v, codecTagInt, 0x80, 0x00}, "varint is not minimal"},
		{"varint overflow", []byte{v, codecTagInt, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02}, "varint overflows 64 bits"},
		{"empty magnitude", []byte{v, codecTagBigPos, 0x00}, "empty or has leading zeros"},
		{"leading zero", []byte{v, codecTagBigPos, 0x09, 0x00, 1, 0, 0, 0, 0, 0, 0, 0}, "empty or has leading zeros"},
		{"small big int", []byte{v, codecTagBigPos, 0x01, 0x01}, "int in the int64 range has the long form"},
		{"int64 min as big", []byte{v, codecTagBigNeg, 0x08, 0x80, 0, 0, 0, 0, 0, 0, 0}, "int in the int64 range has the long form"},
		{"truncated magnitude", []byte{v, codecTagBigPos, 0x09, 0x01}, "length 9 exceeds the remaining 1 bytes"},
		{"truncated float", []byte{v, codecTagFloat, 0x3F, 0xF0}, "unexpected end of data"},
		{"NaN payload", []byte{v, codecTagFloat, 0x7F, 0xF8, 0, 0, 0, 0, 0, 1}, "NaN has bits 0x7ff8000000000001"},
		{"negative NaN", []byte{v, codecTagFloat, 0xFF, 0xF8, 0, 0, 0, 0, 0, 0}, "NaN has bits 0xfff8000000000000"},
		{"truncated string", []byte{v, codecTagString, 0x05, 'a'}, "length 5 exceeds the remaining 1 bytes"},
		{"huge string", []byte{v, codecTagBytes, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}, "length 4294967295 exceeds"},
		{"truncated list", []byte{v, codecTagList, 0x02, codecTagNone}, "count 2 exceeds what the remaining 1 bytes can hold"},
		{"huge list", []byte{v, codecTagList, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, "exceeds what the remaining 0 bytes can hold"},
		{"nested claims", []byte{v, codecTagList, 0x03, codecTagList, 0x03, codecTagNone, codecTagNone, codecTagNone}, "offset 4: count 3 exceeds what the remaining 1 bytes can hold"},
		{"missing element", []byte{v, codecTagTuple, 0x02, codecTagList, 0x00}, "offset 4: unexpected end of data"},
		{"odd dict", []byte{v, codecTagDict, 0x01, codecTagNone}, "count 1 exceeds"},
		{"list key", []byte{v, codecTagDict, 0x01, codecTagList, 0x00, codecTagNone}, "offset 3: dict key: unhashable type: list"},
		{"tuple key holding a list", []byte{v, codecTagDict, 0x01, codecTagTuple, 0x01, codecTagList, 0x00, codecTagNone}, "dict key: unhashable type: list"},
		{"duplicate key", []byte{v, codecTagDict, 0x02, codecTagInt, 0x02, codecTagNone, codecTagInt, 0x02, codecTagNone}, "offset 6: duplicate dict key"},
		{"key equal across types", []byte{v, codecTagDict, 0x02, codecTagInt, 0x02, codecTagNone, codecTagFloat, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, codecTagNone}, "offset 6: duplicate dict key"},
		{"dict element", []byte{v, codecTagSet, 0x01, codecTagDict, 0x00}, "set element: unhashable type: dict"},
		{"duplicate element", []byte{v, codecTagSet, 0x02, codecTagNone, codecTagNone}, "offset 4: duplicate set element"},
		{"unsorted fields", []byte{v, codecTagStruct, 0x02, 0x01, 'b', codecTagNone, 0x01, 'a', codecTagNone}, "offset 6: struct field names are not strictly increasing"},
		{"duplicate field", []byte{v, codecTagStruct, 0x02, 0x01, 'a', codecTagNone, 0x01, 'a', codecTagNone}, "not strictly increasing"},
		{"truncated field", []byte{v, codecTagStruct, 0x01, 0x05, 'a', codecTagNone}, "length 5 exceeds the remaining 1 bytes"},
		{"truncated digest", []byte{v, codecTagFile, 0x01, 0x02}, "offset 1: unexpected end of data"},
		{"file without size", codecFileEncoding(codecDigest("a"), "a"), "offset 36: unexpected end of data"},
		{"file name with slash", codecFileEncoding(codecDigest("a"), "d/a", 0x01), `offset 1: file name "d/a" is not a base name`},
		{"file name ..", codecFileEncoding(codecDigest("a"), "..", 0x01), `file name ".." is not a base name`},
		{"empty file name", codecFileEncoding(codecDigest("a"), "", 0x01), `file name "" is not a base name`},
		{"file size beyond int64", codecFileEncoding(codecDigest("a"), "a", 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), "offset 36: file size 9223372036854775808 exceeds the int64 range"},
		{"file size not minimal", codecFileEncoding(codecDigest("a"), "a", 0x81, 0x00), "offset 36: varint is not minimal"},
		{"file in list, truncated", []byte{v, codecTagList, 0x01, codecTagFile, 0x00}, "offset 3: unexpected end of data"},
	}
}

// codecDigest returns the SHA-256 digest of content.
func codecDigest(content string) []byte {
	sum := sha256.Sum256([]byte(content))
	return sum[:]
}

// codecFileEncoding returns an encoding of a file with the given digest,
// name and size, the size as the bytes of a uvarint.
func codecFileEncoding(digest []byte, name string, size ...byte) []byte {
	return slices.Concat([]byte{codecVersion1, codecTagFile}, digest, []byte{byte(len(name))}, []byte(name), size)
}

func TestCodecDecodeErrors(t *testing.T) {
	for _, test := range codecBadEncodings() {
		t.Run(test.name, func(t *testing.T) {
			got, err := Decode(test.data)
			if err == nil {
				t.Fatalf("Decode(% x) = %v, want error containing %q", test.data, got, test.want)
			}
			if !strings.Contains(err.Error(), test.want) {
				t.Errorf("Decode(% x): %v, want error containing %q", test.data, err, test.want)
			}
		})
	}
}

// TestCodecDecodeTruncated checks that no proper prefix of an encoding
// decodes.
func TestCodecDecodeTruncated(t *testing.T) {
	for _, s := range codecSamples(t) {
		data := codecMustEncode(t, s.v)
		for i := range data {
			if v, err := Decode(data[:i]); err == nil {
				t.Errorf("%s: Decode(% x) = %v, want error", s.name, data[:i], v)
			}
		}
	}
}

// TestCodecDecodeAllocation checks that nested containers that each claim
// all the rest of the input as their elements cannot make Decode allocate
// much more than the input's size.
func TestCodecDecodeAllocation(t *testing.T) {
	var tail []byte
	for range codecMaxDepth - 1 {
		header := binary.AppendUvarint([]byte{codecTagList}, uint64(len(tail)))
		tail = append(header, tail...)
	}
	data := append([]byte{codecVersion1}, tail...)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decode(data)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "offset 5: unexpected end of data") {
		t.Errorf("Decode returned error %v, want one about the second list", err)
	}
	// Were each list to allocate its claim, they would take 16 bytes for
	// each claimed element, some 32 MB in all.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64*uint64(len(data)) {
		t.Errorf("Decode of %d bytes allocated %d bytes", len(data), alloc)
	}
}

func TestCodecHash(t *testing.T) {
	data := codecMustEncode(t, codecExpr(t, `{"model": [1, 2, 3]}`))
	sum := sha256.Sum256(data)
	if got, want := Hash(data), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Hash = %s, want %s", got, want)
	}
	// The format fixes the address of each value for good.
	const none = "sha256:89e451d0952dc7cef33e71a58cbf816825c210cfb5e9a61e0aa5f98d14b46302"
	if got := Hash(codecMustEncode(t, sl.None)); got != none {
		t.Errorf("Hash(Encode(None)) = %s, want %s", got, none)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range codecSamples(f) {
		data, err := Encode(s.v)
		if err != nil {
			f.Fatalf("%s: %v", s.name, err)
		}
		f.Add(data)
	}
	g := codecGen{rand.New(rand.NewPCG(3, 4))}
	for range 50 {
		data, err := Encode(g.value(0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, bad := range codecBadEncodings() {
		f.Add(bad.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(v)
		if err != nil {
			t.Fatalf("Decode(% x) = %v, which Encode rejects: %v", data, v, err)
		}
		// Decode accepts only canonical encodings.
		if !bytes.Equal(data, again) {
			t.Fatalf("Decode(% x) = %v, which encodes as % x", data, v, again)
		}
		w, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", v, err)
		}
		if diff := cmp.Diff(codecDump(v), codecDump(w)); diff != "" {
			t.Fatalf("Decode(Encode(%v)) differs (-want +got):\n%s", v, diff)
		}
	})
}

func codecBenchmarks(b *testing.B) []codecSample {
	ints := func(n int) sl.Value {
		elems := make([]sl.Value, n)
		for i := range elems {
			elems[i] = sl.MakeInt(i % 1000)
		}
		return sl.NewList(elems)
	}
	return []codecSample{
		{"SmallDict", codecExpr(b, `{
			"name": "resnet",
			"epochs": 10,
			"lr": 1e-3,
			"layers": [64, 128, 256],
			"shape": (224, 224, 3),
			"metrics": struct(loss = 0.25, accuracy = 0.91),
		}`)},
		{"IntList100k", ints(100_000)},
		{"IntList1M", ints(1_000_000)},
		{"Bytes64MiB", sl.Bytes(make([]byte, 64<<20))},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, s := range codecBenchmarks(b) {
		b.Run(s.name, func(b *testing.B) {
			data := codecMustEncode(b, s.v)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(s.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, s := range codecBenchmarks(b) {
		b.Run(s.name, func(b *testing.B) {
			data := codecMustEncode(b, s.v)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// codecCost returns what v costs as Encode counts it.
func codecCost(t *testing.T, v sl.Value) int64 {
	t.Helper()
	e := codecEncoder{buf: []byte{codecVersion1}, root: v, next: math.MaxInt64}
	if f := e.encode(v, 0); f != nil {
		t.Fatalf("encode(%v): %v", v, f.err())
	}
	return e.mem + int64(len(e.buf))
}

// TestCodecMeter checks that the meter, which Check and Encode's
// checkpoint use, costs a value exactly as the encoder does.
func TestCodecMeter(t *testing.T) {
	values := []sl.Value{codecExec(t, "x = [1, (2, 3)]\nv = [x, x, {\"a\": x}, (x, x), struct(x = x)]")}
	for _, s := range codecSamples(t) {
		values = append(values, s.v)
	}
	g := codecGen{rand.New(rand.NewPCG(5, 6))}
	for range 500 {
		values = append(values, g.value(0))
	}
	for _, v := range values {
		m := codecMeter{}
		got, f := m.measure(v, 0)
		if f != nil {
			t.Fatalf("measure(%v): %v", v, f.err())
		}
		if want := codecCost(t, v); got+1 != want {
			t.Errorf("measure(%v) = %d, want %d (the encoder's, less the version byte)", v, got, want-1)
		}
	}
}

// TestCodecCheck checks that Check fails as Encode does, path included.
func TestCodecCheck(t *testing.T) {
	for _, src := range []string{
		`v = [1, 2, {"k": len}]`,
		`v = struct(x = struct(y = lambda: 1))`,
		`v = {"a": 1, len: 2}`,
		`v = set([1, len])`,
		"v = [1]\nv.append(v)",
		"v = {}\nv[\"self\"] = [v]",
		"l = []\nv = (l,)\nl.append(v)",
		"l = []\nl.append(struct(l = l))\nv = {1: l}",
		"def f():\n  x = []\n  for _ in range(40): x = [x, x]\n  return x\nv = f()",
		`v = [1, (2, [3])]`,
	} {
		v := codecExec(t, src)
		_, encErr := Encode(v)
		if checkErr := Check(v); fmt.Sprint(checkErr) != fmt.Sprint(encErr) {
			t.Errorf("%s:\nCheck:  %v\nEncode: %v", src, checkErr, encErr)
		}
	}
	deep := sl.NewList([]sl.Value{codecNested(codecMaxDepth)})
	_, encErr := Encode(deep)
	if checkErr := Check(deep); fmt.Sprint(checkErr) != fmt.Sprint(encErr) {
		t.Errorf("nested too deep:\nCheck:  %v\nEncode: %v", checkErr, encErr)
	}
}

// doubled returns () doubled in tuples n times.
func doubled(n int) sl.Value {
	x := sl.Tuple{}
	for range n {
		x = sl.Tuple{x, x}
	}
	return x
}

// TestCodecShared checks that values whose containers hold one another
// many times over, whose encodings would be exponentially large, fail at
// once, without using much memory, at Encode and at Check.
func TestCodecShared(t *testing.T) {
	big := sl.String(strings.Repeat("x", 1<<20))
	for _, test := range []struct {
		name string
		v    sl.Value
	}{
		// The encoding would be 128 MiB, and would load as 2^26 lists.
		{"doubled 25 times", codecExec(t, "def f():\n  x = []\n  for _ in range(25): x = [x, x]\n  return x\nv = f()")},
		// Built in Go: freezing it, as Starlark does to globals, would
		// take exponential time itself.
		{"doubled 60 times", sl.NewList([]sl.Value{doubled(60)})},
		{"a string held 3000 times", sl.NewList(slices.Repeat([]sl.Value{big}, 3000))},
	} {
		t.Run(test.name, func(t *testing.T) {
			const want = "value would take more than 2 GiB of memory once loaded, the most an artifact may take; " +
				"a value held in several places, such as x in [x, x], is saved and loaded once for each"
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Encode(test.v)
			runtime.ReadMemStats(&after)
			if err == nil || err.Error() != want {
				t.Errorf("Encode: %v, want %s", err, want)
			}
			// Encode stops at its checkpoint, at 16 MiB of cost, not at the
			// limit, after gigabytes.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 128<<20 {
				t.Errorf("Encode allocated %d MiB before it failed", alloc>>20)
			}
			if err := Check(test.v); err == nil || err.Error() != want {
				t.Errorf("Check: %v, want %s", err, want)
			}
		})
	}

	// Shared values within the limit encode as usual, once each time they
	// are held.
	codecRoundTrip(t, codecExec(t, "def f():\n  x = []\n  for _ in range(12): x = [x, x]\n  return x\nv = f()"))
}

// TestCodecDecodeMemory checks that Decode stops when what it decoded
// passes its limit on memory, however little data that took: empty dicts
// take 2 bytes to encode and some 512 to load.
func TestCodecDecodeMemory(t *testing.T) {
	const n = 10000
	data := binary.AppendUvarint([]byte{codecVersion1, codecTagList}, n)
	for range n {
		data = append(data, codecTagDict, 0)
	}
	const limit = 1 << 20
	v, err := decodeWithin(data, limit)
	if err == nil || !strings.Contains(err.Error(), "the value would take more than 1 MiB of memory once loaded") {
		t.Errorf("decodeWithin(%d empty dicts, 1 MiB) = %v, %v; want an error about memory", n, v, err)
	}
	// What Encode accepts, Decode does: they count the same cost.
	v = codecExec(t, "v = [{} for _ in range(100)]")
	data = codecMustEncode(t, v)
	if _, err := decodeWithin(data, codecCost(t, v)); err != nil {
		t.Errorf("decodeWithin(its exact cost): %v", err)
	}
	if _, err := decodeWithin(data, codecCost(t, v)-1); err == nil {
		t.Errorf("decodeWithin(less than its cost) succeeded")
	}
}

func TestCodecConflict(t *testing.T) {
	h := Hash([]byte("x"))
	cf := &builtins.Conflict{Join: "pick", Inputs: [2]builtins.ConflictInput{
		{Label: "branch a", TaskID: "a", Hash: h},
		{Label: "branch b", TaskID: "b"},
	}}
	data := codecMustEncode(t, cf)
	v, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cf, v); diff != "" {
		t.Errorf("Decode(Encode(conflict)) (-want +got):\n%s", diff)
	}
	if _, err := Encode(sl.NewList([]sl.Value{cf})); err == nil || !strings.Contains(err.Error(), "value[0]: a conflict cannot be saved") {
		t.Errorf("Encode of a conflict in a list: %v", err)
	}
	nested := slices.Concat([]byte{codecVersion1, codecTagList, 1}, data[1:])
	if _, err := Decode(nested); err == nil || !strings.Contains(err.Error(), "offset 3: a conflict is inside another value") {
		t.Errorf("Decode of a conflict in a list: %v", err)
	}
	bad := slices.Concat([]byte{codecVersion1, codecTagConflict, 0, 0, 0, 3}, []byte("abc"), []byte{0, 0, 0})
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "offset 1: conflict: ") {
		t.Errorf("Decode of a conflict with a bad hash: %v", err)
	}
}

// TestCodecParts checks that AppendEncodeParts gives the encoding of
// Encode, leaving out of its buffer exactly the strings and bytes of
// codecPartMin or more, each a part of its own; and that DecodeOwned
// decodes it as Decode does, with those strings, and only those, sharing
// the memory of the encoding.
func TestCodecParts(t *testing.T) {
	large := strings.Repeat("x", codecPartMin)
	samples := append(codecSamples(t), []codecSample{
		{"large string", sl.String(large)},
		{"large bytes", sl.Bytes(large + "y")},
		{"just too small", sl.Bytes(large[1:])},
		{"large strings in containers", sl.NewList([]sl.Value{
			sl.MakeInt(1), sl.String(large), sl.String(large), sl.Tuple{sl.Bytes(large)}, sl.String("small"),
		})},
		{"large dict key and struct field", sl.Tuple{
			codecExpr(t, `{"`+large+`": 1}`),
			starlarkstruct.FromStringDict(starlarkstruct.Default, sl.StringDict{"f": sl.Bytes(large)}),
		}},
	}...)
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			want := codecMustEncode(t, s.v)
			var nLarge, largeLen int
			for _, str := range codecStrings(s.v) {
				if len(str) >= codecPartMin {
					nLarge++
					largeLen += len(str)
				}
			}

			parts, buf, err := AppendEncodeParts([]byte("dst"), s.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Join(parts, nil); !bytes.Equal(got, want) {
				t.Fatalf("AppendEncodeParts: the parts join to\n% x\nwant\n% x", got, want)
			}
			if string(buf[:3]) != "dst" || len(buf) != 3+len(want)-largeLen {
				t.Errorf("AppendEncodeParts: buf has %d bytes; want dst extended by the %d bytes of the encoding less its %d bytes of large strings", len(buf), len(want), largeLen)
			}
			n := 0
			for _, p := range parts {
				if !codecWithin(unsafe.SliceData(p), buf) {
					n++
				}
			}
			if n != nLarge {
				t.Errorf("AppendEncodeParts: %d parts outside buf, want %d, one for each large string", n, nLarge)
			}

			got, err := DecodeOwned(slices.Clone(want))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(codecDump(s.v), codecDump(got)); diff != "" {
				t.Fatalf("DecodeOwned differs (-want +got):\n%s", diff)
			}
			data, err := Encode(got)
			if err != nil {
				t.Fatal(err)
			}
			got, err = DecodeOwned(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, str := range codecStrings(got) {
				if shared := len(str) > 0 && codecWithin(unsafe.StringData(str), data); shared != (len(str) >= codecPartMin) {
					t.Errorf("DecodeOwned: a string of %d bytes shares the memory of the encoding: %v", len(str), shared)
				}
			}
		})
	}
}

// codecWithin reports whether p points into the memory of buf.
func codecWithin(p *byte, buf []byte) bool {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	at := uintptr(unsafe.Pointer(p))
	return base <= at && at < base+uintptr(len(buf))
}

// codecStrings returns the strings and bytes that v holds, dict keys and
// struct field values included.
func codecStrings(v sl.Value) []string {
	var strs []string
	var walk func(v sl.Value)
	walk = func(v sl.Value) {
		switch v := v.(type) {
		case sl.String:
			strs = append(strs, string(v))
		case sl.Bytes:
			strs = append(strs, string(v))
		case *sl.List:
			for x := range v.Elements() {
				walk(x)
			}
		case sl.Tuple:
			for _, x := range v {
				walk(x)
			}
		case *sl.Dict:
			for k, x := range v.Entries() {
				walk(k)
				walk(x)
			}
		case *sl.Set:
			for x := range v.Elements() {
				walk(x)
			}
		case *starlarkstruct.Struct:
			for _, x := range v.Entries() {
				walk(x)
			}
		}
	}
	walk(v)
	return strs
}

// TestCodecDecodeReader checks that DecodeReader decodes what Decode
// does, reading a large string or bytes into memory of exactly its size,
// and that it fails on a reader that does not hold size bytes or fails.
func TestCodecDecodeReader(t *testing.T) {
	large := strings.Repeat("x", 1<<20)
	samples := append(codecSamples(t), []codecSample{
		{"large string", sl.String(large)},
		{"large bytes", sl.Bytes(large)},
		{"large string in a list", sl.NewList([]sl.Value{sl.String(large)})},
	}...)
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			data := codecMustEncode(t, s.v)
			got, err := DecodeReader(iotest.HalfReader(bytes.NewReader(data)), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(codecDump(s.v), codecDump(got)); diff != "" {
				t.Fatalf("DecodeReader differs (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("memory", func(t *testing.T) {
		data := codecMustEncode(t, sl.Bytes(large))
		// TotalAlloc counts what other goroutines (the runtime's, the
		// test framework's) allocate meanwhile too, which only adds: the
		// least of a few tries is the decoder's own.
		least := uint64(math.MaxUint64)
		for range 5 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			v, err := DecodeReader(bytes.NewReader(data), int64(len(data)))
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			least = min(least, after.TotalAlloc-before.TotalAlloc)
			runtime.KeepAlive(v)
		}
		if least > uint64(len(large))+4096 {
			t.Errorf("DecodeReader of %d bytes allocated %d bytes; want no more than the value", len(large), least)
		}
	})

	failing := errors.New("content does not match")
	large2 := codecMustEncode(t, sl.String(large))
	small := codecMustEncode(t, sl.String("small"))
	for _, tt := range []struct {
		name string
		r    io.Reader
		size int
		want string
	}{
		{"large, shorter than its size", bytes.NewReader(large2[:len(large2)-1]), len(large2), "unexpected EOF"},
		{"large, longer than its size", bytes.NewReader(append(slices.Clone(large2), 0)), len(large2), "longer than its size"},
		{"large, failing at the end", io.MultiReader(bytes.NewReader(large2), iotest.ErrReader(failing)), len(large2), failing.Error()},
		{"small, shorter than its size", bytes.NewReader(small[:3]), len(small), "unexpected EOF"},
		{"small, failing at the end", io.MultiReader(bytes.NewReader(small), iotest.ErrReader(failing)), len(small), failing.Error()},
		{"large, with a header not minimal", bytes.NewReader(append([]byte{codecVersion1, codecTagBytes, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, large...)), 12 + len(large), "varint"},
		{"large, with bytes after the string", bytes.NewReader(append(slices.Clone(large2), 0x01)), len(large2) + 1, "data continues after the value"},
		{"negative size", bytes.NewReader(nil), -1, "size -1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := DecodeReader(tt.r, int64(tt.size)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeReader = %v, %v; want an error containing %q", v, err, tt.want)
			}
		})
	}
}
