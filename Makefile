# make test is the one command that runs every test; CI runs exactly this.
GO        ?= go
GOTESTFLAGS ?= -race -timeout 25m

.PHONY: test vet fmt-check unit allocs bench-check build bench fuzz man

# man first: docs/chartee.1 is generated from the help texts, and a test
# checks it is current.
test: man vet fmt-check unit allocs bench-check fuzz-short

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test $(GOTESTFLAGS) ./...

# The zero-allocation tests (tee/allocs_test.go) are built without -race:
# under the race detector sync.Pool drops what is put back on purpose.
allocs:
	$(GO) test -count=1 -run '^TestAllocs' ./tee/

# A quick bench run that fails on a gross regression only (bounds in
# e2e/bench/check.go); the real targets stay in `go run ./e2e/bench`. Best
# of 3 one-second rounds, N=1 against socat, 200 idle clients.
bench-check:
	d=$$(mktemp -d) && $(GO) run ./e2e/bench -quick -check -rounds 3 -peers socat,chartee -clients 1 \
		-workloads throughput,rtt,idle -profile=false -out $$d/bench.md; s=$$?; rm -rf $$d; exit $$s

build:
	CGO_ENABLED=0 $(GO) build -o bin/chartee ./cmd/chartee

# docs/chartee.1 from the help texts (chartee help --man).
man:
	$(GO) run ./cmd/chartee help --man > docs/chartee.1.tmp && mv docs/chartee.1.tmp docs/chartee.1

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

# web-assets refreshes the browser console's vendored JavaScript (web/static/
# vendor/) from npm: the exact dist files of the pinned versions, with their
# licenses. `go run` and `go build` never need npm; the files are embedded.
XTERM_VERSION     ?= 6.0.0
XTERM_FIT_VERSION ?= 0.11.0
.PHONY: web-assets
web-assets:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent @xterm/xterm@$(XTERM_VERSION) @xterm/addon-fit@$(XTERM_FIT_VERSION) >/dev/null) && \
	mkdir -p "$$tmp/x" "$$tmp/f" web/static/vendor/xterm web/static/vendor/addon-fit && \
	tar -xzf "$$tmp/xterm-xterm-$(XTERM_VERSION).tgz" -C "$$tmp/x" && \
	tar -xzf "$$tmp/xterm-addon-fit-$(XTERM_FIT_VERSION).tgz" -C "$$tmp/f" && \
	cp "$$tmp/x/package/lib/xterm.js" "$$tmp/x/package/css/xterm.css" "$$tmp/x/package/LICENSE" web/static/vendor/xterm/ && \
	cp "$$tmp/f/package/lib/addon-fit.js" "$$tmp/f/package/LICENSE" web/static/vendor/addon-fit/ && \
	printf '@xterm/xterm %s\n@xterm/addon-fit %s\n' $(XTERM_VERSION) $(XTERM_FIT_VERSION) > web/static/vendor/VERSIONS && \
	echo "web-assets: @xterm/xterm $(XTERM_VERSION), @xterm/addon-fit $(XTERM_FIT_VERSION) in web/static/vendor/"
