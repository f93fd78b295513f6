package dag

import (
	"testing"

	"go.starlark.net/syntax"
)

func TestDocString(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`"""One line."""`, "One line."},
		{"\"\"\"Summary.\n\n    Details, indented\n      more.\n    \"\"\"", "Summary.\n\nDetails, indented\n  more."},
		{"\"\"\"\n    Starts on the next line.\n    \"\"\"", "Starts on the next line."},
		{`""""""`, ""},
	}
	for _, test := range tests {
		e, err := FileOptions().ParseExpr("doc.star", test.raw, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := docString(e.(*syntax.Literal)); got != test.want {
			t.Errorf("docString(%q) = %q, want %q", test.raw, got, test.want)
		}
	}
}
