package dag

import (
	"strings"
	"testing"
)

func TestParseQuantity(t *testing.T) {
	const none = int64(-1 << 63) // not a whole number of units, or too large
	tests := []struct {
		in          string
		sign        int
		value, mill int64
	}{
		{"0", 0, 0, 0},
		{"-0.000", 0, 0, 0},
		{"1", 1, 1, 1000},
		{"+1", 1, 1, 1000},
		{"-2", -1, -2, -2000},
		{"500m", 1, none, 500},
		{"1500m", 1, none, 1500},
		{"2000m", 1, 2, 2000},
		{"1.5", 1, none, 1500},
		{"1.", 1, 1, 1000},
		{".5", 1, none, 500},
		{"0.001", 1, none, 1},
		{"0.0005", 1, none, none},
		{"100u", 1, none, none},
		{"1000000n", 1, none, 1},
		{"1k", 1, 1000, 1000000},
		{"1M", 1, 1000000, 1000000000},
		{"1G", 1, 1000000000, 1000000000000},
		{"1T", 1, 1000000000000, 1000000000000000},
		{"1P", 1, 1000000000000000, 1000000000000000000},
		{"1E", 1, 1000000000000000000, none},
		{"9.223372036854775807E", 1, 9223372036854775807, none},
		{"9.223372036854775808E", 1, none, none},
		{"-9.223372036854775807E", -1, -9223372036854775807, none},
		{"1Ki", 1, 1024, 1024000},
		{"512Mi", 1, 536870912, 536870912000},
		{"2Gi", 1, 2147483648, 2147483648000},
		{"1.5Gi", 1, 1610612736, 1610612736000},
		{"1Ti", 1, 1 << 40, 1 << 40 * 1000},
		{"1Pi", 1, 1 << 50, 1 << 50 * 1000},
		{"9Pi", 1, 9 << 50, none},
		{"7.5Ei", 1, 15 << 59, none},
		{"8Ei", 1, none, none},
		{"0.5Ki", 1, 512, 512000},
		{"1.1Ki", 1, none, 1126400},
		{"0.0001Ki", 1, none, none},
		{"1.G", 1, 1000000000, 1000000000000},
		{"1e9", 1, 1000000000, 1000000000000},
		{"1E3", 1, 1000, 1000000},
		{"1e+3", 1, 1000, 1000000},
		{"1e-3", 1, none, 1},
		{"1.5e1", 1, 15, 15000},
		{"128974848", 1, 128974848, 128974848000},
		{"1000000000000000000000e-21", 1, 1, 1000},
		{"1e2147483647", 1, none, none},
		{"1e-2147483648", 1, none, none},
	}
	for _, test := range tests {
		q, err := ParseQuantity(test.in)
		if err != nil {
			t.Errorf("ParseQuantity(%q): %v", test.in, err)
			continue
		}
		if got := q.Sign(); got != test.sign {
			t.Errorf("ParseQuantity(%q).Sign() = %d, want %d", test.in, got, test.sign)
		}
		for _, m := range []struct {
			name string
			f    func() (int64, bool)
			want int64
		}{{"Value", q.Value, test.value}, {"MilliValue", q.MilliValue, test.mill}} {
			got, ok := m.f()
			if !ok {
				got = none
			}
			if got != m.want {
				t.Errorf("ParseQuantity(%q).%s() = %d, %t; want %d", test.in, m.name, got, ok, m.want)
			}
		}
	}
}

func TestParseQuantityErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `quantity "": no number`},
		{"-", `quantity "-": no number`},
		{".", `quantity ".": no number`},
		{"Gi", `quantity "Gi": no number`},
		{" 1", `quantity " 1": no number`},
		{"1 ", `quantity "1 ": unknown suffix " "`},
		{"1K", `quantity "1K": unknown suffix "K"`},
		{"1KB", `quantity "1KB": unknown suffix "KB"`},
		{"1gi", `quantity "1gi": unknown suffix "gi"`},
		{"1e", `quantity "1e": unknown suffix "e"`},
		{"1e1.5", `quantity "1e1.5": unknown suffix "e1.5"`},
		{"1Ei3", `quantity "1Ei3": unknown suffix "Ei3"`},
		{"1..5", `quantity "1..5": unknown suffix ".5"`},
		{"--1", `quantity "--1": no number`},
		{"1e9999999999", `quantity "1e9999999999": exponent 9999999999 out of range`},
		{"0x10", `quantity "0x10": unknown suffix "x10"`},
		{"1_000", `quantity "1_000": unknown suffix "_000"`},
	}
	for _, test := range tests {
		if _, err := ParseQuantity(test.in); err == nil || err.Error() != test.want {
			t.Errorf("ParseQuantity(%q) = %v, want %s", test.in, err, test.want)
		}
	}
}

// TestParseQuantityLong checks that long runs of digits and large
// exponents cost nothing much: a flow file is user input.
func TestParseQuantityLong(t *testing.T) {
	for _, s := range []string{
		"1" + strings.Repeat("0", 1e6),
		"0." + strings.Repeat("0", 1e6) + "1",
		strings.Repeat("5", 1e4) + "Ei",
	} {
		q, err := ParseQuantity(s)
		if err != nil {
			t.Fatalf("ParseQuantity(%.10s…): %v", s, err)
		}
		if n, ok := q.Value(); ok {
			t.Errorf("ParseQuantity(%.10s…).Value() = %d, want too large or too small", s, n)
		}
	}
}
