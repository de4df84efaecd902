//go:build tools

// Package tools records the main packages that ../build.sh compiles (MetalLB's controller and
// speaker), so that `go mod tidy` keeps every module they need in go.mod and go.sum.
package tools

import (
	_ "go.universe.tf/metallb/controller"
	_ "go.universe.tf/metallb/speaker"
)
