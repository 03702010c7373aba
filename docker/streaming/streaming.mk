# The seed's container workflow, included by the Makefile (`streaming-proto` lives there:
# it needs no container engine).
#
#   make streaming-env     write docker/streaming/.env from env.template, once
#   make streaming-build   build the images (docker/streaming/Dockerfile; with
#                          STREAMING_IMAGES=local also docker/kafka and docker/postgres)
#   make streaming-up      build, then start the stack in the background
#   make streaming-logs    follow the logs (STREAMING_SERVICES="supervisor worker" to pick)
#   make streaming-down    stop and remove the containers (volumes are kept)
#
# Every target runs streaming-env first. Variables exported in the shell (or given on the
# make command line) override docker/streaming/.env. Knobs:
#   STREAMING_WORKERS=N        worker containers (docker compose up --scale worker=N)
#   STREAMING_KAFKA=external   use the Kafka at KAFKA_BROKERS, no local broker
#   STREAMING_PROFILES=demo    also start the demo producer
#   STREAMING_PURGE=1          streaming-down also deletes the volumes (Kafka, Postgres, data)
#   STREAMING_IMAGES=local     no image registry needed: Kafka and PostgreSQL images built
#                              here (compose.local-images.yaml), every image on
#                              STREAMING_BASE_IMAGE (a Debian bookworm made locally by
#                              scripts/docker-base-image.sh) instead of Docker Hub's
#   STREAMING_BUILDKIT=1       build with BuildKit (default 0: the legacy builder, which
#                              every Docker Engine has; both read the repo's .dockerignore)
# The images install only what the host prepared (scripts/streaming-wheelhouse.sh: the
# wheels in build/wheelhouse, the Kafka jars in build/kafka-libs): no build reaches PyPI
# or Maven Central from inside a container.
# Without a reachable container engine the targets past streaming-env stop with one line.

STREAMING_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
STREAMING_ENV_FILE ?= $(STREAMING_DIR)/.env
STREAMING_TEMPLATE := $(STREAMING_DIR)/env.template
STREAMING_ENV_SCRIPT := $(STREAMING_DIR)/../../scripts/streaming-env.sh
DOCKER ?= docker
STREAMING_BUILDKIT ?= 0
STREAMING_BASE_IMAGE ?= local/debian:bookworm
STREAMING_SCRIPTS := $(STREAMING_DIR)/../../scripts

STREAMING_FILES = -f $(STREAMING_DIR)/compose.yaml \
	$(if $(filter external,$(STREAMING_KAFKA)),-f $(STREAMING_DIR)/compose.external-kafka.yaml) \
	$(if $(filter local,$(STREAMING_IMAGES)),-f $(STREAMING_DIR)/compose.local-images.yaml)
# With STREAMING_IMAGES=local the streamplane image takes the local base too, unless
# STREAMPLANE_PYTHON_IMAGE says otherwise (shell, make command line or .env).
STREAMING_LOCAL_ENV = $(if $(filter local,$(STREAMING_IMAGES)),STREAMING_BASE_IMAGE=$(STREAMING_BASE_IMAGE) \
	STREAMPLANE_PYTHON_IMAGE=$(or $(STREAMPLANE_PYTHON_IMAGE),$(shell sed -n 's/^STREAMPLANE_PYTHON_IMAGE=//p' $(STREAMING_ENV_FILE) 2>/dev/null),$(STREAMING_BASE_IMAGE)))
# The services built: one streamplane service builds the image all of them share.
STREAMING_BUILT = supervisor $(if $(filter local,$(STREAMING_IMAGES)),$(if $(filter external,$(STREAMING_KAFKA)),,broker) postgres)
streaming_comma := ,
STREAMING_PROFILE_ARGS = $(foreach p,$(subst $(streaming_comma), ,$(STREAMING_PROFILES)),--profile $(p))

# Probed only by the targets that need an engine (recipes expand when they run).
streaming_engine = $(shell timeout 20 $(DOCKER) info >/dev/null 2>&1 && echo yes)
streaming_compose_bin = $(shell \
	if timeout 20 $(DOCKER) compose version >/dev/null 2>&1; then echo '$(DOCKER) compose'; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
define streaming_need_engine
$(if $(streaming_engine),,$(error streaming: no container engine: "$(DOCKER) info" reaches no Docker daemon; install Docker Engine and start it (or set DOCKER_HOST); "make run" runs the stack without containers))
$(if $(streaming_compose_bin),,$(error streaming: no Docker Compose: install the compose plugin ("docker compose") or docker-compose))
endef
# One builder for compose 1.x and 2.x alike (COMPOSE_DOCKER_CLI_BUILD: 1.x builds with
# the docker CLI, which honours DOCKER_BUILDKIT).
STREAMING_COMPOSE = COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=$(STREAMING_BUILDKIT) \
	$(STREAMING_LOCAL_ENV) $(streaming_compose_bin) \
	--env-file $(abspath $(STREAMING_ENV_FILE)) $(STREAMING_FILES) $(STREAMING_PROFILE_ARGS)

.PHONY: streaming-env streaming-wheels streaming-base streaming-build streaming-up \
	streaming-logs streaming-down

## streaming-env: write docker/streaming/.env from env.template the first time
streaming-env:
	@bash $(STREAMING_ENV_SCRIPT) $(STREAMING_TEMPLATE) $(STREAMING_ENV_FILE)

## streaming-wheels: the wheels and Kafka jars the images install, made on the host
streaming-wheels:
	@bash $(STREAMING_SCRIPTS)/streaming-wheelhouse.sh

## streaming-base: the Debian bookworm base image made here (mmdebstrap), once per machine
streaming-base:
	$(streaming_need_engine)
	@bash $(STREAMING_SCRIPTS)/docker-base-image.sh $(STREAMING_BASE_IMAGE)

## streaming-build: build the images of the container stack
streaming-build: streaming-env
	$(streaming_need_engine)
	$(if $(filter local,$(STREAMING_IMAGES)),@bash $(STREAMING_SCRIPTS)/docker-base-image.sh $(STREAMING_BASE_IMAGE))
	@bash $(STREAMING_SCRIPTS)/streaming-wheelhouse.sh
	$(STREAMING_COMPOSE) build $(STREAMING_BUILT)

## streaming-up: build, then start the container stack (Kafka, supervisor, workers, mesh, Dagster)
streaming-up: streaming-build
	$(streaming_need_engine)
	$(STREAMING_COMPOSE) up -d --remove-orphans \
		$(if $(STREAMING_WORKERS),--scale worker=$(STREAMING_WORKERS))
	@$(STREAMING_COMPOSE) ps
	@echo "streaming: started; Dagster on DAGSTER_HOST_PORT (3000), supervisor /readyz on" \
		"SUPERVISOR_HTTP_HOST_PORT (8080); make streaming-logs follows the logs"

## streaming-logs: follow the container stack's logs
streaming-logs: streaming-env
	$(streaming_need_engine)
	$(STREAMING_COMPOSE) logs -f --tail=200 $(STREAMING_SERVICES)

## streaming-down: stop the container stack (STREAMING_PURGE=1 also deletes its volumes)
streaming-down: streaming-env
	$(streaming_need_engine)
	$(STREAMING_COMPOSE) down --remove-orphans $(if $(filter 1,$(STREAMING_PURGE)),--volumes)
