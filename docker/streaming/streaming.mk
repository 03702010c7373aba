# The seed's container workflow, included by the Makefile (`streaming-proto` lives there:
# it needs no container engine).
#
#   make streaming-env     write docker/streaming/.env from env.template, once
#   make streaming-build   build the image (docker/streaming/Dockerfile)
#   make streaming-up      start the stack in the background
#   make streaming-logs    follow the logs (STREAMING_SERVICES="supervisor worker" to pick)
#   make streaming-down    stop and remove the containers (volumes are kept)
#
# Every target runs streaming-env first. Variables exported in the shell (or given on the
# make command line) override docker/streaming/.env. Knobs:
#   STREAMING_WORKERS=N        worker containers (docker compose up --scale worker=N)
#   STREAMING_KAFKA=external   use the Kafka at KAFKA_BROKERS, no local broker
#   STREAMING_PROFILES=demo    also start the demo producer
#   STREAMING_PURGE=1          streaming-down also deletes the volumes (Kafka, Postgres, data)
# Without a reachable container engine the targets past streaming-env stop with one line.

STREAMING_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
STREAMING_ENV_FILE ?= $(STREAMING_DIR)/.env
STREAMING_TEMPLATE := $(STREAMING_DIR)/env.template
STREAMING_ENV_SCRIPT := $(STREAMING_DIR)/../../scripts/streaming-env.sh
DOCKER ?= docker

STREAMING_FILES = -f $(STREAMING_DIR)/compose.yaml \
	$(if $(filter external,$(STREAMING_KAFKA)),-f $(STREAMING_DIR)/compose.external-kafka.yaml)
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
# BuildKit for docker-compose 1.x too, so the build reads Dockerfile.dockerignore.
STREAMING_COMPOSE = COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1 $(streaming_compose_bin) \
	--env-file $(abspath $(STREAMING_ENV_FILE)) $(STREAMING_FILES) $(STREAMING_PROFILE_ARGS)

.PHONY: streaming-env streaming-build streaming-up streaming-logs streaming-down

## streaming-env: write docker/streaming/.env from env.template the first time
streaming-env:
	@bash $(STREAMING_ENV_SCRIPT) $(STREAMING_TEMPLATE) $(STREAMING_ENV_FILE)

## streaming-build: build the streamplane image of the container stack
streaming-build: streaming-env
	$(streaming_need_engine)
	$(STREAMING_COMPOSE) build

## streaming-up: start the container stack (Kafka, supervisor, workers, mesh, Dagster)
streaming-up: streaming-env
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
