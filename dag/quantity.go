package dag

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// A Quantity is a Kubernetes resource quantity, such as "500m" or "2Gi",
// held exactly. The zero Quantity is 0.
//
// dag parses quantities itself rather than importing
// k8s.io/apimachinery, whose package initialization every run of the CLI
// would pay for, when only the Kubernetes executor needs its types.
type Quantity struct {
	// The value is mant × 10^scale, with no trailing zeros in mant, so
	// that whether it is a whole number of units is read off scale.
	mant  *big.Int // nil for 0
	scale int
}

// ParseQuantity parses s in the grammar of Kubernetes quantities: an
// optional sign, a decimal number (digits, a fraction, or both), then a
// binary suffix (Ki Mi Gi Ti Pi Ei), a decimal one (n u m k M G T P E,
// or none), or a decimal exponent (e or E and an integer, as in "1e9").
// Unlike Kubernetes, it never rounds: the Quantity is exactly the value
// written.
func ParseQuantity(s string) (Quantity, error) {
	q, err := parseQuantity(s)
	if err != nil {
		return Quantity{}, fmt.Errorf("quantity %q: %w", s, err)
	}
	return q, nil
}

// parseQuantity is ParseQuantity with errors that say only what is wrong,
// for messages that quote s themselves.
func parseQuantity(s string) (Quantity, error) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	sign := s[:i]
	whole := digits(s[i:])
	i += len(whole)
	var frac string
	if i < len(s) && s[i] == '.' {
		frac = digits(s[i+1:])
		i += 1 + len(frac)
	}
	if whole == "" && frac == "" {
		return Quantity{}, errors.New("no number")
	}
	pow2, pow10, err := suffix(s[i:])
	if err != nil {
		return Quantity{}, err
	}
	// Trailing zeros become scale here, so that a long run of them costs
	// nothing below.
	num := whole + frac
	trimmed := strings.TrimRight(num, "0")
	if trimmed == "" {
		return Quantity{}, nil
	}
	mant, _ := new(big.Int).SetString(sign+trimmed, 10) // only digits: cannot fail
	q := Quantity{mant: mant, scale: len(num) - len(trimmed) - len(frac) + pow10}
	if pow2 > 0 {
		// A power of two times a multiple of 5 can end in zeros again.
		mant.Lsh(mant, uint(pow2))
		ten := big.NewInt(10)
		for {
			var quo, rem big.Int
			if quo.QuoRem(mant, ten, &rem); rem.Sign() != 0 {
				break
			}
			mant.Set(&quo)
			q.scale++
		}
	}
	return q, nil
}

// digits returns the decimal digits s starts with.
func digits(s string) string {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// suffix returns the power of two or of ten that a quantity's suffix
// stands for.
func suffix(s string) (pow2, pow10 int, err error) {
	switch s {
	case "Ki", "Mi", "Gi", "Ti", "Pi", "Ei":
		return 10 * (1 + strings.IndexByte("KMGTPE", s[0])), 0, nil
	case "n":
		return 0, -9, nil
	case "u":
		return 0, -6, nil
	case "m":
		return 0, -3, nil
	case "":
		return 0, 0, nil
	case "k", "M", "G", "T", "P", "E":
		return 0, 3 * (1 + strings.IndexByte("kMGTPE", s[0])), nil
	}
	// "E" alone is exa, above; followed by an integer it is an exponent.
	// Kubernetes reads exponents as 32-bit ints, and so do we.
	if len(s) > 1 && (s[0] == 'e' || s[0] == 'E') {
		exp, err := strconv.ParseInt(s[1:], 10, 32)
		if errors.Is(err, strconv.ErrRange) {
			return 0, 0, fmt.Errorf("exponent %s out of range", s[1:])
		}
		if err == nil {
			return 0, int(exp), nil
		}
	}
	return 0, 0, fmt.Errorf("unknown suffix %q", s)
}

// Sign returns -1, 0 or +1 as q is negative, zero or positive.
func (q Quantity) Sign() int {
	if q.mant == nil {
		return 0
	}
	return q.mant.Sign()
}

// Value returns q as a whole number of units, such as bytes of memory,
// and reports whether q is one that fits in an int64.
func (q Quantity) Value() (int64, bool) {
	n, c := q.scaled(0)
	return n, c == 0
}

// MilliValue returns q in thousandths of a unit, such as millicores of
// cpu, and reports whether q is a whole number of them that fits in an
// int64.
func (q Quantity) MilliValue() (int64, bool) {
	n, c := q.scaled(-3)
	return n, c == 0
}

// scaled returns q in units of 10^exp. c is 0 when q is a whole number of
// them that fits in an int64, -1 when q is finer than that, and +1 when
// it is too large (or too far below zero).
func (q Quantity) scaled(exp int) (n int64, c int) {
	if q.Sign() == 0 {
		return 0, 0
	}
	k := q.scale - exp
	switch {
	case k < 0:
		return 0, -1 // mant has no trailing zeros to absorb 10^k
	case k > 18:
		return 0, +1 // |mant| ≥ 1, and 10^19 overflows
	}
	v := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(k)), nil)
	if v.Mul(v, q.mant); !v.IsInt64() {
		return 0, +1
	}
	return v.Int64(), 0
}
