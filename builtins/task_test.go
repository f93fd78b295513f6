package builtins

import "testing"

// TestRedact checks what a task's output hides of the values it read: a
// value whole, each line of one of many lines, and one that holds another
// whole.
func TestRedact(t *testing.T) {
	task := &Task{}
	task.Secret("abcd")
	task.Secret("abcdefgh")
	task.Secret("line one\nline two")
	task.Secret("ab") // too short to hide
	for in, want := range map[string]string{
		"key abcdefgh end": "key *** end",
		"key abcd end":     "key *** end",
		"line one":         "***",
		"and line two":     "and ***",
		"ab cd":            "ab cd",
	} {
		if got := task.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
