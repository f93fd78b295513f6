package s3test_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/daggerflow/dagger/internal/s3test"
)

func TestAuthentication(t *testing.T) {
	srv := s3test.Start(t)
	emptySum := sha256.Sum256(nil)
	emptyHash := hex.EncodeToString(emptySum[:])
	tests := []struct {
		name       string
		key        string
		secret     string
		path       string // and query
		tamper     func(*http.Request)
		wantStatus int
		wantCode   string // in the body
	}{
		{name: "valid", key: srv.AccessKey, secret: srv.SecretKey, path: "/" + srv.Bucket + "?list-type=2&prefix=a%2Fb%20c", wantStatus: 200},
		{name: "valid key with spaces", key: srv.AccessKey, secret: srv.SecretKey, path: "/" + srv.Bucket + "/no%20such%20key", wantStatus: 404, wantCode: "NoSuchKey"},
		{name: "unknown key", key: "AKIAUNKNOWNUNKNOWN00", secret: srv.SecretKey, path: "/" + srv.Bucket, wantStatus: 403, wantCode: "InvalidAccessKeyId"},
		{name: "wrong secret", key: srv.AccessKey, secret: "not the secret", path: "/" + srv.Bucket, wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{
			name: "query changed after signing", key: srv.AccessKey, secret: srv.SecretKey, path: "/" + srv.Bucket + "?prefix=a",
			tamper:     func(r *http.Request) { r.URL.RawQuery = "prefix=b" },
			wantStatus: 403, wantCode: "SignatureDoesNotMatch",
		},
		{
			name: "unsigned", path: "/" + srv.Bucket,
			tamper:     func(r *http.Request) { r.Header.Del("Authorization") },
			wantStatus: 403, wantCode: "AccessDenied",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", srv.Endpoint+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Amz-Content-Sha256", emptyHash)
			creds := aws.Credentials{AccessKeyID: tt.key, SecretAccessKey: tt.secret}
			// S3 signs the path as sent, not escaped twice as other
			// services do.
			signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
			err = signer.SignHTTP(context.Background(), creds, req, emptyHash, "s3", s3test.Region, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				tt.tamper(req)
			}
			before := srv.Requests("GET")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantCode) {
				t.Errorf("status %d, body %s; want %d and %q", resp.StatusCode, body, tt.wantStatus, tt.wantCode)
			}
			counted := srv.Requests("GET") - before
			if want := map[bool]int{true: 1, false: 0}[tt.wantStatus != 403]; counted != want {
				t.Errorf("Requests(GET) grew by %d, want %d", counted, want)
			}
		})
	}
}

func TestPutObjectAndKeys(t *testing.T) {
	srv := s3test.Start(t)
	for _, k := range []string{"b/2", "a/1"} {
		if err := srv.PutObject(k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := srv.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys, " "); got != "a/1 b/2" {
		t.Errorf("Keys() = %q, want %q", got, "a/1 b/2")
	}
}

// TestTLS checks that a TLS server answers the clients that trust its CA,
// and only them, and that a plain server still speaks plain HTTP.
func TestTLS(t *testing.T) {
	plain, secure := s3test.Start(t), s3test.StartTLS(t)
	trusting := x509.NewCertPool()
	if !trusting.AppendCertsFromPEM(secure.CACert) {
		t.Fatalf("CACert holds no certificate: %q", secure.CACert)
	}
	tests := []struct {
		name    string
		srv     *s3test.Server
		roots   *x509.CertPool // nil for the system's
		wantErr bool           // else 403 AccessDenied, the answer to an unsigned request
	}{
		{name: "plain", srv: plain},
		{name: "trusted CA", srv: secure, roots: trusting},
		{name: "system roots", srv: secure, wantErr: true},
		{name: "other CA", srv: secure, roots: x509.NewCertPool(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantScheme := map[bool]string{true: "https://", false: "http://"}[tt.srv.CACert != nil]
			if !strings.HasPrefix(tt.srv.Endpoint, wantScheme) {
				t.Errorf("Endpoint %s, want %s…", tt.srv.Endpoint, wantScheme)
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tt.roots}}}
			defer client.CloseIdleConnections()
			resp, err := client.Get(tt.srv.Endpoint + "/" + tt.srv.Bucket)
			if tt.wantErr {
				var unknown x509.UnknownAuthorityError
				if !errors.As(err, &unknown) {
					t.Errorf("GET: %v, want x509.UnknownAuthorityError", err)
				}
				if err == nil {
					resp.Body.Close()
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "AccessDenied") {
				t.Errorf("status %d, body %s; want 403 AccessDenied", resp.StatusCode, body)
			}
		})
	}
}

// TestUploadTLS uploads objects over HTTPS with the AWS SDK, which then
// sends them aws-chunked without signing them, in one request or in
// parts, and checks that they read back as written.
func TestUploadTLS(t *testing.T) {
	srv := s3test.StartTLS(t)
	srv.SetEnv(t)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, srv.CACert, 0o644); err != nil {
		t.Fatal(err)
	}
	// The AWS SDK reads it in place of the system's roots.
	t.Setenv("AWS_CA_BUNDLE", ca)
	bucket, err := blob.OpenBucket(t.Context(), srv.URL("up"))
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"small", 100},
		{"multipart", 12 << 20}, // over s3blob's 5 MiB parts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := make([]byte, tt.size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			if err := bucket.WriteAll(t.Context(), tt.name, data, nil); err != nil {
				t.Fatal(err)
			}
			got, err := bucket.ReadAll(t.Context(), tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("read %s, want %s", summary(got), summary(data))
			}
		})
	}
}

// summary describes data in a line.
func summary(data []byte) string {
	return fmt.Sprintf("%d bytes %.8x…", len(data), data)
}
