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
TEST_TOOLS := sha256sum:coreutils gcc:gcc fusermount3:fuse3 getfattr:attr qemu-img:qemu-utils sqlite3:sqlite3 vmtouch:vmtouch aria2c:aria2
DEMO_TOOLS := sha256sum:coreutils fusermount3:fuse3

TEST_TIMEOUT ?= 14m

.PHONY: all build test test-short lint fix demo bench clean deps-test deps-demo check-go

all: build

check-go:
	@command -v $(GO) >/dev/null 2>&1 || { echo "error: Go is not installed (need go 1.26+ on PATH)" >&2; exit 1; }

build: check-go
	$(GO) build $(GOFLAGS_B) -o $(BIN)/ ./cmd/...

# ensure-tools installs missing commands from Debian packages, or fails.
define ensure-tools
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	      { echo "error: apt-get install$$missing failed" >&2; exit 1; }; \
	  else echo "error: missing Debian packages:$$missing (install them as root with apt-get)" >&2; exit 1; fi; \
	fi
endef

deps-test:
	$(call ensure-tools,$(TEST_TOOLS))

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

bench: check-go
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

clean:
	rm -rf $(BIN) demo
