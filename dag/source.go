package dag

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// readSource returns the bytes of a file to parse, as Parse takes them.
func readSource(filename string, src any) ([]byte, error) {
	switch src := src.(type) {
	case nil:
		return os.ReadFile(filename)
	case string:
		return []byte(src), nil
	case []byte:
		return src, nil
	case io.Reader:
		return io.ReadAll(src)
	}
	return nil, fmt.Errorf("parsing %s: cannot read source of type %T", filename, src)
}

// checkText reports the first NUL byte or invalid UTF-8 in src, the text
// of filename. The Starlark scanner takes a NUL for the end of the file,
// silently dropping what follows, and keeps invalid UTF-8 in string
// literals; a flow file is UTF-8 text, as Starlark's specification says,
// and other bytes are written as escapes in strings. Columns count runes,
// as the scanner's do, an invalid byte counting as one.
func checkText(filename string, src []byte) error {
	// Valid text, nearly every file, is checked a word at a time; runes
	// are counted only to find where a problem is.
	if utf8.Valid(src) && bytes.IndexByte(src, 0) < 0 {
		return nil
	}
	line, col := 1, 1
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRune(src[i:])
		p := Pos{File: filename, Line: line, Col: col}
		switch {
		case r == 0:
			return ErrorList{{Pos: p, Msg: "the file holds a NUL byte", Hint: `a flow file is UTF-8 text: remove the byte, or write it as "\x00" in a string`}}
		case r == utf8.RuneError && size == 1:
			return ErrorList{{Pos: p, Msg: fmt.Sprintf("the file is not valid UTF-8 here (byte 0x%02x)", src[i]),
				Hint: fmt.Sprintf(`save the file as UTF-8; write other bytes as escapes in a string, such as "\x%02x"`, src[i])}}
		case r == '\n':
			line, col = line+1, 1
		default:
			col++
		}
		i += size
	}
	return nil
}
