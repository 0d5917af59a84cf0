//go:build tools

// Package tools pins the External Secrets Operator command so that go.mod and go.sum record it.
package tools

import _ "github.com/external-secrets/external-secrets"
