# TripWire build. `make test` is what CI runs (.ci/run); `make demo` runs the
# whole product on this machine.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
BIN     := bin

.PHONY: build cross deps test test-go test-plugin test-scripts test-demo bench lint fmt bpf bpf-check collector plugin demo demo-stop release packages clean

build: ## the agent, statically linked
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tripwire ./agent/cmd/tripwire

collector: ## the OCB-built tripwire-collector
	./collector/build.sh

test: deps lint cross bpf-check collector test-go test-plugin test-scripts ## everything CI runs

# Every target the agent ships for: vet the agent, what it shares with the
# collector (internal/, bpf/, contract/) and build it, for each. The whole
# module is vetted for linux/amd64 by lint; vetting the collector's dependency
# tree for four more targets cost ~20 min cold here. The grafana-plugin module
# builds its own targets.
CROSS_TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64

cross: ## vet and build the agent for every supported GOOS/GOARCH
	@set -e; for t in $(CROSS_TARGETS); do \
	  echo "vet and build $$t"; \
	  export GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0; \
	  $(GO) vet ./agent/... ./internal/... ./bpf/...; (cd contract && $(GO) vet ./...); \
	  $(GO) build -o /dev/null ./agent/cmd/tripwire; \
	done

deps: ## install what make test needs when it is missing (says what it installs)
	./deploy/deps.sh test

test-go:
	$(GO) test -count=1 -timeout 40m ./...
	cd contract && $(GO) test -count=1 ./...

# The shell tests of the scripts behind make test and make demo.
test-scripts:
	./deploy/test/node_test.sh
	./deploy/test/deps_test.sh

# make demo's port checks against real listeners on each demo port (root;
# ~2.5 min warm on a busy machine, so .ci/run calls it after make test).
test-demo:
	./deploy/test/demo_ports_test.sh

# The plugin's frontend needs Node 22 (the machine's when it has it, else
# installed from npm into .tools/ by deploy/node.sh) and its backend mage.
MAGE     := $(shell $(GO) env GOPATH)/bin/mage
PLUGIN_ENV := nodebin=$$($(CURDIR)/deploy/node.sh bin) && PATH=$$nodebin:$$PATH

$(MAGE):
	@echo "installing mage v1.17.2 with go install"
	$(GO) install github.com/magefile/mage@v1.17.2

test-plugin: plugin
	cd grafana-plugin && $(GO) vet ./pkg/... && $(GO) test -count=1 ./pkg/...
	cd grafana-plugin && TRIPWIRE_PLUGIN_BINARY=dist/datasource/gpx_tripwire_$$($(GO) env GOOS)_$$($(GO) env GOARCH) $(GO) test -count=1 ./pkg/protocoltest/
	cd grafana-plugin && $(PLUGIN_ENV) sh -c 'npm run typecheck && npm run lint && npm run test:ci'
	cd grafana-plugin && for f in dist/plugin.json dist/module.js dist/datasource/plugin.json dist/datasource/module.js \
	  dist/datasource/gpx_tripwire_linux_amd64 dist/datasource/gpx_tripwire_linux_arm64 \
	  dist/datasource/gpx_tripwire_darwin_amd64 dist/datasource/gpx_tripwire_darwin_arm64; do \
	  test -s $$f || { echo "missing $$f"; exit 1; }; done

bench: ## benchmarks; each prints its figures (bench/run.sh SECTION runs one)
	./bench/run.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^grafana-plugin/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd contract && $(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

bpf: ## regenerate the eBPF objects and Go bindings (needs clang)
	$(GO) generate ./bpf

bpf-check: ## fail if the committed eBPF objects are stale
	./bpf/check.sh

plugin: $(MAGE) ## the Grafana plugin into grafana-plugin/dist
	cd grafana-plugin && $(PLUGIN_ENV) npm ci --no-audit --no-fund
	cd grafana-plugin && $(PLUGIN_ENV) npm run build
	cd grafana-plugin && $(MAGE) -v

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
