// Package examples ships the sample account used by the demo and the tests.
package examples

import "embed"

// FS holds acme.yaml and the prompt files it refers to.
//
//go:embed acme.yaml prompts/*.wav
var FS embed.FS
