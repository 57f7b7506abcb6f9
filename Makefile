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

.PHONY: run build plugins examples conform test unit fuzz lint bench load clean dgraph-bin dgraph-up dgraph-down mosquitto-bin

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

## test: lint, every test under -race (Dgraph tests on a real server), the conformance table, then a short run of every fuzz target
test: lint unit conform fuzz

# The Dgraph and MQTT tests start their own servers (scripts/dgraph.sh,
# plugins/mosquittotest); here they must not be skipped.
unit: dgraph-bin mosquitto-bin examples
	SWITCHYARD_REQUIRE_DGRAPH=1 SWITCHYARD_REQUIRE_MOSQUITTO=1 $(GO) test -race -count=1 -timeout 30m ./...
	# The hostile-module suite checks the host's resident memory, which the
	# race detector's shadow memory hides: once more without it.
	$(GO) test -count=1 -run '^TestHostileModules$$' ./runtime/host/wasm
	cd sdk && $(GO) test -race -count=1 ./...

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

clean:
	rm -rf $(BIN)
