package kube

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daggerflow/dagger/internal/testcluster"
)

// TestRestrictedAdmission sends the pods of podCases to a real API server,
// in a namespace that enforces the restricted Pod Security Standard: it
// admits every one, and refuses a pod without dagger's security settings,
// which shows that it checks.
func TestRestrictedAdmission(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no test cluster")
	}
	c := testcluster.Start(t)
	const ns = "runs"
	post := func(path string, v any) (int, string) {
		t.Helper()
		body, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(t.Context(), http.MethodPost, path, body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(msg)
	}
	namespace := corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}},
	}
	if code, msg := post("/api/v1/namespaces", namespace); code != http.StatusCreated {
		t.Fatalf("creating namespace %s: %d %s", ns, code, msg)
	}
	// Dry runs are admitted or refused as real ones, and leave nothing.
	const path = "/api/v1/namespaces/" + ns + "/pods?dryRun=All"
	for _, tc := range podCases() {
		opts := tc.opts
		opts.Namespace = ns
		pod, err := Pod(tc.spec, opts)
		if err != nil {
			t.Fatal(err)
		}
		pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		if code, msg := post(path, pod); code != http.StatusCreated {
			t.Errorf("%s: the API server refused the pod: %d %s", tc.name, code, msg)
		}
	}
	plain := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "plain"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if code, msg := post(path, plain); code != http.StatusForbidden || !strings.Contains(msg, `violates PodSecurity \"restricted`) {
		t.Errorf("a pod without security settings: %d %s; want 403, violates PodSecurity", code, msg)
	}
}
