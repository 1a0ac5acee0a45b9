# Switchboard. `make demo` runs the product on the embedded database;
# `make test` runs every test (PostgreSQL at 127.0.0.1:5432 is required).
GO        ?= go
PKGS      := ./...
# Fuzz budgets are counts of inputs, not durations: with a duration Go's
# fuzz coordinator can report a spurious "context deadline exceeded" when
# the deadline races a worker mid-input (go.dev/issue/75804, fixed in Go
# 1.27); a count has no deadline to race.
FUZZTIME  ?= 20000x
# package:target pairs, FUZZTIME inputs each, run by `make test`
FUZZ      := ./internal/config:FuzzParse ./internal/routing:FuzzPrefixMatch ./internal/routing:FuzzHeaderLevel ./internal/routing:FuzzVerstatLevel \
             ./internal/media:FuzzParseSDP ./internal/media:FuzzDTMF ./internal/media:FuzzDTMFInfo ./internal/media:FuzzRelaySDP ./internal/media:FuzzRTCP ./internal/media:FuzzReadWAV \
             ./internal/registrar:FuzzDigestHeader ./internal/sipserver:FuzzInviteHeaders ./internal/sipserver:FuzzMessage ./internal/sipserver:FuzzWireScreen ./internal/api:FuzzUnmarshalStrict

.PHONY: all build demo test unit fuzz bench lint clean prompts cluster

all: build

build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

demo: build
	./bin/switchboard demo $(DEMOFLAGS)

test: lint unit fuzz

# The cluster tests (Kamailio, several nodes, kill -9 under load) run on
# their own after the rest, so that the other packages' load does not
# stall the PostgreSQL they share at the moment a node is killed.
CLUSTER   := ./internal/cluster

unit:
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list $(PKGS) | grep -v '/internal/cluster$$')
	$(GO) test -race -count=1 -timeout 10m $(CLUSTER)

fuzz:
	@set -e; for pt in $(FUZZ); do \
		pkg=$${pt%%:*}; target=$${pt##*:}; \
		echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Kamailio in front of NODES (default 2) serve processes on the local
# PostgreSQL, until Ctrl-C (bench/cluster.sh, deploy/README.md).
cluster:
	bash bench/cluster.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# Regenerate the built-in prompts (internal/prompt/builtin/*.wav) from
# espeak-ng; run once after changing their texts and commit the files.
prompts:
	$(GO) run ./internal/prompt/gen -out internal/prompt/builtin

clean:
	rm -rf bin switchboard-data
