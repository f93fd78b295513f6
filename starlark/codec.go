package starlark

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/store"
)

// Artifact encoding, version 1.
//
// An encoding is the version byte 0xD1 followed by the encoding of one
// value: a tag byte and a payload that depends on the tag. A uvarint is
// the unsigned varint of encoding/binary.
//
//	tag   type      payload
//	0x01  NoneType  none
//	0x02  bool      none; the value is False
//	0x03  bool      none; the value is True
//	0x04  int       uvarint of the zigzag form, for ints in the int64 range
//	0x05  int       uvarint n, then n bytes of big-endian magnitude, for ints above the int64 range
//	0x06  int       as 0x05, for ints below the int64 range
//	0x07  float     8 bytes of big-endian IEEE 754 bits
//	0x08  string    uvarint n, then n bytes
//	0x09  bytes     uvarint n, then n bytes
//	0x0A  list      uvarint n, then n values
//	0x0B  tuple     uvarint n, then n values
//	0x0C  dict      uvarint n, then n pairs of key and value, in iteration order
//	0x0D  set       uvarint n, then n values, in iteration order
//	0x0E  struct    uvarint n, then n fields, each a name (uvarint length,
//	                then bytes) and a value, in strictly increasing name order
//	0x0F  file      32 bytes of the SHA-256 digest of the content, the base
//	                name (uvarint n, then n bytes), and the size as a uvarint
//	0x10  conflict  only as the whole value: 7 strings (each a uvarint n,
//	                then n bytes): the task ID of the join, then for each
//	                of the two inputs its label, task ID and value's
//	                content address ("" for none)
//
// Every value has exactly one encoding, and Decode accepts no other:
// varints are minimal, an int uses 0x04 whenever it can, a big magnitude
// has no leading zero byte, every NaN has the bits 0x7FF8000000000000,
// dicts and sets hold no duplicates, a file's name is a base name and its
// size fits an int64, a content address in a conflict is well formed, and
// nothing follows the value. So
// Encode(Decode(data)) reproduces data whenever Decode succeeds, and an
// artifact has one content address.
//
// Tags start at 1 so that a run of zero bytes, a common shape of
// corruption, fails at its first byte. The version byte has its high bit
// set so that an encoding is never mistaken for text; a later version of
// the format will begin with a different byte.
const (
	codecVersion1 = 0xD1

	codecTagNone     = 0x01
	codecTagFalse    = 0x02
	codecTagTrue     = 0x03
	codecTagInt      = 0x04
	codecTagBigPos   = 0x05
	codecTagBigNeg   = 0x06
	codecTagFloat    = 0x07
	codecTagString   = 0x08
	codecTagBytes    = 0x09
	codecTagList     = 0x0A
	codecTagTuple    = 0x0B
	codecTagDict     = 0x0C
	codecTagSet      = 0x0D
	codecTagStruct   = 0x0E
	codecTagFile     = 0x0F
	codecTagConflict = 0x10

	codecNaN = 0x7FF8000000000000
)

// codecMaxDepth bounds the nesting of containers in an artifact, for
// Encode and Decode alike, so that everything Encode produces can be
// decoded. It is far beyond what real artifacts need, and it keeps the
// recursion over hostile input shallow.
const codecMaxDepth = 1000

// MaxArtifactMemory bounds the memory an artifact may take once loaded,
// as its cost estimates it: the size of its encoding, plus, for each value
// it holds, 16 bytes for its place in its container, 32 more for a list or
// tuple, 64 and 32 a field for a struct, and 512 and 64 an element for a
// dict or set, which is about what go.starlark.net allocates for each.
// Encode fails for a value that costs more, and Decode for an encoding,
// so that no artifact, not even one of a few lists that hold each other
// several times over (x = [x, x], repeated), which Encode saves once for
// each time it is held, can exhaust the memory of the process that saves
// or loads it. It leaves room for artifacts of 1 GiB of bytes or strings.
const MaxArtifactMemory = 2 << 30

// The costs of values, beyond their encodings: see MaxArtifactMemory.
const (
	codecCostValue  = 16
	codecCostList   = 32
	codecCostStruct = 64
	codecCostField  = 32
	codecCostTable  = 512
	codecCostEntry  = 64
)

// codecCheckpoint is the cost past which Encode measures the whole value,
// which a memo of its containers makes quick however often they are held,
// before it goes on: a value that costs too much fails there, having used
// little memory, rather than at the limit.
const codecCheckpoint = 16 << 20

// An UnsupportedError reports a value that cannot be saved as an
// artifact because of its type, such as a function or a module.
type UnsupportedError struct {
	// Path locates the value within the artifact, in Starlark syntax
	// relative to the artifact, whose own path is empty: [2] is an
	// element of a list, tuple or set (counting a set in iteration
	// order), ["key"] is the value of a dict entry and .keys()[2] its key,
	// and .name is a struct field.
	Path string

	// Type is the Starlark type of the value, as reported by its Type
	// method. For a struct made with a constructor other than
	// starlarkstruct.Default, it names the constructor too.
	Type string
}

func (e *UnsupportedError) Error() string {
	article := "a"
	if e.Type != "" && strings.IndexByte("aeiouAEIOU", e.Type[0]) >= 0 {
		article = "an"
	}
	return fmt.Sprintf("value%s: %s %s cannot be saved as an artifact; "+
		"artifacts hold None, bool, int, float, string, bytes, list, tuple, dict, set, plain struct and file values",
		e.Path, article, e.Type)
}

// Encode returns the canonical encoding of v, an artifact value.
//
// v may be None, a bool, int, float, string, bytes or file (a
// builtins.File, which refers to content kept apart), or a list, tuple,
// dict, set or struct of such values, where a struct must have the default
// constructor, starlarkstruct.Default. The encoding records exactly these
// types, so Decode yields values of the same types and not merely values
// that Starlark's == accepts: 1 and 1.0 stay distinct, as do 0.0 and -0.0,
// a list and a tuple, and two dicts or sets that hold the same elements in
// different orders, since their iteration order is part of the value. A
// struct keeps its fields sorted by name however it was built, so its
// encoding does not depend on the order of the arguments to struct().
//
// The encoding is of a tree: a value reachable along several paths is
// encoded once for each, and Decode returns separate copies of it.
//
// If v holds a value of another type, Encode returns an *UnsupportedError.
// It also fails if v is cyclic, such as a list that contains itself, if
// its containers are nested more than 1000 deep, or if it costs more than
// MaxArtifactMemory.
//
// v may also be a *builtins.Conflict, but only as the whole value: the
// value of an artifact that the inputs of a join disagree on, passed on.
//
// Encode only reads v, but as with any traversal of Starlark values,
// reading unfrozen dicts and sets is not safe concurrently with other uses
// of them.
func Encode(v sl.Value) ([]byte, error) {
	return AppendEncode(make([]byte, 0, 256), v)
}

// Check returns the error Encode would return for v, or nil, without
// encoding it: in time and memory that grow with the number of distinct
// containers in v and the references between them, however often v holds
// each, so that a flow can check a value when it is set. It misses only
// a container nested too deep that v also holds less deep, which Encode
// reports.
func Check(v sl.Value) error {
	if _, ok := v.(*builtins.Conflict); ok {
		return nil
	}
	m := codecMeter{}
	cost, f := m.measure(v, 0)
	if f == nil && cost+1 > MaxArtifactMemory { // with the version byte
		f = &codecFailure{kind: codecTooBig}
	}
	if f != nil {
		return f.err()
	}
	return nil
}

// AppendEncode appends the canonical encoding of v to dst and returns the
// extended buffer. Saving many large values through one buffer spares the
// allocation, and the first touch of fresh memory, for each.
func AppendEncode(dst []byte, v sl.Value) ([]byte, error) {
	e := codecEncoder{buf: append(dst, codecVersion1), start: len(dst), root: v, next: codecCheckpoint}
	if err := e.encodeRoot(); err != nil {
		return dst, err
	}
	return e.buf, nil
}

// codecPartMin is the size from which AppendEncodeParts leaves a string or
// bytes out of the buffer, and DecodeOwned makes one share the memory of
// the encoding: below it, a copy costs less than the memory it saves is
// worth.
const codecPartMin = 64 << 10

// AppendEncodeParts is AppendEncode for values that may hold large strings
// or bytes: it returns the encoding as parts whose concatenation is the
// encoding, so that saving a large value (with store.Blobs.Put, which
// takes parts) needs no copy of it. Each string or bytes of 64 KiB or more
// is a part of its own that shares the memory of the string, and so must
// not be modified; the other parts are in buf, which is dst extended.
func AppendEncodeParts(dst []byte, v sl.Value) (parts [][]byte, buf []byte, err error) {
	e := codecEncoder{buf: append(dst, codecVersion1), start: len(dst), root: v, next: codecCheckpoint, split: true}
	if err := e.encodeRoot(); err != nil {
		return nil, dst, err
	}
	parts = make([][]byte, 0, 2*len(e.aside)+1)
	from := e.start
	for _, a := range e.aside {
		if a.at > from {
			parts = append(parts, e.buf[from:a.at])
		}
		parts = append(parts, unsafe.Slice(unsafe.StringData(a.s), len(a.s)))
		from = a.at
	}
	if len(e.buf) > from {
		parts = append(parts, e.buf[from:])
	}
	return parts, e.buf, nil
}

// encodeRoot encodes the value e was made for.
func (e *codecEncoder) encodeRoot() error {
	if cf, ok := e.root.(*builtins.Conflict); ok {
		e.encodeConflict(cf)
		return nil
	}
	f := e.encode(e.root, 0)
	if f == nil && e.mem+e.size() > MaxArtifactMemory {
		// One string or bytes, say, that passed the limit by itself.
		f = &codecFailure{kind: codecTooBig}
	}
	if f != nil {
		return f.err()
	}
	return nil
}

// A codecEncoder appends the encodings of values to buf.
type codecEncoder struct {
	buf   []byte
	start int      // where the encoding begins in buf
	root  sl.Value // the value being encoded

	// With split, large strings and bytes are set aside rather than
	// appended to buf: aside holds them, in order, with where each goes
	// in buf, and asideLen their total length.
	split    bool
	aside    []codecAside
	asideLen int64

	// mem is the cost of the values encoded so far beyond their
	// encodings; when it and their encodings pass next, measure checks
	// what the whole value costs.
	mem      int64
	next     int64
	measured bool

	// open holds the lists and dicts being encoded, outermost first. Only
	// they can close a cycle: tuples and structs are immutable, and sets
	// hold hashable values, which contain no lists or dicts. Encode scans
	// open linearly, as go.starlark.net does when printing a value: open
	// is short in practice and bounded by codecMaxDepth.
	open []codecOpen
}

type codecOpen struct {
	container sl.Value
	depth     int
}

type codecAside struct {
	at int // offset in buf
	s  string
}

// size returns the length of the encoding so far.
func (e *codecEncoder) size() int64 {
	return int64(len(e.buf)-e.start) + e.asideLen
}

func (e *codecEncoder) encode(v sl.Value, depth int) *codecFailure {
	e.mem += codecCostValue
	if e.mem+e.size() > e.next {
		if f := e.measure(); f != nil {
			return f
		}
	}
	switch v := v.(type) {
	case sl.NoneType:
		e.buf = append(e.buf, codecTagNone)

	case sl.Bool:
		if v {
			e.buf = append(e.buf, codecTagTrue)
		} else {
			e.buf = append(e.buf, codecTagFalse)
		}

	case sl.Int:
		e.encodeInt(v)

	case sl.Float:
		bits := math.Float64bits(float64(v))
		if v != v {
			bits = codecNaN
		}
		e.buf = append(e.buf, codecTagFloat)
		e.buf = binary.BigEndian.AppendUint64(e.buf, bits)

	case sl.String:
		e.encodeString(codecTagString, string(v))

	case sl.Bytes:
		e.encodeString(codecTagBytes, string(v))

	case *sl.List:
		if f := e.push(v, depth); f != nil {
			return f
		}
		e.mem += codecCostList
		e.encodeLen(codecTagList, v.Len())
		e.buf = slices.Grow(e.buf, v.Len()) // each element takes a byte or more
		for i := range v.Len() {
			if f := e.encode(v.Index(i), depth+1); f != nil {
				return f.in(codecIndex(i))
			}
		}
		e.pop()

	case sl.Tuple:
		if depth >= codecMaxDepth {
			return &codecFailure{kind: codecTooDeep}
		}
		e.mem += codecCostList
		e.encodeLen(codecTagTuple, len(v))
		e.buf = slices.Grow(e.buf, len(v))
		for i, x := range v {
			if f := e.encode(x, depth+1); f != nil {
				return f.in(codecIndex(i))
			}
		}

	case *sl.Dict:
		return e.encodeDict(v, depth)

	case *sl.Set:
		return e.encodeSet(v, depth)

	case *starlarkstruct.Struct:
		// A constructor brands a struct, typically with a provider or
		// other callable that an artifact cannot hold.
		if c, ok := v.Constructor().(sl.String); !ok || c != starlarkstruct.Default {
			return &codecFailure{kind: codecUnsupported, typ: "struct with constructor " + v.Constructor().String()}
		}
		if depth >= codecMaxDepth {
			return &codecFailure{kind: codecTooDeep}
		}
		e.mem += codecCostStruct + codecCostField*int64(v.Len())
		e.encodeLen(codecTagStruct, v.Len())
		for i := range v.Len() {
			name, x := v.AttrAt(i)
			e.buf = binary.AppendUvarint(e.buf, uint64(len(name)))
			e.buf = append(e.buf, name...)
			if f := e.encode(x, depth+1); f != nil {
				return f.in("." + name)
			}
		}

	case builtins.File:
		h, err := store.ParseHash(string(v.ContentHash()))
		if err != nil {
			return &codecFailure{kind: codecUnsupported, typ: "file without content, the zero builtins.File"}
		}
		digest, _ := hex.DecodeString(h.Digest()) // ParseHash checked it
		e.buf = append(e.buf, codecTagFile)
		e.buf = append(e.buf, digest...)
		e.buf = binary.AppendUvarint(e.buf, uint64(len(v.Name())))
		e.buf = append(e.buf, v.Name()...)
		e.buf = binary.AppendUvarint(e.buf, uint64(v.Size()))

	case nil:
		return &codecFailure{kind: codecUnsupported, typ: "nil"}

	default:
		return &codecFailure{kind: codecUnsupported, typ: v.Type()}
	}
	return nil
}

// encodeDict is apart from encode because its range-over-func loop moves
// variables to the heap, which would cost an allocation on every call of
// encode, not just on those for dicts.
func (e *codecEncoder) encodeDict(d *sl.Dict, depth int) *codecFailure {
	if f := e.push(d, depth); f != nil {
		return f
	}
	e.mem += codecCostTable + codecCostEntry*int64(d.Len())
	e.encodeLen(codecTagDict, d.Len())
	i := 0
	for k, x := range d.Entries() {
		if f := e.encode(k, depth+1); f != nil {
			return f.in(".keys()" + codecIndex(i))
		}
		if f := e.encode(x, depth+1); f != nil {
			return f.in("[" + k.String() + "]")
		}
		i++
	}
	e.pop()
	return nil
}

// encodeSet is apart from encode for the same reason as encodeDict.
func (e *codecEncoder) encodeSet(s *sl.Set, depth int) *codecFailure {
	if depth >= codecMaxDepth {
		return &codecFailure{kind: codecTooDeep}
	}
	e.mem += codecCostTable + codecCostEntry*int64(s.Len())
	e.encodeLen(codecTagSet, s.Len())
	i := 0
	for x := range s.Elements() {
		if f := e.encode(x, depth+1); f != nil {
			return f.in(codecIndex(i))
		}
		i++
	}
	return nil
}

// measure fails if the value being encoded costs more than
// MaxArtifactMemory. The first time, it measures the whole value; after
// that, the cost of what is encoded is exact, and must stay within the
// limit.
func (e *codecEncoder) measure() *codecFailure {
	cost := e.mem + e.size()
	if e.measured {
		if cost > MaxArtifactMemory {
			return &codecFailure{kind: codecTooBig}
		}
		return nil
	}
	e.measured = true
	e.next = MaxArtifactMemory
	m := codecMeter{}
	total, f := m.measure(e.root, 0)
	if f != nil && f.kind == codecTooBig {
		return f
	}
	// Any other failure the encoder finds itself, with its path. The
	// version byte costs 1.
	if f == nil && total+1 > MaxArtifactMemory {
		return &codecFailure{kind: codecTooBig}
	}
	return nil
}

// encodeConflict appends the encoding of a conflict.
func (e *codecEncoder) encodeConflict(cf *builtins.Conflict) []byte {
	e.buf = append(e.buf, codecTagConflict)
	for _, s := range conflictStrings(cf) {
		e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
		e.buf = append(e.buf, s...)
	}
	return e.buf
}

// conflictStrings returns the fields of cf in the order of its encoding.
func conflictStrings(cf *builtins.Conflict) [7]string {
	a, b := cf.Inputs[0], cf.Inputs[1]
	return [7]string{cf.Join, a.Label, a.TaskID, a.Hash, b.Label, b.TaskID, b.Hash}
}

func (e *codecEncoder) encodeInt(x sl.Int) {
	if i, ok := x.Int64(); ok {
		e.buf = append(e.buf, codecTagInt)
		e.buf = binary.AppendUvarint(e.buf, uint64(i<<1)^uint64(i>>63))
		return
	}
	b := x.BigInt() // a copy, ours to modify
	tag := byte(codecTagBigPos)
	if b.Sign() < 0 {
		tag = codecTagBigNeg
		b.Neg(b)
	}
	n := (b.BitLen() + 7) / 8
	e.encodeLen(tag, n)
	e.buf = append(e.buf, make([]byte, n)...)
	b.FillBytes(e.buf[len(e.buf)-n:])
}

func (e *codecEncoder) encodeString(tag byte, s string) {
	e.encodeLen(tag, len(s))
	if e.split && len(s) >= codecPartMin {
		e.aside = append(e.aside, codecAside{at: len(e.buf), s: s})
		e.asideLen += int64(len(s))
		return
	}
	e.buf = append(e.buf, s...)
}

func (e *codecEncoder) encodeLen(tag byte, n int) {
	e.buf = append(e.buf, tag)
	e.buf = binary.AppendUvarint(e.buf, uint64(n))
}

// push begins the encoding of c, a list or dict at the given depth,
// unless that would close a cycle. On failure, the encoder is abandoned
// with open in any state.
func (e *codecEncoder) push(c sl.Value, depth int) *codecFailure {
	if depth >= codecMaxDepth {
		return &codecFailure{kind: codecTooDeep}
	}
	for _, o := range e.open {
		if o.container == c {
			return &codecFailure{kind: codecCyclic, typ: c.Type(), ancestor: o.depth}
		}
	}
	e.open = append(e.open, codecOpen{c, depth})
	return nil
}

// pop ends the encoding of the innermost list or dict that push began.
func (e *codecEncoder) pop() {
	e.open = e.open[:len(e.open)-1]
}

func codecIndex(i int) string { return "[" + strconv.Itoa(i) + "]" }

// A codecFailure records why Encode failed. Each container adds its path
// segment as the failure propagates out of the recursion, so that
// successful encoding pays nothing for paths.
type codecFailure struct {
	kind     codecFailureKind
	typ      string   // type of the offending value
	rev      []string // path segments, innermost first
	ancestor int      // for codecCyclic, depth of the container that reappears
}

type codecFailureKind int

const (
	codecUnsupported codecFailureKind = iota
	codecCyclic
	codecTooDeep
	codecTooBig
)

// in adds the next path segment on the way out to the root.
func (f *codecFailure) in(segment string) *codecFailure {
	f.rev = append(f.rev, segment)
	return f
}

// path returns the path of the first n segments from the root.
func (f *codecFailure) path(n int) string {
	var b strings.Builder
	for i := len(f.rev) - 1; i >= len(f.rev)-n; i-- {
		b.WriteString(f.rev[i])
	}
	return b.String()
}

func (f *codecFailure) err() error {
	switch f.kind {
	case codecCyclic:
		return fmt.Errorf("value%s: %s contains itself: it reappears at value%s",
			f.path(f.ancestor), f.typ, f.path(len(f.rev)))
	case codecTooDeep:
		// The whole path is a thousand segments; its start says where.
		return fmt.Errorf("value%s...: containers are nested more than %d deep",
			f.path(min(len(f.rev), 8)), codecMaxDepth)
	case codecTooBig:
		// Where in the value it is too big says nothing: it is too big.
		return fmt.Errorf("value would take more than %s of memory once loaded, the most an artifact may take; "+
			"a value held in several places, such as x in [x, x], is saved and loaded once for each", codecLimit(MaxArtifactMemory))
	}
	return &UnsupportedError{Path: f.path(len(f.rev)), Type: f.typ}
}

// codecLimit formats a limit on memory, in MiB or GiB.
func codecLimit(n int64) string {
	if n%(1<<30) == 0 {
		return strconv.FormatInt(n>>30, 10) + " GiB"
	}
	return strconv.FormatInt(n>>20, 10) + " MiB"
}

// A codecMeter measures the cost of a value, as Encode counts it, in time
// and memory that grow with the number of distinct containers in the
// value and the references between them, not with the size of its
// encoding: a container held in several places is measured once.
type codecMeter struct {
	memo map[any]codecMemo // by container identity
}

type codecMemo struct {
	cost  int64
	open  bool // being measured, at depth
	depth int
}

// codecSaturated is a cost beyond every limit that sums of costs, each at
// most it, cannot overflow.
const codecSaturated = 1 << 60

func codecAdd(a, b int64) int64 { return min(a+b, codecSaturated) }

// measure returns the cost of v at the given depth, or why Encode would
// fail for it, as Encode would report it. It stops, with a codecTooBig
// failure, as soon as the cost passes MaxArtifactMemory. A cycle fails
// only through a list or dict, as it does in Encode.
func (m *codecMeter) measure(v sl.Value, depth int) (int64, *codecFailure) {
	var key any
	switch x := v.(type) {
	case *sl.List, *sl.Dict, *sl.Set, *starlarkstruct.Struct:
		key = x
	case sl.Tuple:
		if len(x) > 0 {
			key = [2]any{&x[0], len(x)}
		}
	}
	if key != nil {
		if c, ok := m.memo[key]; ok {
			if !c.open {
				return c.cost, nil
			}
			switch v.(type) {
			case *sl.List, *sl.Dict:
				return 0, &codecFailure{kind: codecCyclic, typ: v.Type(), ancestor: c.depth}
			}
			// An immutable container in a cycle holds the list or dict
			// that closes it: measure it again to reach that.
		}
		if m.memo == nil {
			m.memo = make(map[any]codecMemo)
		}
		m.memo[key] = codecMemo{open: true, depth: depth}
	}
	cost, f := m.measureValue(v, depth)
	if f == nil && cost > MaxArtifactMemory {
		f = &codecFailure{kind: codecTooBig}
	}
	if key != nil && f == nil {
		m.memo[key] = codecMemo{cost: cost}
	}
	return cost, f
}

// measureValue measures v, whatever it holds measured by measure.
func (m *codecMeter) measureValue(v sl.Value, depth int) (int64, *codecFailure) {
	cost := int64(codecCostValue)
	switch v := v.(type) {
	case sl.NoneType, sl.Bool:
		return cost + 1, nil
	case sl.Int:
		if i, ok := v.Int64(); ok {
			return cost + 1 + codecUvarintLen(uint64(i<<1)^uint64(i>>63)), nil
		}
		n := (v.BigInt().BitLen() + 7) / 8
		return cost + 1 + codecUvarintLen(uint64(n)) + int64(n), nil
	case sl.Float:
		return cost + 9, nil
	case sl.String:
		return cost + codecStringLen(len(v)), nil
	case sl.Bytes:
		return cost + codecStringLen(len(v)), nil
	case builtins.File:
		if _, err := store.ParseHash(string(v.ContentHash())); err != nil {
			return 0, &codecFailure{kind: codecUnsupported, typ: "file without content, the zero builtins.File"}
		}
		return cost + 1 + sha256.Size + codecUvarintLen(uint64(len(v.Name()))) + int64(len(v.Name())) + codecUvarintLen(uint64(v.Size())), nil
	case *sl.List:
		return m.measureElements(codecCostList, v, depth)
	case sl.Tuple:
		return m.measureElements(codecCostList, v, depth)
	case *sl.Set:
		return m.measureElements(codecCostTable+codecCostEntry*int64(v.Len()), sl.Tuple(slices.Collect(v.Elements())), depth)
	case *sl.Dict:
		return m.measureDict(v, depth)
	case *starlarkstruct.Struct:
		return m.measureStruct(v, depth)
	case nil:
		return 0, &codecFailure{kind: codecUnsupported, typ: "nil"}
	}
	return 0, &codecFailure{kind: codecUnsupported, typ: v.Type()}
}

// measureElements measures a list, tuple or set of elems, which costs
// extra beyond its encoding and its elements.
func (m *codecMeter) measureElements(extra int64, elems sl.Indexable, depth int) (int64, *codecFailure) {
	if depth >= codecMaxDepth {
		return 0, &codecFailure{kind: codecTooDeep}
	}
	cost := codecCostValue + extra + 1 + codecUvarintLen(uint64(elems.Len()))
	for i := range elems.Len() {
		c, f := m.measure(elems.Index(i), depth+1)
		if f != nil {
			return 0, f.in(codecIndex(i))
		}
		if cost = codecAdd(cost, c); cost > MaxArtifactMemory {
			return cost, nil
		}
	}
	return cost, nil
}

func (m *codecMeter) measureDict(d *sl.Dict, depth int) (int64, *codecFailure) {
	if depth >= codecMaxDepth {
		return 0, &codecFailure{kind: codecTooDeep}
	}
	cost := codecCostValue + codecCostTable + codecCostEntry*int64(d.Len()) + 1 + codecUvarintLen(uint64(d.Len()))
	i := 0
	for k, x := range d.Entries() {
		ck, f := m.measure(k, depth+1)
		if f != nil {
			return 0, f.in(".keys()" + codecIndex(i))
		}
		cx, f := m.measure(x, depth+1)
		if f != nil {
			return 0, f.in("[" + k.String() + "]")
		}
		if cost = codecAdd(cost, codecAdd(ck, cx)); cost > MaxArtifactMemory {
			return cost, nil
		}
		i++
	}
	return cost, nil
}

func (m *codecMeter) measureStruct(s *starlarkstruct.Struct, depth int) (int64, *codecFailure) {
	if c, ok := s.Constructor().(sl.String); !ok || c != starlarkstruct.Default {
		return 0, &codecFailure{kind: codecUnsupported, typ: "struct with constructor " + s.Constructor().String()}
	}
	if depth >= codecMaxDepth {
		return 0, &codecFailure{kind: codecTooDeep}
	}
	cost := codecCostValue + codecCostStruct + codecCostField*int64(s.Len()) + 1 + codecUvarintLen(uint64(s.Len()))
	for i := range s.Len() {
		name, x := s.AttrAt(i)
		c, f := m.measure(x, depth+1)
		if f != nil {
			return 0, f.in("." + name)
		}
		if cost = codecAdd(cost, codecAdd(codecUvarintLen(uint64(len(name)))+int64(len(name)), c)); cost > MaxArtifactMemory {
			return cost, nil
		}
	}
	return cost, nil
}

// codecUvarintLen returns the length of the uvarint of u.
func codecUvarintLen(u uint64) int64 {
	n := int64(1)
	for ; u >= 0x80; u >>= 7 {
		n++
	}
	return n
}

// codecStringLen returns the length of the encoding of a string or bytes
// of n bytes, tag included.
func codecStringLen(n int) int64 { return 1 + codecUvarintLen(uint64(n)) + int64(n) }

// Decode returns the value whose canonical encoding is data, as produced
// by Encode. It rejects any other input with an error, and never
// allocates more than a small multiple of len(data), nor much more than
// MaxArtifactMemory, however hostile data may be: it fails as soon as
// what it decoded costs more. The lists, dicts, sets and structs of the
// result are new and not frozen.
func Decode(data []byte) (sl.Value, error) {
	return decodeWithin(data, MaxArtifactMemory)
}

// DecodeOwned is Decode for data that the caller hands over, as it does a
// buffer it read the encoding into: the strings and bytes of 64 KiB or
// more in the value share the memory of data rather than copy it, so
// data must not be modified afterwards. As with a Starlark slice of a
// string, one of them keeps all of data in memory while it is held.
func DecodeOwned(data []byte) (sl.Value, error) {
	d := codecDecoder{data: data, limit: MaxArtifactMemory, own: true}
	return d.decodeAll()
}

// DecodeReader decodes the encoding of size bytes that r holds, as
// DecodeOwned decodes it in a buffer, and fails if r does not then
// return io.EOF, or if it returns another error, such as a reader that
// verifies content returns at the end. The encoding of one string or
// bytes of 64 KiB or more, the common shape of a large artifact, is read
// straight into the memory of the value, which it takes exactly, so that
// memory that a value of the same size freed can hold it.
func DecodeReader(r io.Reader, size int64) (sl.Value, error) {
	if size < 0 {
		return nil, fmt.Errorf("invalid artifact encoding: size %d", size)
	}
	head := make([]byte, min(size, codecHeadMax))
	if err := codecRead(r, head); err != nil {
		return nil, err
	}
	if tag, n, ok := codecLargeString(head, size); ok {
		payload := make([]byte, n)
		rest := payload[copy(payload, head[size-n:]):] // after the header
		if err := codecRead(r, rest); err != nil {
			return nil, err
		}
		if err := codecEOF(r); err != nil {
			return nil, err
		}
		v := unsafe.String(&payload[0], len(payload))
		if tag == codecTagString {
			return sl.String(v), nil
		}
		return sl.Bytes(v), nil
	}
	data := make([]byte, size)
	if err := codecRead(r, data[copy(data, head):]); err != nil {
		return nil, err
	}
	if err := codecEOF(r); err != nil {
		return nil, err
	}
	return DecodeOwned(data)
}

// codecHeadMax is the length of the longest header of a string: version,
// tag and uvarint length.
const codecHeadMax = 2 + binary.MaxVarintLen64

// codecLargeString returns the tag and length of the string or bytes of
// codecPartMin bytes or more that head, the beginning of an encoding of
// size bytes, shows to be the whole value, and reports whether it is one.
// It reports false for anything that is not canonical, for Decode to
// reject with a precise error.
func codecLargeString(head []byte, size int64) (tag byte, n int64, ok bool) {
	if len(head) < 3 || head[0] != codecVersion1 || head[1] != codecTagString && head[1] != codecTagBytes {
		return 0, 0, false
	}
	u, k := binary.Uvarint(head[2:])
	if k <= 0 || k > 1 && head[2+k-1] == 0 {
		return 0, 0, false
	}
	if u < codecPartMin || u != uint64(size)-uint64(2+k) || codecCostValue+size > MaxArtifactMemory {
		return 0, 0, false
	}
	return head[1], int64(u), true
}

// codecRead fills buf from r in one call of its Read method if it can,
// so that a reader that verifies content can read ahead while it hashes.
func codecRead(r io.Reader, buf []byte) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading the artifact: %w", err)
	}
	return nil
}

// codecEOF checks that r is at its end, which a reader that verifies
// content reports only once it is done.
func codecEOF(r io.Reader) error {
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		switch {
		case n > 0:
			return errors.New("reading the artifact: it is longer than its size")
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("reading the artifact: %w", err)
		}
	}
}

// decodeWithin is Decode with limit for MaxArtifactMemory.
func decodeWithin(data []byte, limit int64) (sl.Value, error) {
	d := codecDecoder{data: data, limit: limit}
	return d.decodeAll()
}

// decodeAll decodes the whole of d.data.
func (d *codecDecoder) decodeAll() (sl.Value, error) {
	data := d.data
	if len(data) == 0 {
		return nil, errors.New("invalid artifact encoding: no data")
	}
	if data[0] != codecVersion1 {
		return nil, fmt.Errorf("invalid artifact encoding: unknown version byte 0x%02x", data[0])
	}
	d.off = 1
	v, err := d.decode(0)
	if err != nil {
		return nil, err
	}
	if d.off != len(data) {
		return nil, d.errorf(d.off, "data continues after the value")
	}
	return v, nil
}

// A codecDecoder decodes values from data.
type codecDecoder struct {
	data []byte
	off  int // offset of the next unread byte

	// reserved is the least number of bytes that the elements counted by
	// enclosing containers, but not yet begun, will take: one for each
	// element, or two for each dict entry or struct field. The item being
	// decoded may use only the bytes before them. Without this, nested
	// containers could each claim all the rest of data, and a short input
	// could demand huge allocations.
	reserved int

	// mem is the cost of the values begun so far beyond their encodings;
	// with the bytes read, it may not pass limit.
	mem   int64
	limit int64

	own bool // see DecodeOwned
}

// rest returns the bytes available to the item being decoded.
func (d *codecDecoder) rest() []byte {
	return d.data[d.off : len(d.data)-d.reserved]
}

func (d *codecDecoder) errorf(off int, format string, args ...any) error {
	return fmt.Errorf("invalid artifact encoding at offset %d: "+format, append([]any{off}, args...)...)
}

func (d *codecDecoder) decode(depth int) (sl.Value, error) {
	start := d.off
	if len(d.rest()) == 0 {
		return nil, d.errorf(start, "unexpected end of data")
	}
	tag := d.data[d.off]
	d.off++
	if err := d.cost(codecCostValue); err != nil {
		return nil, err
	}

	switch tag {
	case codecTagNone:
		return sl.None, nil

	case codecTagFalse:
		return sl.False, nil

	case codecTagTrue:
		return sl.True, nil

	case codecTagInt:
		u, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		return sl.MakeInt64(int64(u>>1) ^ -int64(u&1)), nil

	case codecTagBigPos, codecTagBigNeg:
		mag, err := d.bytes()
		if err != nil {
			return nil, err
		}
		if len(mag) == 0 || mag[0] == 0 {
			return nil, d.errorf(start, "int magnitude is empty or has leading zeros")
		}
		x := new(big.Int).SetBytes(mag)
		if tag == codecTagBigNeg {
			x.Neg(x)
		}
		if x.IsInt64() {
			return nil, d.errorf(start, "int in the int64 range has the long form")
		}
		return sl.MakeBigInt(x), nil

	case codecTagFloat:
		rest := d.rest()
		if len(rest) < 8 {
			return nil, d.errorf(start, "unexpected end of data")
		}
		bits := binary.BigEndian.Uint64(rest)
		d.off += 8
		f := math.Float64frombits(bits)
		if f != f && bits != codecNaN {
			return nil, d.errorf(start, "NaN has bits %#x, not %#x", bits, uint64(codecNaN))
		}
		return sl.Float(f), nil

	case codecTagString:
		b, err := d.bytes()
		if err != nil {
			return nil, err
		}
		return sl.String(d.string(b)), nil

	case codecTagBytes:
		b, err := d.bytes()
		if err != nil {
			return nil, err
		}
		return sl.Bytes(d.string(b)), nil

	case codecTagFile:
		rest := d.rest()
		if len(rest) < sha256.Size {
			return nil, d.errorf(start, "unexpected end of data")
		}
		h := store.HashOf([sha256.Size]byte(rest))
		d.off += sha256.Size
		name, err := d.bytes()
		if err != nil {
			return nil, err
		}
		sizeOff := d.off
		size, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if size > math.MaxInt64 {
			return nil, d.errorf(sizeOff, "file size %d exceeds the int64 range", size)
		}
		f, err := builtins.NewFile(h, string(name), int64(size))
		if err != nil {
			return nil, d.errorf(start, "%w", err)
		}
		return f, nil

	case codecTagConflict:
		if depth > 0 {
			return nil, d.errorf(start, "a conflict is inside another value")
		}
		return d.decodeConflict(start)

	case codecTagList, codecTagTuple, codecTagDict, codecTagSet, codecTagStruct:
		if depth >= codecMaxDepth {
			return nil, d.errorf(start, "containers are nested more than %d deep", codecMaxDepth)
		}
		return d.decodeContainer(tag, depth)
	}
	return nil, d.errorf(start, "unknown tag 0x%02x", tag)
}

// decodeConflict decodes the payload of a conflict that begins at start.
func (d *codecDecoder) decodeConflict(start int) (sl.Value, error) {
	var fields [7]string
	for i := range fields {
		b, err := d.bytes()
		if err != nil {
			return nil, err
		}
		fields[i] = string(b)
	}
	cf := &builtins.Conflict{Join: fields[0], Inputs: [2]builtins.ConflictInput{
		{Label: fields[1], TaskID: fields[2], Hash: fields[3]},
		{Label: fields[4], TaskID: fields[5], Hash: fields[6]},
	}}
	for _, in := range cf.Inputs {
		if _, err := store.ParseHash(in.Hash); in.Hash != "" && err != nil {
			return nil, d.errorf(start, "conflict: %w", err)
		}
	}
	return cf, nil
}

// cost adds n, the cost of a value beyond its encoding and its
// elements, and fails if what was decoded then costs too much.
func (d *codecDecoder) cost(n int64) error {
	if d.mem += n; d.mem+int64(d.off) > d.limit {
		return d.errorf(d.off, "the value would take more than %s of memory once loaded, the most an artifact may take", codecLimit(d.limit))
	}
	return nil
}

// decodeContainer decodes the payload of a container with the given tag
// at the given depth.
func (d *codecDecoder) decodeContainer(tag byte, depth int) (sl.Value, error) {
	switch tag {
	case codecTagList, codecTagTuple:
		n, err := d.count(1)
		if err != nil {
			return nil, err
		}
		if err := d.cost(codecCostList); err != nil {
			return nil, err
		}
		elems := make([]sl.Value, n)
		for i := range elems {
			d.reserved--
			if elems[i], err = d.decode(depth + 1); err != nil {
				return nil, err
			}
		}
		if tag == codecTagTuple {
			return sl.Tuple(elems), nil
		}
		return sl.NewList(elems), nil

	case codecTagDict:
		n, err := d.count(2)
		if err != nil {
			return nil, err
		}
		if err := d.cost(codecCostTable + codecCostEntry*int64(n)); err != nil {
			return nil, err
		}
		dict := sl.NewDict(n)
		for i := range n {
			keyOff := d.off
			d.reserved--
			k, err := d.decode(depth + 1)
			if err != nil {
				return nil, err
			}
			d.reserved--
			v, err := d.decode(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := dict.SetKey(k, v); err != nil {
				return nil, d.errorf(keyOff, "dict key: %w", err)
			}
			if dict.Len() != i+1 {
				return nil, d.errorf(keyOff, "duplicate dict key")
			}
		}
		return dict, nil

	case codecTagSet:
		n, err := d.count(1)
		if err != nil {
			return nil, err
		}
		if err := d.cost(codecCostTable + codecCostEntry*int64(n)); err != nil {
			return nil, err
		}
		set := sl.NewSet(n)
		for i := range n {
			elemOff := d.off
			d.reserved--
			x, err := d.decode(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := set.Insert(x); err != nil {
				return nil, d.errorf(elemOff, "set element: %w", err)
			}
			if set.Len() != i+1 {
				return nil, d.errorf(elemOff, "duplicate set element")
			}
		}
		return set, nil

	default: // codecTagStruct
		n, err := d.count(2)
		if err != nil {
			return nil, err
		}
		if err := d.cost(codecCostStruct + codecCostField*int64(n)); err != nil {
			return nil, err
		}
		fields := make(sl.StringDict, n)
		var prev string
		for i := range n {
			nameOff := d.off
			d.reserved--
			b, err := d.bytes()
			if err != nil {
				return nil, err
			}
			name := string(b)
			if i > 0 && name <= prev {
				return nil, d.errorf(nameOff, "struct field names are not strictly increasing")
			}
			d.reserved--
			if fields[name], err = d.decode(depth + 1); err != nil {
				return nil, err
			}
			prev = name
		}
		return starlarkstruct.FromStringDict(starlarkstruct.Default, fields), nil
	}
}

// string returns b, a slice of data, as a string: one that shares its
// memory if d owns data and b is large, else a copy.
func (d *codecDecoder) string(b []byte) string {
	if d.own && len(b) >= codecPartMin {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

// uvarint reads a minimal uvarint.
func (d *codecDecoder) uvarint() (uint64, error) {
	rest := d.rest()
	u, n := binary.Uvarint(rest)
	switch {
	case n == 0:
		return 0, d.errorf(d.off, "unexpected end of data")
	case n < 0:
		return 0, d.errorf(d.off, "varint overflows 64 bits")
	case n > 1 && rest[n-1] == 0:
		return 0, d.errorf(d.off, "varint is not minimal")
	}
	d.off += n
	return u, nil
}

// bytes reads a length-prefixed byte string. The result aliases data.
func (d *codecDecoder) bytes() ([]byte, error) {
	off := d.off
	u, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	rest := d.rest()
	if u > uint64(len(rest)) {
		return nil, d.errorf(off, "length %d exceeds the remaining %d bytes", u, len(rest))
	}
	d.off += int(u)
	return rest[:u], nil
}

// count reads the element count of a container whose elements each take
// at least size bytes, and reserves those bytes.
func (d *codecDecoder) count(size int) (int, error) {
	off := d.off
	u, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	avail := len(d.rest())
	if u > uint64(avail/size) {
		return 0, d.errorf(off, "count %d exceeds what the remaining %d bytes can hold", u, avail)
	}
	d.reserved += int(u) * size
	return int(u), nil
}

// Hash returns the content address of data, an encoding made by Encode:
// "sha256:" followed by the 64 lowercase hexadecimal digits of the SHA-256
// digest of data. Because an artifact has only one encoding, artifacts
// that Encode cannot tell apart share an address.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
