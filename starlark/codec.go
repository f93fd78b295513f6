package starlark

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

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
//
// Every value has exactly one encoding, and Decode accepts no other:
// varints are minimal, an int uses 0x04 whenever it can, a big magnitude
// has no leading zero byte, every NaN has the bits 0x7FF8000000000000,
// dicts and sets hold no duplicates, a file's name is a base name and its
// size fits an int64, and nothing follows the value. So
// Encode(Decode(data)) reproduces data whenever Decode succeeds, and an
// artifact has one content address.
//
// Tags start at 1 so that a run of zero bytes, a common shape of
// corruption, fails at its first byte. The version byte has its high bit
// set so that an encoding is never mistaken for text; a later version of
// the format will begin with a different byte.
const (
	codecVersion1 = 0xD1

	codecTagNone   = 0x01
	codecTagFalse  = 0x02
	codecTagTrue   = 0x03
	codecTagInt    = 0x04
	codecTagBigPos = 0x05
	codecTagBigNeg = 0x06
	codecTagFloat  = 0x07
	codecTagString = 0x08
	codecTagBytes  = 0x09
	codecTagList   = 0x0A
	codecTagTuple  = 0x0B
	codecTagDict   = 0x0C
	codecTagSet    = 0x0D
	codecTagStruct = 0x0E
	codecTagFile   = 0x0F

	codecNaN = 0x7FF8000000000000
)

// codecMaxDepth bounds the nesting of containers in an artifact, for
// Encode and Decode alike, so that everything Encode produces can be
// decoded. It is far beyond what real artifacts need, and it keeps the
// recursion over hostile input shallow.
const codecMaxDepth = 1000

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
// It also fails if v is cyclic, such as a list that contains itself, or if
// its containers are nested more than 1000 deep.
//
// Encode only reads v, but as with any traversal of Starlark values,
// reading unfrozen dicts and sets is not safe concurrently with other uses
// of them.
func Encode(v sl.Value) ([]byte, error) {
	return AppendEncode(make([]byte, 0, 256), v)
}

// AppendEncode appends the canonical encoding of v to dst and returns the
// extended buffer. Saving many large values through one buffer spares the
// allocation, and the first touch of fresh memory, for each.
func AppendEncode(dst []byte, v sl.Value) ([]byte, error) {
	start := len(dst)
	e := codecEncoder{buf: append(dst, codecVersion1)}
	if f := e.encode(v, 0); f != nil {
		return dst[:start], f.err()
	}
	return e.buf, nil
}

// A codecEncoder appends the encodings of values to buf.
type codecEncoder struct {
	buf []byte

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

func (e *codecEncoder) encode(v sl.Value, depth int) *codecFailure {
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
	}
	return &UnsupportedError{Path: f.path(len(f.rev)), Type: f.typ}
}

// Decode returns the value whose canonical encoding is data, as produced
// by Encode. It rejects any other input with an error, and never
// allocates more than a small multiple of len(data), however hostile
// data may be. The lists, dicts, sets and structs of the result are new
// and not frozen.
func Decode(data []byte) (sl.Value, error) {
	if len(data) == 0 {
		return nil, errors.New("invalid artifact encoding: no data")
	}
	if data[0] != codecVersion1 {
		return nil, fmt.Errorf("invalid artifact encoding: unknown version byte 0x%02x", data[0])
	}
	d := codecDecoder{data: data, off: 1}
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
		return sl.String(b), nil

	case codecTagBytes:
		b, err := d.bytes()
		if err != nil {
			return nil, err
		}
		return sl.Bytes(b), nil

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

	case codecTagList, codecTagTuple, codecTagDict, codecTagSet, codecTagStruct:
		if depth >= codecMaxDepth {
			return nil, d.errorf(start, "containers are nested more than %d deep", codecMaxDepth)
		}
		return d.decodeContainer(tag, depth)
	}
	return nil, d.errorf(start, "unknown tag 0x%02x", tag)
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
