package testcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/daggerflow/dagger/internal/s3test"
	"github.com/daggerflow/dagger/runnerimage"
)

func TestMain(m *testing.M) { Main(m) }

// TestCluster starts one cluster and checks what its users rely on.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no test cluster")
	}
	c := Start(t)
	admin := kubeconfigClient(t, c.Kubeconfig)

	t.Run("Nodes", func(t *testing.T) {
		nodes, err := admin.Nodes().List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range nodes.Items {
			names = append(names, n.Name)
		}
		if want := []string{"node-1", "node-2"}; !slices.Equal(names, want) {
			t.Errorf("nodes %v, want %v", names, want)
		}
	})

	t.Run("Schedule", func(t *testing.T) {
		pod := restrictedPod("schedule", c.Registry+"/dagger/none:latest")
		p := createAndWait(t, admin, pod, func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
		t.Logf("bound to %s", p.Spec.NodeName)
	})

	t.Run("ScheduleGPU", func(t *testing.T) {
		pod := restrictedPod("gpu", c.Registry+"/dagger/none:latest")
		gpu := corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}
		pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: gpu, Limits: gpu}
		p := createAndWait(t, admin, pod, func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
		if p.Spec.NodeName != "node-2" {
			t.Errorf("a pod with a GPU is bound to %s, want node-2", p.Spec.NodeName)
		}
	})

	t.Run("Unschedulable", func(t *testing.T) {
		pod := restrictedPod("unschedulable", c.Registry+"/dagger/none:latest")
		pod.Spec.NodeSelector = map[string]string{"zone": "nowhere"}
		p := createAndWait(t, admin, pod, func(p *corev1.Pod) bool {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
					return true
				}
			}
			return false
		})
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Reason != corev1.PodReasonUnschedulable {
				t.Errorf("PodScheduled=False, reason %q (%s), want %q", cond.Reason, cond.Message, corev1.PodReasonUnschedulable)
			}
		}
	})

	t.Run("Driver", func(t *testing.T) {
		t.Setenv("KUBECONFIG", c.DriverKubeconfig)
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil)
		ns, _, err := cc.Namespace()
		if err != nil || ns != c.Namespace {
			t.Fatalf("the kubeconfig's namespace is %q (%v), want %q", ns, err, c.Namespace)
		}
		cfg, err := cc.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		driver, err := corev1client.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		pods := driver.Pods(ns)
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: "test=driver"})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		pod := restrictedPod("driver", c.Registry+"/dagger/none:latest")
		pod.Labels = map[string]string{"test": "driver"}
		if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Added {
				t.Errorf("first event %s, want %s", ev.Type, watch.Added)
			}
		case <-time.After(10 * time.Second):
			t.Error("no event of the pod created")
		}
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "test=driver"})
		if err != nil || len(list.Items) != 1 {
			t.Errorf("listing pods: %v, %v", list, err)
		}
		if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
		if _, err := driver.Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing secrets: %v, want forbidden", err)
		}
		if _, err := driver.Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing pods of namespace default: %v, want forbidden", err)
		}
	})

	t.Run("CredentialsSecret", func(t *testing.T) {
		s, err := admin.Secrets(c.Namespace).Get(t.Context(), c.CredentialsSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range c.DatastoreEnv {
			name, value, _ := strings.Cut(kv, "=")
			if got, ok := s.Data[name]; strings.HasPrefix(name, "AWS_") && ok && string(got) != value {
				t.Errorf("secret's %s = %q, want %q", name, got, value)
			}
		}
		for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"} {
			if _, ok := s.Data[name]; !ok {
				t.Errorf("secret has no %s", name)
			}
		}
	})

	t.Run("Env", func(t *testing.T) {
		var names []string
		for _, kv := range c.Env() {
			name, _, _ := strings.Cut(kv, "=")
			names = append(names, name)
		}
		for _, want := range []string{"KUBECONFIG", "DAGGER_NAMESPACE", "DAGGER_REGISTRY", "DAGGER_CREDENTIALS_SECRET", "DAGGER_DATASTORE", "AWS_ACCESS_KEY_ID"} {
			if !slices.Contains(names, want) {
				t.Errorf("Env has no %s: %v", want, names)
			}
		}
	})

	t.Run("RunImage", func(t *testing.T) {
		ref := pushHello(t, c, "dagger")
		pod := restrictedPod("hello", ref)
		pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: c.CredentialsSecret},
		}}}
		p := createAndWait(t, admin, pod, func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		})
		if p.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("pod %s: %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		// The API server fetches the log from the pod's node.
		out, err := admin.Pods(c.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := "hello " + s3test.Region + "\n"; string(out) != want {
			t.Errorf("pod's log %q, want %q (AWS_REGION from the credentials secret)", out, want)
		}
	})
}

// TestTLSDatastore starts a cluster whose datastore speaks HTTPS and
// checks that the driver's environment and the pods' Secrets trust its CA,
// and that the host's CA file stays out of the pods.
func TestTLSDatastore(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no test cluster")
	}
	c := StartWith(t, Options{TLSDatastore: true})
	admin := kubeconfigClient(t, c.Kubeconfig)
	env := make(map[string]string)
	for _, kv := range c.Env() {
		name, value, _ := strings.Cut(kv, "=")
		env[name] = value
	}
	for _, name := range []string{"SSL_CERT_FILE", "AWS_CA_BUNDLE"} {
		if env[name] != c.CAFile {
			t.Errorf("Env has %s=%q, want CAFile %q", name, env[name], c.CAFile)
		}
	}
	if env["DAGGER_CA_SECRET"] != c.CASecret || c.CASecret == "" {
		t.Errorf("Env has DAGGER_CA_SECRET=%q, CASecret is %q", env["DAGGER_CA_SECRET"], c.CASecret)
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := admin.Secrets(c.Namespace).Get(t.Context(), c.CASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.Data["ca.crt"]; !bytes.Equal(got, pem) {
		t.Errorf("secret %s has ca.crt %q, want CAFile's %q", c.CASecret, got, pem)
	}
	creds, err := admin.Secrets(c.Namespace).Get(t.Context(), c.CredentialsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"SSL_CERT_FILE", "AWS_CA_BUNDLE"} {
		if v, ok := creds.Data[name]; ok {
			t.Errorf("secret %s has the host's %s=%q", c.CredentialsSecret, name, v)
		}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("CAFile holds no certificate: %q", pem)
	}
	endpoint := env["AWS_ENDPOINT_URL_S3"]
	if !strings.HasPrefix(endpoint, "https://") {
		t.Fatalf("AWS_ENDPOINT_URL_S3=%s, want https://", endpoint)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an unsigned request: %s, want 403", resp.Status)
	}
}

// kubeconfigClient returns a client of the core API from a kubeconfig file.
func kubeconfigClient(t *testing.T, path string) *corev1client.CoreV1Client {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// restrictedPod returns a pod that the restricted Pod Security Standard
// admits.
func restrictedPod(name, image string) *corev1.Pod {
	yes, no := true, false
	uid := int64(runnerimage.UID)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: &no,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   &yes,
				RunAsUser:      &uid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:  "main",
				Image: image,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// createAndWait creates pod in namespace dagger and returns it once done
// says it is, failing t after 30 seconds.
func createAndWait(t *testing.T, client *corev1client.CoreV1Client, pod *corev1.Pod, done func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pods := client.Pods(namespace)
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + pod.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last corev1.PodStatus
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok {
			if done(p) {
				return p
			}
			last = p.Status
		}
	}
	t.Fatalf("pod %s: not done after 30 seconds; its last status: %+v", pod.Name, last)
	return nil
}

// pushHello builds a program that prints hello and $AWS_REGION and pushes
// it as a runner image to the repository name of c's registry, returning
// its reference.
func pushHello(t *testing.T, c *Cluster, name string) string {
	t.Helper()
	return c.Push(t, BuildProgram(t, `package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("hello", os.Getenv("AWS_REGION")) }
`), name)
}
