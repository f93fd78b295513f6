package s3test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// authenticate passes on the requests that carry a valid AWS Signature
// Version 4 made with the server's key, and answers the others as S3 does.
//
// The signature covers the method, path, query, the signed headers and the
// payload hash that the client declares in X-Amz-Content-Sha256; whether
// the body matches that hash is not checked, which would mean buffering it.
// Presigned URLs (credentials in the query) are not supported.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, code, msg := s.verify(r); status != 0 {
			writeError(w, r, status, code, msg)
			return
		}
		s.count(r.Method)
		next.ServeHTTP(w, r)
	})
}

const algorithm = "AWS4-HMAC-SHA256"

// verify returns the HTTP status, S3 error code and message for a request
// that is not properly signed, or a status of 0 if it is.
func (s *Server) verify(r *http.Request) (status int, code, msg string) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), algorithm+" ")
	if !ok {
		return http.StatusForbidden, "AccessDenied", "Access Denied: requests must be signed with " + algorithm
	}
	fields := make(map[string]string)
	for f := range strings.SplitSeq(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	// Credential=AKID/20060102/region/service/aws4_request
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return http.StatusBadRequest, "AuthorizationHeaderMalformed", "The authorization header is malformed."
	}
	if cred[0] != s.AccessKey {
		return http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
	}
	signedHeaders := strings.Split(fields["SignedHeaders"], ";")
	canonical := strings.Join([]string{
		r.Method,
		r.URL.EscapedPath(),
		canonicalQuery(r.URL.RawQuery),
		canonicalHeaders(r, signedHeaders),
		fields["SignedHeaders"],
		r.Header.Get("X-Amz-Content-Sha256"),
	}, "\n")
	scope := strings.Join(cred[1:], "/")
	sum := sha256.Sum256([]byte(canonical))
	toSign := algorithm + "\n" + r.Header.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])

	key := []byte("AWS4" + s.SecretKey)
	for _, part := range cred[1:] {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method."
	}
	return 0, "", ""
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// canonicalQuery returns the query sorted by name and value, each encoded
// as SigV4 requires.
func canonicalQuery(raw string) string {
	var pairs []string
	for p := range strings.SplitSeq(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		pairs = append(pairs, sigEscape(k)+"="+sigEscape(v))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// sigEscape percent-encodes everything but the unreserved characters of
// RFC 3986, as SigV4 does.
func sigEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}

// canonicalHeaders returns the lines "name:value\n" of the signed headers.
// Go's server moves the Host header into Request.Host.
func canonicalHeaders(r *http.Request, names []string) string {
	var b strings.Builder
	for _, name := range names {
		var values []string
		if name == "host" {
			values = []string{r.Host}
		} else {
			values = slices.Clone(r.Header.Values(name))
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	return b.String()
}

// writeError answers with an S3 error document.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return // a HEAD response has no body; clients go by the status
	}
	body := struct {
		XMLName xml.Name `xml:"Error"`
		Code    string
		Message string
	}{Code: code, Message: msg}
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(body)
}
