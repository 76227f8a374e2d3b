#!/usr/bin/env bash
# Builds tripwire-collector with ocb from builder-config.yaml into
# collector/_build and copies it to bin/tripwire-collector.
# `make collector` runs this. A cold build takes a few minutes; when neither
# the manifest nor the root go.mod/go.sum changed since the last build, the
# module download step is skipped and Go's build cache makes it quick.
set -euo pipefail
cd "$(dirname "$0")"
OCB_VERSION=v0.165.0
GOBIN_DIR="$(go env GOPATH)/bin"
BUILDER="${BUILDER:-$GOBIN_DIR/builder}"
if ! [ -x "$BUILDER" ] || ! "$BUILDER" version 2>/dev/null | grep -q "${OCB_VERSION#v}"; then
  echo "installing ocb $OCB_VERSION" >&2
  GOFLAGS= go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  BUILDER="$GOBIN_DIR/builder"
fi
flags=()
if [ -f _build/go.sum ] && [ -f _build/components.go ] &&
   [ _build/go.sum -nt builder-config.yaml ] && [ _build/go.sum -nt ../go.mod ] && [ _build/go.sum -nt ../go.sum ]; then
  flags=(--skip-generate --skip-get-modules)
fi
# GOFLAGS from the caller (e.g. -mod=readonly) must not reach ocb's own
# `go mod tidy`.
GOFLAGS= "$BUILDER" --config builder-config.yaml "${flags[@]}"
# ocb's tidy rewrites go.sum only when it changes; mark the build as fresh.
touch _build/go.sum
mkdir -p ../bin
cp _build/tripwire-collector ../bin/tripwire-collector.tmp
mv ../bin/tripwire-collector.tmp ../bin/tripwire-collector
echo "built bin/tripwire-collector" >&2
