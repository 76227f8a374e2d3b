# bpf.mk: regenerate and check TripWire's eBPF objects and Go bindings.
# The top-level Makefile includes it (`include bpf/bpf.mk`).
# Needs clang and llvm-strip (apt-get install clang llvm); go build does not.

BPF_SOURCES := bpf/gen.go bpf/tripwire.bpf.c bpf/tripwire.h bpf/vmlinux.h bpf/headers
BPF_OUTPUTS := tripwire_x86_bpfel.go tripwire_x86_bpfel.o tripwire_arm64_bpfel.go tripwire_arm64_bpfel.o

.PHONY: bpf bpf-check bpf-vmlinux

# bpf regenerates the committed objects and bindings in place.
bpf:
	cd bpf && go generate ./

# bpf-check regenerates into a scratch copy of bpf/ (a dot-directory, so go
# build ignores it) and fails if any committed output differs: stale bindings.
bpf-check:
	@set -e; tmp=$$(mktemp -d bpf/.check.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r $(BPF_SOURCES) "$$tmp"/; \
	(cd "$$tmp" && go generate ./); \
	for f in $(BPF_OUTPUTS); do \
		cmp -s "bpf/$$f" "$$tmp/$$f" || { echo "bpf/$$f is stale: run make bpf" >&2; exit 1; }; \
	done; echo "bpf: generated files are up to date"

# bpf-vmlinux refreshes vmlinux.h from the running kernel's BTF. The programs
# are CO-RE, so any recent kernel's header works for amd64 and arm64 alike
# (no arch-specific types such as pt_regs are used).
bpf-vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h
