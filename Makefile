# make test is the one command that runs every test; CI runs exactly this.
GO        ?= go
GOTESTFLAGS ?= -race -timeout 25m

.PHONY: test vet fmt-check unit build bench fuzz

test: vet fmt-check unit fuzz-short

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test $(GOTESTFLAGS) ./...

build:
	CGO_ENABLED=0 $(GO) build -o bin/chartee ./cmd/chartee

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./tee/

# Fuzzing (docs/FUZZING.md). fuzz-short runs every native fuzz target for a
# few seconds and fails on any finding; fuzz-campaign is the long run,
# FUZZTIME per target (go test -fuzz takes one target per invocation).
.PHONY: fuzz-short fuzz-campaign
FUZZTIME ?= 10m

fuzz-short:
	GO=$(GO) .ci/fuzz-short

fuzz-campaign:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINTIME=2s FUZZTIMEOUT=0 .ci/fuzz-short
