package s3test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// unsignedTrailer is the X-Amz-Content-Sha256 of a body in the
// aws-chunked encoding whose chunks are not signed, followed by trailing
// headers: what the AWS SDKs send when they upload over HTTPS, where TLS
// protects the payload and they need not hash it before sending.
const unsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

// unchunk passes on requests whose body is aws-chunked without signatures
// with that body decoded, as S3 stores it; gofakes3 decodes only signed
// chunks, and would store the others with their framing. The trailing
// headers, which carry a checksum, are read but not checked.
func unchunk(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Content-Sha256") != unsignedTrailer {
			next.ServeHTTP(w, r)
			return
		}
		data, err := decodeChunked(r.Body, r.Header.Get("X-Amz-Decoded-Content-Length"))
		r.Body.Close()
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "IncompleteBody", "aws-chunked body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		r.ContentLength = int64(len(data))
		r.Header.Set("Content-Length", strconv.Itoa(len(data)))
		r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		// Or gofakes3 would keep it as the object's Content-Encoding.
		var encodings []string
		for e := range strings.SplitSeq(r.Header.Get("Content-Encoding"), ",") {
			if e = strings.TrimSpace(e); e != "" && e != "aws-chunked" {
				encodings = append(encodings, e)
			}
		}
		if len(encodings) == 0 {
			r.Header.Del("Content-Encoding")
		} else {
			r.Header.Set("Content-Encoding", strings.Join(encodings, ","))
		}
		next.ServeHTTP(w, r)
	})
}

// decodeChunked returns the data of an aws-chunked body: chunks of a
// hexadecimal size, a line, and the data, each ending in CRLF, until a
// chunk of size 0, followed by trailing headers and an empty line. The
// data must be as long as decodedLength says.
func decodeChunked(body io.Reader, decodedLength string) ([]byte, error) {
	want, err := strconv.ParseInt(decodedLength, 10, 64)
	if err != nil || want < 0 {
		return nil, fmt.Errorf("X-Amz-Decoded-Content-Length %q is not a length", decodedLength)
	}
	br := bufio.NewReader(body)
	var data []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		sizeHex, _, _ := strings.Cut(line, ";") // signed chunks have extensions
		size, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil || size < 0 || int64(len(data))+size > want {
			return nil, fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			break
		}
		chunk := make([]byte, size+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, fmt.Errorf("chunk of %d bytes: %w", size, err)
		}
		if !bytes.HasSuffix(chunk, []byte("\r\n")) {
			return nil, fmt.Errorf("chunk of %d bytes not followed by CRLF", size)
		}
		data = append(data, chunk[:size]...)
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, fmt.Errorf("trailer: %w", err)
		}
		if line == "" {
			break
		}
	}
	if int64(len(data)) != want {
		return nil, fmt.Errorf("%d bytes of data, but X-Amz-Decoded-Content-Length is %d", len(data), want)
	}
	return data, nil
}

// readLine reads a line that ends in CRLF, and returns it without.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if errors.Is(err, io.EOF) {
		return "", io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", err
	}
	line, ok := strings.CutSuffix(line, "\r\n")
	if !ok {
		return "", fmt.Errorf("line %q does not end in CRLF", line)
	}
	return line, nil
}
