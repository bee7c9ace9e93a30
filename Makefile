# dk — make help lists the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/dkhq/dk.Version=$(VERSION)
GO      ?= go
DATA    ?= $(CURDIR)/.dk
ADMIN_KEYS ?= $(firstword $(wildcard $(HOME)/.ssh/id_ed25519.pub $(HOME)/.ssh/id_ecdsa.pub $(HOME)/.ssh/id_rsa.pub))

.PHONY: help build run test test-unit test-e2e vet bench clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build bin/dkd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dkd ./cmd/dkd

run: build ## run dkd locally: ssh 127.0.0.1:2222, router 127.0.0.1:8080, domain localhost, data in .dk/
	@if [ -n "$(ADMIN_KEYS)" ]; then echo "dk: admin key $(ADMIN_KEYS)"; else echo "dk: no ~/.ssh/id_*.pub found: make one with ssh-keygen -t ed25519, or pass ADMIN_KEYS=path"; fi
	@echo "dk: data in $(DATA)"
	./bin/dkd serve --data $(DATA) --ssh-addr 127.0.0.1:2222 --http-addr 127.0.0.1:8080 --domain localhost \
		$(if $(ADMIN_KEYS),--admin-key $(ADMIN_KEYS))

vet: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

test: vet ## run every test: unit and end-to-end (real dkd, git, ssh and Docker)
	$(GO) test -count=1 -timeout 30m ./...

test-unit: ## unit tests only (no Docker needed)
	$(GO) test -count=1 -short ./...

test-e2e: ## end-to-end suite only
	$(GO) test -count=1 -timeout 30m -v -run TestScripts ./cmd/dkd/

bench: build ## measure deploy figures beside their baselines (prints ratios)
	$(GO) run ./internal/bench

clean: ## remove build output and local data
	rm -rf bin .dk
