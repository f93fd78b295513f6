package testcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	rbacv1client "k8s.io/client-go/kubernetes/typed/rbac/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// tokenLifetime is how long the driver's token is valid: longer than a
// cluster that hack/testcluster keeps up for days.
const tokenLifetime = 30 * 24 * time.Hour

// prepareNamespace does in the cluster what an administrator does for the
// driver: it creates its namespace, which enforces the restricted Pod
// Security Standard, applies deploy/rbac.yaml in it, creates the Secret
// of the datastore's credentials, and that of its CA if it has one, and
// writes the kubeconfig file of the driver's ServiceAccount.
func (c *Cluster) prepareNamespace(ctx context.Context, dir string) error {
	core, err := corev1client.NewForConfig(c.REST)
	if err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	rbac, err := rbacv1client.NewForConfig(c.REST)
	if err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   c.Namespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}
	if _, err := core.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("testcluster: creating namespace %s: %w", c.Namespace, err)
	}
	if err := c.applyRBAC(ctx, core, rbac); err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: c.CredentialsSecret},
		StringData: make(map[string]string),
	}
	for _, kv := range c.DatastoreEnv {
		name, value, _ := strings.Cut(kv, "=")
		// The shared config files are the host's /dev/null, which an
		// image need not have; a pod has no AWS profiles anyway. The CA
		// file is the host's too: pods get the CA from CASecret.
		switch name {
		case "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "SSL_CERT_FILE", "AWS_CA_BUNDLE":
		default:
			secret.StringData[name] = value
		}
	}
	if _, err := core.Secrets(c.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("testcluster: creating secret %s: %w", c.CredentialsSecret, err)
	}
	if c.CASecret != "" {
		ca := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: c.CASecret},
			Data:       map[string][]byte{"ca.crt": c.s3.CACert},
		}
		if _, err := core.Secrets(c.Namespace).Create(ctx, ca, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("testcluster: creating secret %s: %w", c.CASecret, err)
		}
	}
	// The API server signs the token with its ServiceAccount key; it
	// needs no controller.
	seconds := int64(tokenLifetime / time.Second)
	tr, err := core.ServiceAccounts(c.Namespace).CreateToken(ctx, serviceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("testcluster: requesting a token of serviceaccount %s: %w", serviceAccount, err)
	}
	driver := rest.AnonymousClientConfig(c.REST)
	driver.BearerToken = tr.Status.Token
	c.DriverKubeconfig = filepath.Join(dir, "driver.kubeconfig")
	return writeKubeconfig(c.DriverKubeconfig, driver, serviceAccount)
}

// applyRBAC creates the objects of deploy/rbac.yaml in c.Namespace, as
// kubectl apply -n does in a new namespace.
func (c *Cluster) applyRBAC(ctx context.Context, core *corev1client.CoreV1Client, rbac *rbacv1client.RbacV1Client) error {
	file := repoFile("deploy", "rbac.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	for doc := range yamlDocuments(data) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("testcluster: %s: %w", file, err)
		}
		var meta metav1.TypeMeta
		if err := json.Unmarshal(js, &meta); err != nil {
			return fmt.Errorf("testcluster: %s: %w", file, err)
		}
		switch gvk := meta.GroupVersionKind(); {
		case meta == metav1.TypeMeta{}: // a document of comments only
		case gvk == corev1.SchemeGroupVersion.WithKind("ServiceAccount"):
			err = create(ctx, js, core.ServiceAccounts(c.Namespace).Create)
		case gvk == rbacv1.SchemeGroupVersion.WithKind("Role"):
			err = create(ctx, js, rbac.Roles(c.Namespace).Create)
		case gvk == rbacv1.SchemeGroupVersion.WithKind("RoleBinding"):
			err = create(ctx, js, rbac.RoleBindings(c.Namespace).Create)
		default:
			err = fmt.Errorf("unexpected kind %s", gvk)
		}
		if err != nil {
			return fmt.Errorf("testcluster: %s: %w", file, err)
		}
	}
	return nil
}

// create decodes an object from js and creates it with the typed client's
// method.
func create[T any](ctx context.Context, js []byte, method func(context.Context, *T, metav1.CreateOptions) (*T, error)) error {
	obj := new(T)
	if err := json.Unmarshal(js, obj); err != nil {
		return err
	}
	_, err := method(ctx, obj, metav1.CreateOptions{})
	return err
}

// yamlDocuments yields the documents of a YAML stream, which "---" lines
// separate.
func yamlDocuments(data []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		var doc []byte
		for line := range bytes.Lines(data) {
			if string(bytes.TrimRight(line, " \r\n")) == "---" {
				if !yield(doc) {
					return
				}
				doc = nil
				continue
			}
			doc = append(doc, line...)
		}
		yield(doc)
	}
}

// writeKubeconfig writes a kubeconfig file for cfg, with one context,
// whose namespace is the driver's.
func writeKubeconfig(name string, cfg *rest.Config, user string) error {
	const cluster = "testcluster"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[cluster] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: user, Namespace: namespace}
	kc.CurrentContext = user
	if err := clientcmd.WriteToFile(*kc, name); err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	return nil
}
