#!/usr/bin/env bash
# Builds the .deb and .rpm from the linux release binaries (make release first).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-dev}
# Package versions must start with a digit.
pkgversion=$version
[[ $pkgversion =~ ^[0-9] ]] || pkgversion=0.0.0~${version//-/.}
command -v nfpm >/dev/null || PATH=$PATH:$(go env GOPATH)/bin
command -v nfpm >/dev/null || go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
for arch in amd64 arm64; do
  for fmt in deb rpm; do
    VERSION=$pkgversion ARCH=$arch BINARY=dist/tripwire-$version-linux-$arch \
      nfpm package --config deploy/nfpm.yaml --packager $fmt --target dist/
  done
done
ls -1 dist/*.deb dist/*.rpm
