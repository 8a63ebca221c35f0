SHELL := /bin/bash
# swarmfs build, test and demo. Everything runs as root on a fresh Debian
# machine: targets install the Debian packages they need (apt-get) or stop
# with a clear message.

GO        ?= go
BIN       := bin
PKG       := swarmfs
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X $(PKG)/swarm.Version=$(VERSION)
GOFLAGS_B := -trimpath -ldflags '$(LDFLAGS)'
export CGO_ENABLED := 0

# Debian tools the tests and the demo use, as command:package pairs.
TEST_TOOLS := sha256sum:coreutils gcc:gcc fusermount3:fuse3 getfattr:attr qemu-img:qemu-utils sqlite3:sqlite3 vmtouch:vmtouch aria2c:aria2 curl:curl opentracker:opentracker
# Debian packages without a command of their own, checked with dpkg.
TEST_DEBS  := python3-libtorrent
BENCH_TOOLS := sha256sum:coreutils fusermount3:fuse3 qemu-img:qemu-utils sqlite3:sqlite3 curl:curl opentracker:opentracker
DEMO_TOOLS := sha256sum:coreutils fusermount3:fuse3

TEST_TIMEOUT ?= 14m

.PHONY: all build test test-short lint fix demo bench bench-go clean deps-test deps-demo deps-bench check-go

all: build

check-go:
	@command -v $(GO) >/dev/null 2>&1 || { echo "error: Go is not installed (need go 1.26+ on PATH)" >&2; exit 1; }

build: check-go
	$(GO) build $(GOFLAGS_B) -o $(BIN)/ ./cmd/...

# install-missing installs the Debian packages in $$missing, or fails.
define install-missing
if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	      { echo "error: apt-get install$$missing failed" >&2; exit 1; }; \
	  else echo "error: missing Debian packages:$$missing (install them as root with apt-get)" >&2; exit 1; fi; \
	fi
endef

# ensure-tools installs the packages of missing commands (command:package pairs).
define ensure-tools
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	$(install-missing)
endef

# ensure-debs installs missing Debian packages (checked with dpkg).
define ensure-debs
	@missing=""; for pkg in $(1); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	$(install-missing)
endef

deps-test:
	$(call ensure-tools,$(TEST_TOOLS))
	$(call ensure-debs,$(TEST_DEBS))

deps-bench:
	$(call ensure-tools,$(BENCH_TOOLS))
	$(call ensure-debs,$(TEST_DEBS))

deps-demo:
	$(call ensure-tools,$(DEMO_TOOLS))

# The race detector needs cgo (gcc); the binaries the tests start are still built
# with CGO_ENABLED=0.
test: check-go deps-test
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-short: check-go
	$(GO) test -count=1 -short ./...

lint: check-go
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

fix: check-go
	gofmt -w $$(git ls-files '*.go')
	$(GO) mod tidy

demo: build deps-demo
	$(GO) run ./tests/demo --dir demo --bin $(BIN)

# The issue 7 benchmarks: a markdown table on stdout, report.json and the
# CDF chart in $(BENCH_OUT). BENCH_ARGS passes flags, e.g.
# BENCH_ARGS='--dist-preset cpu --only dist' or BENCH_ARGS=--quick.
BENCH_OUT  ?= bench-out
BENCH_ARGS ?=
bench: check-go deps-bench
	$(GO) build $(GOFLAGS_B) -o $(BIN)/ ./cmd/... ./tests/benchrun
	$(BIN)/benchrun --bin $(BIN) --out $(BENCH_OUT) $(BENCH_ARGS)

# Go micro-benchmarks (tracker announce path, in-process).
bench-go: check-go
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

clean:
	rm -rf $(BIN) demo $(BENCH_OUT)
