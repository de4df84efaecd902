// Package v1 stands in for the Ansible scaffolding plugin of operator-sdk: a plugin that names
// itself and supports project version 3, so that operator-sdk links; scaffolding an Ansible
// project with this build is not supported.
package v1

import (
	"sigs.k8s.io/kubebuilder/v4/pkg/config"
	cfgv3 "sigs.k8s.io/kubebuilder/v4/pkg/config/v3"
	"sigs.k8s.io/kubebuilder/v4/pkg/plugin"
)

// Plugin is the stand-in plugin.
type Plugin struct{}

// Name is the upstream plugin's name.
func (Plugin) Name() string { return "base.ansible.sdk.operatorframework.io" }

// Version is the upstream plugin's version.
func (Plugin) Version() plugin.Version { return plugin.Version{Number: 1} }

// SupportedProjectVersions is what the upstream plugin supports.
func (Plugin) SupportedProjectVersions() []config.Version { return []config.Version{cfgv3.Version} }
