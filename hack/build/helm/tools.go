//go:build tools

// Package tools pins the upstream command built from this module: the helm CLI,
// at the version go.mod requires (hack/build.sh builds helm.sh/helm/v3/cmd/helm).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
