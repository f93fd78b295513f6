package store

import (
	"strings"
	"testing"
)

func TestParseHash(t *testing.T) {
	valid := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: valid},
		{in: "", wantErr: "want prefix"},
		{in: strings.TrimPrefix(valid, "sha256:"), wantErr: "want prefix"},
		{in: "sha512:" + strings.Repeat("0", 64), wantErr: "want prefix"},
		{in: valid[:len(valid)-1], wantErr: "want 64 hex digits, have 63"},
		{in: valid + "0", wantErr: "want 64 hex digits, have 65"},
		{in: strings.ToUpper(valid[:8]) + valid[8:], wantErr: "want prefix"},
		{in: valid[:10] + "A" + valid[11:], wantErr: `'A' is not a lowercase hex digit`},
		{in: valid[:10] + "g" + valid[11:], wantErr: `'g' is not a lowercase hex digit`},
	}
	for _, tt := range tests {
		h, err := ParseHash(tt.in)
		if tt.wantErr == "" {
			if err != nil || h != Hash(tt.in) {
				t.Errorf("ParseHash(%q) = %q, %v; want %q, nil", tt.in, h, err, tt.in)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("ParseHash(%q) error = %v; want error containing %q", tt.in, err, tt.wantErr)
		}
		if h != "" {
			t.Errorf("ParseHash(%q) = %q on error; want empty", tt.in, h)
		}
	}
}
