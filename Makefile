# regiozorg: `make demo` shows the region at work, `make test` runs every test.
# Both start a private PostgreSQL and NATS JetStream for this checkout (deploy/local-stack.sh);
# `make down` stops them. Set DATABASE_URL and NATS_URL to use servers of your own instead.

SHELL := /bin/bash
CARGO ?= cargo
STACK := deploy/local-stack.sh
WITH_STACK := set -a && . var/stack.env && set +a &&

.PHONY: all up down status test demo lint fmt build bench chaos images images-check k8s-check

all: build

up:
	@$(STACK) up

down:
	@deploy/demo.sh stop
	@$(STACK) down
	@STACK_NAME=bench-stack $(STACK) down

status:
	@$(STACK) status

build:
	$(CARGO) build --workspace

# The alert rules first (promtool; installs Debian's prometheus, which the e2e scrape test also runs).
test: up
	deploy/prometheus/check.sh
	$(WITH_STACK) $(CARGO) test --workspace
	$(CARGO) build --workspace --bins
	$(WITH_STACK) CHAOS_NO_BUILD=1 deploy/chaos.sh --short

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The demo builds only its own binaries: the services, rzctl, the demo driver and the provider simulator.
DEMO_PACKAGES := -p registration -p access -p assignment -p notification -p reporting -p rzctl -p rz-demo -p rz-provider-sim
demo: up
	$(CARGO) build --bins $(DEMO_PACKAGES)
	$(WITH_STACK) deploy/demo.sh

# Release build of every service, then the measurements on a stack of their own (var/bench-stack)
# that keeps PostgreSQL durable (fsync and synchronous_commit on, as in production); writes
# var/bench/result.json. BENCH_DURABLE=0 measures on the fast test settings instead.
BENCH_DURABLE ?= 1
BENCH_STACK := STACK_NAME=bench-stack STACK_DURABLE=$(BENCH_DURABLE) $(STACK)
bench:
	$(CARGO) build --release --workspace --bins
	@$(BENCH_STACK) up >/dev/null
	set -a && . var/bench-stack.env && set +a && deploy/bench.sh; rc=$$?; \
	    $(BENCH_STACK) down; exit $$rc

# Kills and restarts services, NATS and PostgreSQL while care flows run; checks the invariants.
chaos: up
	$(CARGO) build --workspace --bins
	$(WITH_STACK) CHAOS_NO_BUILD=1 deploy/chaos.sh $(CHAOS_ARGS)

# Container images without a daemon (buildah from Debian's packages, installed when missing): one OCI
# archive per service and rzctl under var/images/, from the binaries of target/debug (PROFILE=release
# for release builds); images-check unpacks each and runs its binary with --version (chroot).
images:
	$(CARGO) build --workspace --bins
	deploy/images.sh all

images-check:
	deploy/images.sh check

# The Kubernetes manifests, offline: Kubernetes' schemas, the CRDs of ../shared/k8s-crds and the
# policy check of the locked-down overlays.
k8s-check:
	k8s/validate.sh

