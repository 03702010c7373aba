#!/usr/bin/env bash
# Entry point of the local Kafka image: server.properties from the KAFKA_* variables,
# a one-time KRaft format of the log dir with CLUSTER_ID, then the broker in the
# foreground (exec: SIGTERM from `docker stop` is a controlled shutdown).
set -euo pipefail

config=/opt/kafka/config/server.properties
skip=" KAFKA_HEAP_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_OPTS KAFKA_LOG4J_OPTS KAFKA_VERSION "

: >"$config"
while IFS='=' read -r name value; do
  [[ $name == KAFKA_* ]] || continue
  [[ $skip == *" $name "* ]] && continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "$key" "$value" >>"$config"
done < <(env)

log_dirs=$(sed -n 's/^log\.dirs=//p' "$config")
log_dirs=${log_dirs:-/tmp/kraft-combined-logs}
[[ -n $(sed -n '/^log\.dirs=/p' "$config") ]] || echo "log.dirs=$log_dirs" >>"$config"
classpath="/opt/kafka/libs/*"
log4j="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"

if [[ ! -e ${log_dirs%%,*}/meta.properties ]]; then
  : "${CLUSTER_ID:?CLUSTER_ID must be set to format an empty log dir}"
  # shellcheck disable=SC2086
  java $log4j -cp "$classpath" kafka.tools.StorageTool format \
    --ignore-formatted -t "$CLUSTER_ID" -c "$config"
fi

# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:-} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
  -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true $log4j \
  -Dkafka.logs.dir=/tmp ${KAFKA_OPTS:-} -cp "$classpath" kafka.Kafka "$config"
