# TripWire build. `make test` is what CI runs (.ci/run); `make demo` runs the
# whole product on this machine.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
BIN     := bin

.PHONY: build test test-go test-plugin bench lint fmt bpf bpf-check collector plugin demo demo-stop release packages clean

build: ## the agent, statically linked
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tripwire ./agent/cmd/tripwire

collector: ## the OCB-built tripwire-collector
	./collector/build.sh

test: lint bpf-check collector test-go test-plugin ## everything CI runs

test-go:
	$(GO) test -count=1 -timeout 40m ./...

test-plugin:
	$(MAKE) -C grafana-plugin test

bench: ## benchmarks; each prints its figures (bench/run.sh SECTION runs one)
	./bench/run.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^grafana-plugin/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

bpf: ## regenerate the eBPF objects and Go bindings (needs clang)
	$(GO) generate ./bpf

bpf-check: ## fail if the committed eBPF objects are stale
	./bpf/check.sh

plugin: ## the Grafana plugin into grafana-plugin/dist
	$(MAKE) -C grafana-plugin build

demo: ## run TripWire end to end on this machine
	./deploy/demo.sh

demo-stop:
	./deploy/demo.sh stop

release: ## static binaries for every supported target into dist/
	./deploy/release.sh $(VERSION)

packages: release ## .deb and .rpm
	./deploy/package.sh $(VERSION)

clean:
	rm -rf $(BIN) dist collector/_build
