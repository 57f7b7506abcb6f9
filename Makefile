# Switchyard — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
CONFIG   ?= plugins.yaml
FUZZTIME ?= 5s
# The WASM guests: every plugins/<kind>/<name> with a wasm/ folder, and that folder
# (built-in plugins beside them are native Go and not vetted for wasip1).
WASM_PLUGINS := $(foreach d,$(wildcard plugins/*/*/wasm examples/*/wasm),./$(patsubst %/wasm,%,$(d)) ./$(d))

.PHONY: run build plugins examples conform test unit fuzz lint bench load clean dgraph-bin dgraph-up dgraph-down mosquitto-bin k8s-check

## run: build the relay and the shipped plugins, start Switchyard with plugins.yaml
run: build plugins
	$(BIN)/switchyard run -c $(CONFIG)

## plugins: the shipped WASM plugins (Go guests) into bin/plugins (no-op when up to date)
plugins:
	./plugins/build.sh $(BIN)/plugins

## build: the relay, the load tool and the device simulator into ./bin
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/switchyard ./runtime/cmd/switchyard
	$(GO) build -o $(BIN)/switchyard-load ./runtime/cmd/switchyard-load
	$(GO) build -o $(BIN)/devicesim ./examples/devicesim

## examples: build the example guests (C, Rust, AssemblyScript, WAT, Go); each build.sh installs its toolchain when missing
examples:
	./scripts/examples.sh

## conform: the conformance kit over every example and shipped WASM plugin, as a table (sdk/plugintest)
conform: build plugins examples
	# A 1 s deadline per call: the table is about behaviour, and CI shares two cores.
	$(BIN)/switchyard conform -call-timeout 1s examples/* plugins/*/*

## test: lint, the Kubernetes manifests (k8s-check), every test under -race (Dgraph tests on a real server), the conformance table, then a short run of every fuzz target
test: lint k8s-check unit conform fuzz deploy-check

# The Dgraph and MQTT tests start their own servers (scripts/dgraph.sh,
# plugins/mosquittotest); here they must not be skipped.
unit: dgraph-bin mosquitto-bin examples
	SWITCHYARD_REQUIRE_DGRAPH=1 SWITCHYARD_REQUIRE_MOSQUITTO=1 $(GO) test -race -count=1 -timeout 30m ./...
	# The hostile-module suite checks the host's resident memory, which the
	# race detector's shadow memory hides: once more without it.
	$(GO) test -count=1 -run '^TestHostileModules$$' ./runtime/host/wasm
	cd sdk && $(GO) test -race -count=1 ./...

## k8s-check: the Kubernetes manifests, offline: render deploy/k8s with kustomize in process, decode every
## object strictly into its k8s.io/api type, check the rules types cannot (switchyard validate on the
## ConfigMap's plugins.yaml among them), and the checker's tests on broken manifests (deploy/k8s/check)
k8s-check: build
	cd deploy/k8s/check && $(GO) vet ./... && \
	  SWITCHYARD_BIN=$(CURDIR)/$(BIN)/switchyard $(GO) test -count=1 ./... && \
	  $(GO) run . -switchyard $(CURDIR)/$(BIN)/switchyard

## dgraph-bin: build the pinned Dgraph v25 server into ~/.cache/switchyard when missing
dgraph-bin:
	./scripts/dgraph.sh bin

## mosquitto-bin: install Mosquitto (apt) when missing, for the MQTT tests
mosquitto-bin:
	./scripts/mosquitto.sh bin

## dgraph-up: start Dgraph zero + alpha on loopback (ACL on; gRPC 9180, HTTP 8180), data in data/dgraph
dgraph-up:
	./scripts/dgraph.sh up

## dgraph-down: stop them
dgraph-down:
	./scripts/dgraph.sh down

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet $(WASM_PLUGINS)
	cd sdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...

## bench: Go benchmarks (figures only; nothing fails on timing)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## load: idle-connection memory, relay vs bare nbio, at 1k/10k/19k (see docs/BENCHMARKS.md)
load: build
	$(BIN)/switchyard-load compare -n 1000,10000,19000 -hold 20s -relay-bin $(BIN)/switchyard

.PHONY: cross image deploy-check
CROSS_ARCHS ?= amd64 arm64
IMAGE       ?= switchyard:$(VERSION)

## cross: static Linux relays bin/linux-<arch>/switchyard for amd64 and arm64 (CROSS_ARCHS), and the WASM plugins once into bin/plugins
cross: plugins
	@for arch in $(CROSS_ARCHS); do \
	  echo "cross: $(BIN)/linux-$$arch/switchyard"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
	    -o $(BIN)/linux-$$arch/switchyard ./runtime/cmd/switchyard || exit 1; \
	done

## image: the container image for linux/amd64 and linux/arm64 (needs Docker with buildx; IMAGE_FLAGS=--push to publish; not part of make test)
image:
	docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=$(VERSION) $(IMAGE_FLAGS) -f deploy/Dockerfile -t $(IMAGE) .

## deploy-check: deploy/ without a container engine: the Dockerfile (lint, image config, its build stage run here), .dockerignore, compose files (compose-spec schema, cross-references, services run on the host), the systemd unit, an arm64 cross build
deploy-check: build plugins dgraph-bin mosquitto-bin
	$(MAKE) --no-print-directory cross CROSS_ARCHS=arm64
	./scripts/apt-need.sh systemd jq curl
	cd deploy/compose/check && $(GO) vet ./... && \
	  DEPLOYCHECK_REQUIRE=1 DEPLOYCHECK_VERSION=$(VERSION) $(GO) test -count=1 -timeout 10m ./...

clean:
	rm -rf $(BIN)
