#!/bin/sh
# check.sh fails if the committed eBPF objects or Go bindings are stale: it
# regenerates them into a scratch copy of bpf/ (a dot-directory, which go
# build and ./... ignore) and compares byte for byte. Generation is
# deterministic (bpf2go maps the source directory out of the debug info,
# headers are vendored under headers/), so any difference is a real change.
# Needs clang and llvm-strip. Run from anywhere: `make bpf-check`.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d .check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r gen.go tripwire.bpf.c file.bpf.c tripwire.h vmlinux.h headers lib "$tmp"/
(cd "$tmp" && go generate ./)
stale=0
for f in tripwire_x86_bpfel.go tripwire_x86_bpfel.o tripwire_arm64_bpfel.go tripwire_arm64_bpfel.o \
	file_x86_bpfel.go file_x86_bpfel.o file_arm64_bpfel.go file_arm64_bpfel.o; do
	if ! cmp -s "$f" "$tmp/$f"; then
		echo "bpf/$f is stale: run make bpf" >&2
		stale=1
	fi
done
[ "$stale" = 0 ] && echo "bpf: generated files are up to date"
exit "$stale"
