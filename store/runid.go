package store

import (
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Run IDs are 12 characters of a 32-letter alphabet (60 bits): the creation
// time in milliseconds (45 bits, enough until the year 3084) followed by 15
// random bits that keep IDs made by concurrent processes in the same
// millisecond apart. The alphabet is Crockford's base32 in lowercase, in
// ASCII order so that IDs sort by creation time, and without i, l, o and u,
// which are easily mistyped.
const (
	idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	idLen      = 12
	idRandBits = 15
)

// idGen generates run IDs that increase strictly within the process even if
// the clock steps back or many runs start in the same millisecond.
type idGen struct {
	mu   sync.Mutex
	last uint64
}

func (g *idGen) next(now time.Time) string {
	v := uint64(now.UnixMilli())<<idRandBits | rand.Uint64N(1<<idRandBits)
	v &= 1<<(5*idLen) - 1
	g.mu.Lock()
	if v <= g.last {
		v = g.last + 1
	}
	g.last = v
	g.mu.Unlock()

	var b [idLen]byte
	for i := idLen - 1; i >= 0; i-- {
		b[i] = idAlphabet[v&31]
		v >>= 5
	}
	return string(b[:])
}

// isIDPrefix reports whether s could begin a run ID.
func isIDPrefix(s string) bool {
	if s == "" || len(s) > idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(idAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// idPrefixEnd returns the least string greater than every run ID that starts
// with prefix: '~' sorts after every letter of the alphabet.
func idPrefixEnd(prefix string) string {
	return prefix + "~"
}
