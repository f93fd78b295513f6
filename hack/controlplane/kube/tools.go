//go:build tools

// Package tools names the Kubernetes commands that internal/testcluster
// builds from this module, so that go mod tidy keeps what they need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
