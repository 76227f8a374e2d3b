#!/usr/bin/env bash
# Builds the .deb and .rpm from the linux release binaries (make release first).
# nfpm.yaml's ${VERSION}, ${ARCH} and ${BINARY} are filled in per architecture.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-dev}
# Package versions must start with a digit.
pkgversion=$version
[[ $pkgversion =~ ^[0-9] ]] || pkgversion=0.0.0~${version//-/.}
command -v nfpm >/dev/null || PATH=$PATH:$(go env GOPATH)/bin
command -v nfpm >/dev/null || go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
conf=$(mktemp --suffix=.yaml)
trap 'rm -f "$conf"' EXIT
for arch in amd64 arm64; do
  # nfpm expands the environment in some fields only: substitute here.
  sed -e "s#\${VERSION}#$pkgversion#" -e "s#\${ARCH}#$arch#" \
    -e "s#\${BINARY}#dist/tripwire-$version-linux-$arch#" deploy/nfpm.yaml >"$conf"
  for fmt in deb rpm; do
    nfpm package --config "$conf" --packager $fmt --target dist/
  done
done
ls -1 dist/*.deb dist/*.rpm
