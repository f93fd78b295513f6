//go:build tools

// Package tools names the Kubernetes command that internal/testcluster
// builds from this module, so that go mod tidy keeps what it needs.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
