package dag

import (
	"strings"
	"testing"
)

func TestCheckOption(t *testing.T) {
	const (
		cpu     = `option cpu must be a number of CPUs or a quantity string such as "500m" or "1.5"`
		memory  = `option memory must be a whole number of bytes or a quantity string such as "2Gi"`
		env     = `option env must have variable names such as "MODEL_DIR", not `
		key     = `option node_selector must have label keys such as "disktype" or "kubernetes.io/arch", not `
		account = `option service_account must be a service account name such as "trainer", not `
		image   = `option image must be an image reference such as "python:3.12" or "ghcr.io/org/app:1.0", not `
		digest  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	long63 := strings.Repeat("a1", 31) + "z"           // the longest label name
	prefix := strings.Repeat("abcdefghi.", 25) + "abc" // the longest DNS subdomain
	tests := []struct {
		name  string
		value any
		want  string // a prefix of the error, or "" for none
	}{
		{"cpu", int64(2), ""},
		{"cpu", 0.5, ""},
		{"cpu", 0.001, ""},
		{"cpu", "500m", ""},
		{"cpu", "2", ""},
		{"cpu", "1.5", ""},
		{"cpu", "1e-3", ""},
		{"cpu", "0.1k", ""},
		{"cpu", "9223372036854775807m", ""},
		{"cpu", []any{int64(1)}, cpu},
		{"cpu", true, cpu},
		{"cpu", "", cpu + `, not "" (no number)`},
		{"cpu", "2 cores", cpu + `, not "2 cores" (unknown suffix " cores")`},
		{"cpu", "1K", cpu + `, not "1K" (unknown suffix "K")`},
		{"cpu", int64(0), "option cpu must be positive, not 0"},
		{"cpu", int64(-1), "option cpu must be positive, not -1"},
		{"cpu", -0.5, "option cpu must be positive, not -0.5"},
		{"cpu", "0", `option cpu must be positive, not "0"`},
		{"cpu", "-100m", `option cpu must be positive, not "-100m"`},
		{"cpu", "0.0005", `option cpu must be a whole number of millicores (1m is 0.001 CPU), not "0.0005"`},
		{"cpu", "1500u", `option cpu must be a whole number of millicores (1m is 0.001 CPU), not "1500u"`},
		{"cpu", 1e-5, `option cpu must be a whole number of millicores (1m is 0.001 CPU), not 1e-05`},
		{"cpu", "1E", `option cpu must be at most 9223372036854775807m, not "1E"`},
		{"cpu", int64(1) << 62, `option cpu must be at most 9223372036854775807m, not 4611686018427387904`},

		{"memory", int64(1), ""},
		{"memory", int64(128974848), ""},
		{"memory", "128974848", ""},
		{"memory", "512Mi", ""},
		{"memory", "2Gi", ""},
		{"memory", "1.5Gi", ""},
		{"memory", "1G", ""},
		{"memory", "1e9", ""},
		{"memory", "0.5Ki", ""},
		{"memory", "1000m", ""},
		{"memory", "7.5Ei", ""},
		{"memory", 1.5, memory},
		{"memory", 2e9, memory},
		{"memory", nil, memory},
		{"memory", "512MB", memory + `, not "512MB" (unknown suffix "MB")`},
		{"memory", "Gi", memory + `, not "Gi" (no number)`},
		{"memory", int64(0), "option memory must be positive, not 0"},
		{"memory", "-1Gi", `option memory must be positive, not "-1Gi"`},
		{"memory", "1.5", `option memory must be a whole number of bytes, not "1.5"`},
		{"memory", "1.1Ki", `option memory must be a whole number of bytes, not "1.1Ki"`},
		{"memory", "100m", `option memory must be a whole number of bytes, not "100m": m means thousandths; write Mi or M for mebibytes or megabytes`},
		{"memory", "8Ei", `option memory must be less than 8Ei, not "8Ei"`},

		{"gpu", int64(0), ""},
		{"gpu", int64(2), ""},
		{"gpu", int64(-1), "option gpu must be an int >= 0"},
		{"gpu", 1.0, "option gpu must be an int >= 0"},

		{"env", map[string]any{}, ""},
		{"env", map[string]any{"MODEL_DIR": "/m", "_x": "", "a1": "1"}, ""},
		{"env", map[string]any{"if": "a Starlark keyword is a fine name"}, ""},
		{"env", "A=1", "option env must be a dict of strings to strings"},
		{"env", map[string]any{"A": int64(1)}, `option env must map strings to strings; "A" maps to an int`},
		{"env", map[string]any{"MY-VAR": "x"}, env + `"MY-VAR" (letters, digits and _, not beginning with a digit)`},
		{"env", map[string]any{"my.var": "x"}, env + `"my.var"`},
		{"env", map[string]any{"1A": "x"}, env + `"1A"`},
		{"env", map[string]any{"": "x"}, env + `""`},
		{"env", map[string]any{"É": "x"}, env + `"É"`},
		{"env", map[string]any{"A": "x", "B C": "y", "D=": "z"}, env + `"B C"`},

		{"node_selector", map[string]any{"disktype": "ssd"}, ""},
		{"node_selector", map[string]any{"kubernetes.io/arch": "amd64", "Zone_1.a-b": "", "x": "A-1_b.C"}, ""},
		{"node_selector", map[string]any{long63: long63, prefix + "/" + long63: "v"}, ""},
		{"node_selector", []any{"disktype"}, "option node_selector must be a dict of strings to strings"},
		{"node_selector", map[string]any{"gpu": true}, `option node_selector must map strings to strings; "gpu" maps to a bool`},
		{"node_selector", map[string]any{"": "x"}, key + `"" (a lowercase DNS subdomain and / if any, then at most 63 letters, digits, -, _ and ., beginning and ending with a letter or digit)`},
		{"node_selector", map[string]any{"-disk": "x"}, key + `"-disk"`},
		{"node_selector", map[string]any{"disk-": "x"}, key + `"disk-"`},
		{"node_selector", map[string]any{"disk type": "x"}, key + `"disk type"`},
		{"node_selector", map[string]any{long63 + "x": "x"}, key},
		{"node_selector", map[string]any{"/arch": "x"}, key + `"/arch"`},
		{"node_selector", map[string]any{"kubernetes.io/": "x"}, key + `"kubernetes.io/"`},
		{"node_selector", map[string]any{"Kubernetes.io/arch": "x"}, key + `"Kubernetes.io/arch"`},
		{"node_selector", map[string]any{"a..b/arch": "x"}, key + `"a..b/arch"`},
		{"node_selector", map[string]any{"a/b/c": "x"}, key + `"a/b/c"`},
		{"node_selector", map[string]any{"x" + prefix + "/a": "x"}, key},
		{"node_selector", map[string]any{"disktype": "fast disk"}, `option node_selector must map "disktype" to a label value such as "ssd" or "", not "fast disk" (at most 63 letters, digits, -, _ and ., beginning and ending with a letter or digit)`},
		{"node_selector", map[string]any{"disktype": "ssd."}, `option node_selector must map "disktype" to a label value such as "ssd" or "", not "ssd."`},
		{"node_selector", map[string]any{"disktype": long63 + "x"}, `option node_selector must map "disktype" to a label value`},

		{"service_account", "trainer", ""},
		{"service_account", "ml-team.trainer-2", ""},
		{"service_account", "0", ""},
		{"service_account", prefix, ""},
		{"service_account", "", "option service_account must be a non-empty string"},
		{"service_account", int64(1), "option service_account must be a non-empty string"},
		{"service_account", "Trainer", account + `"Trainer" (at most 253 lowercase letters, digits, - and ., with a letter or digit at both ends and around each .)`},
		{"service_account", "ml_trainer", account + `"ml_trainer"`},
		{"service_account", "-trainer", account + `"-trainer"`},
		{"service_account", "trainer.", account + `"trainer."`},
		{"service_account", "a..b", account + `"a..b"`},
		{"service_account", "a.-b", account + `"a.-b"`},
		{"service_account", "x" + prefix, account},

		{"image", "python", ""},
		{"image", "python:3.12", ""},
		{"image", "python:3.12-slim", ""},
		{"image", "library/python:_x", ""},
		{"image", "ghcr.io/org/app:1.0", ""},
		{"image", "ghcr.io/org/app@" + digest, ""},
		{"image", "ghcr.io/org/app:1.0@" + digest, ""},
		{"image", "localhost:5000/x:1", ""},
		{"image", "localhost/x", ""},
		{"image", "Registry.Example.com:443/team/my_app.v2-b", ""},
		{"image", "", "option image must be a non-empty string"},
		{"image", []any{"python"}, "option image must be a non-empty string"},
		{"image", "python 3", image + `"python 3" (a reference has no whitespace)`},
		{"image", "python\n", image + `"python\n" (a reference has no whitespace)`},
		{"image", "Python:3", image + `"Python:3" (the repository path is lowercase letters, digits, ., _ and -, with a letter or digit at both ends of each part)`},
		{"image", "MyOrg/app", image + `"MyOrg/app" (the repository path`},
		{"image", "ghcr.io/Org/app", image + `"ghcr.io/Org/app" (the repository path`},
		{"image", "ghcr.io//app", image + `"ghcr.io//app" (the repository path`},
		{"image", "ghcr.io/app/", image + `"ghcr.io/app/" (the repository path`},
		{"image", "app-", image + `"app-" (the repository path`},
		{"image", ":1.0", image + `":1.0" (the repository path`},
		{"image", "localhost:5000", ""}, // the image localhost, tag 5000
		{"image", "python:", image + `"python:" (a tag is at most 128 letters, digits, _, . and -, not beginning with . or -)`},
		{"image", "python:.1", image + `"python:.1" (a tag`},
		{"image", "python:3+1", image + `"python:3+1" (a tag`},
		{"image", "python:" + strings.Repeat("a", 129), image + `"python:aaa`},
		{"image", "python:" + strings.Repeat("a", 128), ""},
		{"image", "app@sha256:abc", image + `"app@sha256:abc" (a digest is sha256: and 64 lowercase hex digits)`},
		{"image", "app@" + strings.ToUpper(digest), image + `"app@SHA256`},
		{"image", "app@" + digest + "@" + digest, image + `"app@sha256`},
	}
	for _, test := range tests {
		err := CheckOption(test.name, test.value)
		switch {
		case test.want == "" && err != nil:
			t.Errorf("CheckOption(%s, %#v) = %v, want nil", test.name, test.value, err)
		case test.want != "" && err == nil:
			t.Errorf("CheckOption(%s, %#v) = nil, want %s…", test.name, test.value, test.want)
		case test.want != "" && !strings.HasPrefix(err.Error(), test.want):
			t.Errorf("CheckOption(%s, %#v) = %v, want %s…", test.name, test.value, err, test.want)
		}
	}
}
