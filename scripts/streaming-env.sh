#!/usr/bin/env bash
# `make streaming-env`: write the stack's .env from env.template the first time.
#
#   scripts/streaming-env.sh TEMPLATE ENV_FILE
#
# - ENV_FILE missing: copied from TEMPLATE (mode 600: it may hold passwords).
# - ENV_FILE present: never modified, so a user's edits stay; names that TEMPLATE sets and
#   ENV_FILE lacks (a newer template) are reported, since compose then uses its defaults.
# - Template variables exported in this shell are reported: compose takes them over the
#   file (shell > .env), so the report says what this run really uses.
set -euo pipefail

template=${1:?usage: streaming-env.sh TEMPLATE ENV_FILE}
env_file=${2:?usage: streaming-env.sh TEMPLATE ENV_FILE}

if [[ ! -f $template ]]; then
  echo "streaming-env: $template is missing" >&2
  exit 1
fi

# Variable names a file sets ("NAME=") or documents as unset ("# NAME=").
names_in() {
  sed -nE 's/^#?[[:space:]]*([A-Z][A-Z0-9_]*)=.*/\1/p' "$1"
}

if [[ -e $env_file ]]; then
  mapfile -t active < <(sed -nE 's/^([A-Z][A-Z0-9_]*)=.*/\1/p' "$template")
  mapfile -t known < <(names_in "$env_file")
  missing=()
  for name in "${active[@]}"; do
    [[ " ${known[*]} " == *" $name "* ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    echo "streaming-env: $env_file kept; it lacks ${missing[*]} (compose uses env.template's defaults; copy the lines to change them)"
  fi
else
  tmp=$(mktemp "$env_file.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  cp "$template" "$tmp"
  chmod 600 "$tmp"
  # ln, not mv: it fails instead of replacing a file that appeared in the meantime.
  if ln "$tmp" "$env_file" 2>/dev/null; then
    echo "streaming-env: wrote $env_file from $(basename "$template") (edit it; it is never overwritten)"
  fi
fi

overridden=()
while read -r name; do
  if [[ -n ${!name+set} ]]; then
    overridden+=("$name")
  fi
done < <(names_in "$template" | sort -u)
if ((${#overridden[@]})); then
  echo "streaming-env: exported in this shell, taking precedence over $env_file: ${overridden[*]}"
fi
