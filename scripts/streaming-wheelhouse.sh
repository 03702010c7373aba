#!/usr/bin/env bash
# The container stack's build context extras, made on the host (run by make streaming-build
# and streaming-up): the images install only from them, so no build needs HTTPS to PyPI
# or Maven Central from inside a container.
#
#   scripts/streaming-wheelhouse.sh
#
#   build/streamplane-dist/  streamplane's wheel, built from this tree (stubs generated)
#   build/wheelhouse/    every dependency with STREAMPLANE_IMAGE_EXTRAS (default rl), as
#                        binary wheels for the image's CPython (IMAGE_PYTHON_VERSION,
#                        default 3.11: python:3.11-slim-bookworm and Debian 12's python3)
#                        on this machine's architecture, whatever the host's Python is;
#                        a layer of its own in the image, so a source change reinstalls
#                        only streamplane
#   build/kafka-libs/    the Kafka jars of `streamplane broker` (Maven Central, cached in
#                        ~/.cache/streamplane), for the local Kafka image
#
# The dependency download runs again only when pyproject.toml, the extras or the Python
# version change (a stamp file records them); the streamplane wheel is rebuilt each time.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
extras=${STREAMPLANE_IMAGE_EXTRAS:-rl}
pyver=${IMAGE_PYTHON_VERSION:-3.11}
wheelhouse=build/wheelhouse
dist=build/streamplane-dist
jars=build/kafka-libs

say() { echo "streaming-wheelhouse: $*" >&2; }

mkdir -p "$wheelhouse" "$dist"
# --- streamplane itself --------------------------------------------------------------
rm -f "$dist"/streamplane-*.whl
"$PY" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$dist" . >/dev/null
wheel=$(ls "$dist"/streamplane-*.whl)

# --- its dependencies, for the image's interpreter -------------------------------------
arch=$(uname -m)
stamp="$wheelhouse/.deps-$(cat pyproject.toml <(echo "$extras $pyver $arch") | sha256sum | cut -c1-16)"
if [[ ! -e $stamp ]]; then
  say "downloading the dependencies ($extras, CPython $pyver, $arch) into $wheelhouse"
  platforms=()
  for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_${arch}"); done
  platforms+=(--platform "manylinux2014_${arch}" --platform "manylinux2010_${arch}" --platform "manylinux1_${arch}")
  abi="cp${pyver/./}"
  find "$wheelhouse" -name '*.whl' -delete
  "$PY" -m pip download --quiet --disable-pip-version-check --dest "$wheelhouse" \
    --only-binary=:all: --implementation cp --python-version "$pyver" --abi "$abi" \
    "${platforms[@]}" "${wheel}${extras:+[$extras]}"
  rm -f "$wheelhouse"/streamplane-*.whl
  rm -f "$wheelhouse"/.deps-*
  touch "$stamp"
fi

# --- the Kafka jars -------------------------------------------------------------------
cache=${STREAMPLANE_CACHE_DIR:-$HOME/.cache/streamplane}
find_libs() { compgen -G "$cache/kafka-*/libs" | sort -V | tail -n 1; }
libs=$(find_libs || true)
if [[ -z $libs ]]; then
  make --no-print-directory kafka-jars >/dev/null 2>&1 || true
  libs=$(find_libs || true)
fi
if [[ -z $libs ]]; then
  say "no Kafka jars in $cache: run make kafka-jars (needs java 17+ and mvn)"
  exit 1
fi
rm -rf "$jars.partial"
cp -r "$libs" "$jars.partial"
rm -rf "$jars"
mv "$jars.partial" "$jars"
