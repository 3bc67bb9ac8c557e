#!/usr/bin/env bash
# The gateway as shipped (server.ts: Kafka, Redis, the shipped policies, no socket) left idle: its process
# CPU over 20 s after it is ready and 10 s of warm-up, from /proc/<pid>/stat. Needs KAFKA_BROKERS and
# REDIS_URL of a running stack (npm run stack), and Linux.
#   bash bench/idle-gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KAFKA_BROKERS:?KAFKA_BROKERS of a running broker}" "${REDIS_URL:?REDIS_URL of a running Redis}"
PORT=$((20000 + RANDOM % 10000))
SLUICE_PORT=$PORT SLUICE_HOST=127.0.0.1 SLUICE_LOG_LEVEL=warn bash deploy/local/node.sh --no-warnings apps/gateway/src/server.ts > /dev/null 2>&1 &
PID=$!
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.5; done
curl -s -o /dev/null -w "readyz %{http_code}\n" "http://127.0.0.1:$PORT/readyz"
sleep 10
T=$(getconf CLK_TCK)
a=$(awk '{print $14+$15}' "/proc/$PID/stat"); sleep 20; b=$(awk '{print $14+$15}' "/proc/$PID/stat")
echo "idle 20 s: $(( (b - a) * 1000 / T )) ms CPU ($(( (b - a) * 100000 / T / 20000 )).$(( (b - a) * 100000 / T / 2000 % 10 )) % of a core)"
kill "$PID"; wait "$PID" 2> /dev/null || true
