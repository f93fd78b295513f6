package testcluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/client-go/rest"
)

// startControlPlane starts etcd, the API server and the scheduler, and
// sets c's fields about the API server and its administrator.
func (c *Cluster) startControlPlane(ctx context.Context, bin, dir string) error {
	etcdURL, err := c.startEtcd(ctx, bin, dir)
	if err != nil {
		return err
	}
	if err := c.startAPIServer(ctx, bin, dir, etcdURL); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.REST, "admin"); err != nil {
		return err
	}
	// The scheduler has no port to ask whether it is ready, and needs
	// none: it schedules the pods created before it watches them.
	p, err := startProcess(bin, dir, "kube-scheduler",
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0")
	if err != nil {
		return err
	}
	c.closers = append(c.closers, p.stop)
	return nil
}

// startEtcd starts etcd and returns its client URL.
func (c *Cluster) startEtcd(ctx context.Context, bin, dir string) (string, error) {
	clientPort, err := freePort()
	if err != nil {
		return "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return "", err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	p, err := startProcess(bin, dir, "etcd",
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer, "--log-level=error")
	if err != nil {
		return "", err
	}
	c.closers = append(c.closers, p.stop)
	err = p.waitFor(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, client+"/health", nil)
		if err != nil {
			return err
		}
		return statusOK(http.DefaultClient.Do(req))
	})
	return client, err
}

// startAPIServer starts kube-apiserver on etcd, with one administrator
// whose token is c.Token, and sets c's fields about it.
func (c *Cluster) startAPIServer(ctx context.Context, bin, dir, etcdURL string) error {
	// One key signs the ServiceAccounts' tokens and checks them.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	c.Token = randomHex()
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := errors.Join(
		writeFile(keyFile, keyPEM),
		writeFile(tokenFile, fmt.Appendf(nil, "%s,admin,admin,\"system:masters\"\n", c.Token)),
	); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	certDir := filepath.Join(dir, "certs")
	p, err := startProcess(bin, dir, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--cert-dir="+certDir,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+keyFile, "--service-account-signing-key-file="+keyFile,
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		// No controller-manager makes the ServiceAccounts' tokens that
		// this plugin would mount in the pods.
		"--disable-admission-plugins=ServiceAccount",
		"--service-cluster-ip-range=10.0.0.0/24")
	if err != nil {
		return err
	}
	c.closers = append(c.closers, p.stop)
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	return p.waitFor(ctx, func(ctx context.Context) error {
		if c.Client == nil {
			ca, err := readCA(filepath.Join(certDir, "apiserver.crt"))
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
			c.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
			c.REST = &rest.Config{
				Host:            c.URL,
				BearerToken:     c.Token,
				TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
			}
		}
		return statusOK(c.Do(ctx, http.MethodGet, "/readyz", nil))
	})
}

// readCA returns the certificate of the CA that signed the API server's
// certificate. With no certificate of its own, the API server makes a CA
// and a certificate for 127.0.0.1, the address it is bound to, and
// writes them both, the CA's last, to file, before it listens; readCA
// fails until the file is whole.
func readCA(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) != 2 || !certs[1].IsCA || certs[0].CheckSignatureFrom(certs[1]) != nil {
		return nil, fmt.Errorf("%s is not a certificate followed by its CA's", file)
	}
	return certs[1], nil
}

// writeFile writes data to a file only its owner reads, as the cluster's
// files hold tokens and keys.
func writeFile(name string, data []byte) error {
	if err := os.WriteFile(name, data, 0o600); err != nil {
		return fmt.Errorf("testcluster: %w", err)
	}
	return nil
}
