//go:build tools

// Package tools records the containerd main packages that build.sh compiles for the local
// cluster's nodes, so that `go mod tidy` keeps every module they need in go.mod and go.sum.
// containerd is its own module because its dependencies need not agree with k8s.io/kubernetes.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
