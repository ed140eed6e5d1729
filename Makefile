# veni — build, test, demo and benchmarks. Run test, demo and bench as root:
# each first installs what it needs beyond Go (hack/deps.sh, with apt).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/veni-cni/veni/commands.version=$(VERSION) -X github.com/veni-cni/veni/commands.commit=$(COMMIT)
BIN      := bin/veni

# The shipped binary is static; only the race detector needs cgo.
export CGO_ENABLED = 0

# Extra go test flags (.ci/run passes -v to count skipped tests).
GOTESTFLAGS ?=
# How long "make fuzz" runs each fuzz target.
FUZZTIME ?= 10s

# Every package's tests run under the race detector except e2e and bench,
# whose test binaries drive other processes (the static veni binary, the
# benchmark drivers) and hold no concurrency of their own worth the time.
# -race needs cgo and gcc; without gcc (never in CI) they run without it.
PLAIN_PKGS := ./e2e/... ./bench/...
RACE_PKGS   = $(shell $(GO) list ./... | grep -Ev '/(e2e|bench)(/|$$)')
RACE        = $(if $(shell command -v gcc 2>/dev/null),-race)

.PHONY: all build test test-unit fuzz demo bench lint generate check-generated check-packaging clean k8s-bins \
	deps-test deps-demo deps-bench deps-generate deps-ci

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# Every test. Unit tests run anywhere; tests that need root skip themselves
# without it (and fail instead under VENI_REQUIRE_PRIVILEGED=1, as in CI).
# -p 1: privileged tests build simulated VPCs and must not share the kernel's
# namespaces and routes with another package's run.
test: build deps-test k8s-bins
ifneq ($(VENI_REQUIRE_PRIVILEGED),1)
	@[ -n "$(RACE)" ] || echo "make test: no gcc, so no -race (hack/deps.sh test, as root, installs it)" >&2
else
	@[ -n "$(RACE)" ] || { echo "make test: -race needs gcc (hack/deps.sh test, as root)" >&2; exit 1; }
endif
	CGO_ENABLED=$(if $(RACE),1,0) $(GO) test $(RACE) $(GOTESTFLAGS) -count=1 -p 1 -timeout 30m $(RACE_PKGS)
	VENI_BIN=$(CURDIR)/$(BIN) $(GO) test $(GOTESTFLAGS) -count=1 -p 1 -timeout 30m $(PLAIN_PKGS)

# Plain go test ./...: no -race, no tools installed. For a non-root run; as
# root use make test, which keeps privileged packages from running at once.
test-unit:
	$(GO) test -count=1 ./...

# Each fuzz target for FUZZTIME (the seed corpora under testdata/fuzz also
# run in every plain go test).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./hack/fuzz.sh

demo: build deps-demo
	./hack/demo.sh

bench: build deps-bench
	./hack/bench.sh

# kube-apiserver and kubectl for the tests, built once per version into
# /var/cache/veni-k8s (about 6.5 minutes the first time, nothing after).
k8s-bins:
	@GO=$(GO) CGO_ENABLED=0 ./hack/k8s-bins.sh >/dev/null

deps-test deps-demo deps-bench deps-generate deps-ci:
	@./hack/deps.sh $(@:deps-%=%)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd e2e/libcni100 && $(GO) vet ./...

generate: deps-generate
	$(GO) generate ./ebpf/... ./eni/sim/fabric/trunkbpf/...

check-generated: deps-generate
	./ebpf/check-generated.sh

# The systemd unit must pass systemd-analyze verify (where systemd is).
check-packaging: build
	./hack/check-packaging.sh $(BIN)

clean:
	rm -rf bin
