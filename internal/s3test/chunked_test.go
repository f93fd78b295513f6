package s3test

import (
	"strings"
	"testing"
)

func TestDecodeChunked(t *testing.T) {
	const trailer = "0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
	tests := []struct {
		name    string
		body    string
		length  string // X-Amz-Decoded-Content-Length
		want    string
		wantErr string
	}{
		{name: "two chunks", body: "5\r\nhello\r\n1\r\n!\r\n" + trailer, length: "6", want: "hello!"},
		{name: "empty", body: trailer, length: "0", want: ""},
		{name: "no trailing headers", body: "2\r\nhi\r\n0\r\n\r\n", length: "2", want: "hi"},
		{name: "signed chunk", body: "2;chunk-signature=ab\r\nhi\r\n0;chunk-signature=cd\r\n\r\n", length: "2", want: "hi"},
		{name: "short of the length", body: "2\r\nhi\r\n" + trailer, length: "3", wantErr: "2 bytes of data, but X-Amz-Decoded-Content-Length is 3"},
		{name: "over the length", body: "2\r\nhi\r\n" + trailer, length: "1", wantErr: `bad chunk size "2"`},
		{name: "no length", body: trailer, length: "", wantErr: `X-Amz-Decoded-Content-Length "" is not a length`},
		{name: "bad size", body: "x\r\nhi\r\n" + trailer, length: "2", wantErr: `bad chunk size "x"`},
		{name: "chunk without CRLF", body: "2\r\nhi..0\r\n\r\n", length: "2", wantErr: "chunk of 2 bytes not followed by CRLF"},
		{name: "cut in a chunk", body: "5\r\nhel", length: "5", wantErr: "chunk of 5 bytes: unexpected EOF"},
		{name: "cut in the trailer", body: "2\r\nhi\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n", length: "2", wantErr: "trailer: unexpected EOF"},
		{name: "bare LF", body: "2\nhi\r\n" + trailer, length: "2", wantErr: `line "2\n" does not end in CRLF`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeChunked(strings.NewReader(tt.body), tt.length)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("decodeChunked: %q, %v; want the error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("decodeChunked: %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
