# nwhealth build. `make demo` runs the main job on a built-in sample;
# `make test` runs every test (what CI runs). Both install nothing by hand:
# Go modules come through the module proxy, system tools through .ci/deps.
SHELL := /bin/bash
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN := bin/nwhealth
FUZZTIME ?= 20s
# The release nwhealth --version prints beside the commit and Go version.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)

.PHONY: build test unit lint bench demo fuzz clean deps

# A static binary: no dynamic loader at start-up (a few ms of every short
# query). Filters are compiled by tcpdump, so nothing needs cgo.
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/nwhealth

deps:
	./.ci/deps

# The contract: vet, staticcheck and every test with the race detector.
test: build lint
	$(GO) test -race -count=1 -timeout 40m ./...

unit:
	$(GO) test -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: build
	./scripts/bench.sh

demo: build
	./scripts/demo.sh

# Each fuzz target for FUZZTIME; crashers land under testdata/fuzz/.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin out
