//go:build mage
// +build mage

package main

import (
	"github.com/magefile/mage/mg"

	// mage:import
	build "github.com/grafana/grafana-plugin-sdk-go/build"
)

// Default is what a bare `mage` runs.
var Default = Backend

// Backend builds the datasource backend for the platforms TripWire ships:
// dist/datasource/gpx_tripwire_{linux,darwin}_{amd64,arm64}. One at a time,
// since parallel Go builds on a small CI machine only thrash.
func Backend() {
	b := build.Build{}
	mg.SerialDeps(b.Linux, b.LinuxARM64, b.Darwin, b.DarwinARM64)
}
