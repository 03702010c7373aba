#!/usr/bin/env bash
# kafka-broker-api-versions.sh --bootstrap-server HOST:PORT: exit 0 when the broker there
# answers an ApiVersions request (v0) without error, 1 otherwise. It stands in for
# Kafka's tool of that name in the local image (the same health check as apache/kafka's)
# with nothing but bash: no second JVM every health-check interval.
set -uo pipefail

server=
while (($#)); do
  case $1 in
    --bootstrap-server) server=${2:-}; shift 2 ;;
    --bootstrap-server=*) server=${1#*=}; shift ;;
    *) shift ;;
  esac
done
[[ -n $server ]] || { echo "usage: $0 --bootstrap-server HOST:PORT" >&2; exit 2; }
host=${server%:*}
port=${server##*:}

exec 3<>"/dev/tcp/$host/$port" || exit 1
# size 20 | api_key 18 (ApiVersions) | version 0 | correlation id 1 | client id "healthcheck"
printf '\x00\x00\x00\x15\x00\x12\x00\x00\x00\x00\x00\x01\x00\x0bhealthcheck' >&3
# The answer starts: size (4) | correlation id (4) | error code (2).
reply=$(timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
exec 3>&-
if [[ ${reply:8:8} == 00000001 && ${reply:16:4} == 0000 ]]; then
  echo "$server: ApiVersions OK"
  exit 0
fi
echo "$server: no ApiVersions answer (${reply:-nothing})" >&2
exit 1
