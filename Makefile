# veni — build, test, demo and benchmarks. Run test, demo and bench as root.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/veni-cni/veni/commands.version=$(VERSION) -X github.com/veni-cni/veni/commands.commit=$(COMMIT)
BIN      := bin/veni

export CGO_ENABLED = 0

.PHONY: all build test test-unit demo bench lint generate check-generated clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# Unit tests run anywhere; tests that need root skip themselves without it.
# -p 1: privileged tests build simulated VPCs and must not share the kernel's
# namespaces and routes with another package's run.
test: build
	VENI_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 30m ./...

test-unit:
	$(GO) test -count=1 ./...

demo: build
	./hack/demo.sh

bench: build
	./hack/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

generate:
	$(GO) generate ./ebpf/...

check-generated:
	./ebpf/check-generated.sh

clean:
	rm -rf bin
