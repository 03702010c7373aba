#!/usr/bin/env bash
# The system side of `make test` on a Debian machine: install the packages the tests
# need, start a single-node Slurm and a Docker daemon. Idempotent and quick when all is
# there already (a few `command -v` and one `docker info`); run by `make test` first.
#
#   scripts/setup-system.sh          install what is missing, start what is not running
#   scripts/setup-system.sh check    only say what is missing (exit 1 if anything is)
#
# As root it installs with apt-get (one `apt-get update`, `--no-install-recommends`),
# runs scripts/slurm-setup.sh, and starts `dockerd` in the background (no systemd
# needed; log in $DOCKERD_LOG) when `docker info` does not answer. As another user it
# installs nothing: when something is missing it stops with one line saying what to
# install or start. STREAMPLANE_SKIP_SETUP=1 skips it all (the tests that need a missing
# service are then skipped, or fail under STREAMPLANE_REQUIRE_ALL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/streamplane-dockerd.log}
DOCKER_WAIT_S=${DOCKER_WAIT_S:-60}
mode=${1:-setup}

say() { echo "setup-system: $*" >&2; }

if [[ ${STREAMPLANE_SKIP_SETUP:-} == 1 ]]; then
  exit 0
fi

# --- what is missing: "package:probe" pairs, probed with command -v or a path glob -----
missing=()
need() { # need PACKAGE: mark it missing
  local p
  for p in "${missing[@]}"; do [[ $p == "$1" ]] && return 0; done
  missing+=("$1")
}
have() { command -v "$1" >/dev/null 2>&1; }

have python3 || need python3
python3 -c 'import venv, ensurepip' 2>/dev/null || need python3-venv
have java || need openjdk-17-jre-headless
have mvn || need maven
have npm || need npm
have make || need make
# The Dagster face: Debian's chromium for the browser test (Playwright drives it, no
# browser download); PostgreSQL's server binaries for the production instance test,
# which starts a throwaway cluster of its own (the package's cluster is not used).
have chromium || need chromium
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need postgresql
# RL training on a single-node Slurm (started by scripts/slurm-setup.sh below).
{ have slurmctld && have slurmd && have sbatch; } || need slurm-wlm
have munged || need munge
# The container stack: Debian's Docker Engine (dockerd; the docker CLI may come from
# elsewhere), compose 1.x, iptables for its bridge NAT, mmdebstrap for the local base
# image (no registry needed).
have dockerd || { docker info >/dev/null 2>&1 || need docker.io; }
have docker || need docker.io
have docker-compose || docker compose version >/dev/null 2>&1 || need docker-compose
have iptables || need iptables
have mmdebstrap || need mmdebstrap

root=0
[[ $EUID -eq 0 ]] && root=1

if ((${#missing[@]})); then
  if [[ $mode == check ]] || ((root == 0)); then
    say "missing ${missing[*]}: run 'make test' as root, or apt-get install ${missing[*]} (STREAMPLANE_SKIP_SETUP=1 skips this set-up)"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101 keeps the packages' init scripts from starting their daemons (the
  # tests start what they need themselves, configured their way).
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    own_policy=1
  fi
  trap 'if ((own_policy)); then rm -f "$policy"; fi' EXIT
  if ! apt-get update -qq >/dev/null || ! apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null; then
    say "apt-get could not install ${missing[*]}: install them by hand and rerun"
    exit 1
  fi
fi

# --- Slurm: a single-node cluster for the RL training tests ----------------------------
slurm_up() { timeout 10 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc|comp)'; }
if ! slurm_up; then
  if ((root == 0)) || [[ $mode == check ]]; then
    say "Slurm is not running: start it as root with scripts/slurm-setup.sh"
    exit 1
  fi
  bash scripts/slurm-setup.sh
fi

# --- Docker: start the daemon by hand when none answers ---------------------------------
if ! timeout 20 docker info >/dev/null 2>&1; then
  if ((root == 0)) && [[ -z ${DOCKER_HOST:-} && -S /var/run/docker.sock && ! -w /var/run/docker.sock ]]; then
    say "no access to /var/run/docker.sock: add $(id -un) to the docker group (usermod -aG docker $(id -un))"
    exit 1
  fi
  if ((root == 0)) || [[ $mode == check ]] || [[ -n ${DOCKER_HOST:-} ]]; then
    say "no Docker daemon answers 'docker info': start dockerd (as root: scripts/setup-system.sh)"
    exit 1
  fi
  dockerd_bin=$(command -v dockerd)
  say "starting dockerd in the background (log: $DOCKERD_LOG)"
  # setsid + nohup: the daemon outlives make and this script; its own pidfile guards
  # against a second one.
  setsid nohup "$dockerd_bin" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq "$DOCKER_WAIT_S"); do
    timeout 10 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! timeout 20 docker info >/dev/null 2>&1; then
    say "dockerd did not answer within ${DOCKER_WAIT_S}s; see $DOCKERD_LOG"
    tail -n 5 "$DOCKERD_LOG" | sed 's/^/setup-system: dockerd: /' >&2 || true
    exit 1
  fi
fi
