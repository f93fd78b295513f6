package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Hash is the content address of a blob: "sha256:" followed by the 64
// lowercase hexadecimal digits of the SHA-256 digest of its content.
type Hash string

const hashPrefix = "sha256:"

// ParseHash returns s as a Hash after checking that it is in canonical form.
// Uppercase digits are rejected rather than normalized so that every blob
// has exactly one name.
func ParseHash(s string) (Hash, error) {
	if err := checkHash(s); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return Hash(s), nil
}

func checkHash(s string) error {
	digest, ok := strings.CutPrefix(s, hashPrefix)
	if !ok {
		return fmt.Errorf("invalid hash %q: want prefix %q", s, hashPrefix)
	}
	if len(digest) != 2*sha256.Size {
		return fmt.Errorf("invalid hash %q: want %d hex digits, have %d", s, 2*sha256.Size, len(digest))
	}
	for i := 0; i < len(digest); i++ {
		if c := digest[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("invalid hash %q: %q is not a lowercase hex digit", s, c)
		}
	}
	return nil
}

// checkOptionalHash is checkHash for record fields, which use the empty Hash
// for "none".
func checkOptionalHash(h Hash) error {
	if h == "" {
		return nil
	}
	return checkHash(string(h))
}

// HashOf returns the Hash of a SHA-256 digest: what a blob store that
// hashes content itself names it by.
func HashOf(sum [sha256.Size]byte) Hash {
	return Hash(hashPrefix + hex.EncodeToString(sum[:]))
}

// Digest returns the hexadecimal digest of h, which must be valid: the
// part of its name that blob stores lay out by.
func (h Hash) Digest() string {
	return string(h[len(hashPrefix):])
}

// HashParts returns the Hash of the concatenation of parts, which is what
// Blobs.Put names it. It hashes a chunk at a time: a single call over a
// large blob cannot be preempted, so a garbage collection that began
// meanwhile would keep every other goroutine waiting for it to end.
func HashParts(parts ...[]byte) Hash {
	hw := sha256.New()
	for _, p := range parts {
		for len(p) > 0 {
			n := min(len(p), ioChunk)
			hw.Write(p[:n])
			p = p[n:]
		}
	}
	var sum [sha256.Size]byte
	return HashOf([sha256.Size]byte(hw.Sum(sum[:0])))
}
