package s3test_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

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
