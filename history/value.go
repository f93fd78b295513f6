package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	sl "go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/daggerflow/dagger/builtins"
)

// A NotJSONError says which part of an artifact value has no JSON form.
type NotJSONError struct {
	// Path locates the part, in Starlark syntax relative to the value,
	// as starlark.UnsupportedError does: "" for the value itself, [2] for
	// an element, ["k"] for a dict's value, .keys()[2] for its key, .f
	// for a struct's field.
	Path string
	What string // what the part is, such as "bytes"
}

func (e *NotJSONError) Error() string {
	if e.Path == "" {
		return "it is " + e.What
	}
	return e.Path + " is " + e.What
}

// JSON returns the JSON form of v, a decoded artifact value, compact:
// None, bools, ints (however big), finite floats, UTF-8 strings, lists
// and tuples (as arrays), dicts whose keys are all strings (as objects,
// in their order), structs (as objects, fields sorted by name) and files
// (as objects {"type": "file", "name": ..., "size": ..., "hash": ...},
// which describe the content the run's blobs hold without it). Other
// values have none, and are a *NotJSONError: bytes, sets, dicts with
// other keys, infinite and NaN floats, and strings that are not UTF-8,
// which JSON would mangle. Unlike encoding/json, JSON escapes only what
// JSON requires, and keeps the point that tells the float 2.0 from the
// int 2.
func JSON(v sl.Value) ([]byte, error) {
	return appendJSON(nil, v, "")
}

// appendJSON appends to b the JSON form of v, as JSON describes it. path
// is that of v within the artifact, for the *NotJSONError.
func appendJSON(b []byte, v sl.Value, path string) ([]byte, error) {
	switch v := v.(type) {
	case sl.NoneType:
		return append(b, "null"...), nil
	case sl.Bool:
		return strconv.AppendBool(b, bool(v)), nil
	case sl.Int:
		// Digits, however many: JSON numbers have no bound, though
		// readers that use doubles round those beyond 2^53.
		return append(b, v.String()...), nil
	case sl.Float:
		if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
			return nil, &NotJSONError{path, "the float " + v.String()}
		}
		// Starlark's form, such as 2.0 or 1e+21, is JSON's too, and
		// keeps the point that tells a float from an int.
		return append(b, v.String()...), nil
	case sl.String:
		if !utf8.ValidString(string(v)) {
			return nil, &NotJSONError{path, "a string that is not UTF-8"}
		}
		return appendJSONString(b, string(v)), nil
	case *sl.List:
		return appendJSONArray(b, v, path)
	case sl.Tuple:
		return appendJSONArray(b, v, path)
	case *sl.Dict:
		b = append(b, '{')
		var err error
		for i, kv := range v.Items() {
			k, ok := kv[0].(sl.String)
			if !ok {
				return nil, &NotJSONError{fmt.Sprintf("%s.keys()[%d]", path, i), "a key of type " + kv[0].Type()}
			}
			if b, err = appendJSONField(b, i, string(k), kv[1], fmt.Sprintf("%s[%s]", path, k)); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case builtins.File:
		b = append(b, `{"type":"file","name":`...)
		if !utf8.ValidString(v.Name()) {
			return nil, &NotJSONError{path + ".name", "a file name that is not UTF-8"}
		}
		b = appendJSONString(b, v.Name())
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, v.Size(), 10)
		b = append(b, `,"hash":`...)
		b = appendJSONString(b, string(v.ContentHash()))
		return append(b, '}'), nil
	case *starlarkstruct.Struct:
		b = append(b, '{')
		names := v.AttrNames()
		slices.Sort(names) // the codec's order, whatever the struct's
		for i, name := range names {
			f, err := v.Attr(name)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", path, name, err)
			}
			if b, err = appendJSONField(b, i, name, f, path+"."+name); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	what := "a " + v.Type()
	if _, ok := v.(sl.Bytes); ok {
		what = "bytes"
	}
	return nil, &NotJSONError{path, what}
}

// appendJSONArray appends the elements of seq as a JSON array.
func appendJSONArray(b []byte, seq sl.Indexable, path string) ([]byte, error) {
	b = append(b, '[')
	var err error
	for i := range seq.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJSON(b, seq.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// appendJSONField appends the i-th member of a JSON object.
func appendJSONField(b []byte, i int, name string, v sl.Value, path string) ([]byte, error) {
	if i > 0 {
		b = append(b, ',')
	}
	b = appendJSONString(b, name)
	b = append(b, ':')
	return appendJSON(b, v, path)
}

// appendJSONString appends s, valid UTF-8, as a JSON string, escaping
// only what JSON requires (not <, > and &, as encoding/json does for web
// pages).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// FormatValue returns v for people: its JSON form indented, if it has
// one, else its Starlark repr, such as b"\x00" or set([1, 2]); a file is
// its repr, file("model.pt", 1234 bytes, sha256:...), unless asJSON. With
// asJSON, a value without a JSON form is a *NotJSONError.
func FormatValue(v sl.Value, asJSON bool) ([]byte, error) {
	if f, ok := v.(builtins.File); ok && !asJSON {
		return []byte(f.String()), nil
	}
	compact, err := JSON(v)
	if err != nil {
		if asJSON {
			return nil, err
		}
		return []byte(v.String()), nil
	}
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "  "); err != nil {
		return nil, fmt.Errorf("indenting its JSON: %w", err)
	}
	return b.Bytes(), nil
}
