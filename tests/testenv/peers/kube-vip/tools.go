//go:build tools

// Package tools records the main package that ../build.sh compiles (kube-vip's own main), so
// that `go mod tidy` keeps every module it needs in go.mod and go.sum.
package tools

import (
	_ "github.com/kube-vip/kube-vip"
)
