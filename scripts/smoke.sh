#!/usr/bin/env bash
# Smoke test of the HTTP ingress, as CI runs it (`.ci/run`), needing only .venv and curl:
#
#   1. start a stack with the ingress (nats-server, OpenBao, the Xledger fake, the credential
#      service, the dispatcher, the ingress; free loopback ports, state in a temporary folder);
#   2. POST a minimal valid sync request with curl and require HTTP 200 with a JSON receipt
#      {request_id, idempotency_key, duplicate}; the same without an API key must get 401;
#   3. GET its result until there is one (the integration is not configured, so the dispatcher
#      answers `rejected`: the whole way from HTTP to NATS and back is exercised);
#   4. stop everything (also when a step fails), and show the logs if one did.
#
# Exit 0 when every step passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
TIMEOUT=${SMOKE_TIMEOUT_SECONDS:-120}
work=$(mktemp -d "${TMPDIR:-/tmp}/syncbus-smoke.XXXXXX")
launcher=""
ok=0

cleanup() {
  if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
    kill -TERM "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
  fi
  if [ "$ok" != 1 ]; then
    echo "smoke: FAILED; the last log lines:" >&2
    tail -n 20 "$work/launcher.log" "$work"/stack/logs/*.log 2>/dev/null >&2 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "smoke: $*" >&2; exit 1; }

key=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')
digest=$(printf '%s\n' "$key" | "$PYTHON" -m syncbus_ingress hash-key)

# The launcher runs the stack until SIGTERM and writes the ingress's URL once all of it is ready.
"$PYTHON" - "$work" "$digest" >"$work/launcher.log" 2>&1 <<'PY' &
import asyncio
import sys
from pathlib import Path

from syncbus_devstack import Stack, run_dev_stack

work, digest = Path(sys.argv[1]), sys.argv[2]


async def ready(stack: Stack) -> list[str]:
    info = stack.service("ingress").ready_info or {}
    (work / "url.tmp").write_text(str(info["url"]))
    (work / "url.tmp").rename(work / "url")
    return []


asyncio.run(
    run_dev_stack(
        work / "stack",
        services=("credentials", "dispatcher", "ingress"),
        extra_env={"SYNCBUS_INGRESS_API_KEY_HASHES": f"smoke={digest}"},
        on_ready=ready,
    )
)
PY
launcher=$!

deadline=$((SECONDS + TIMEOUT))
until [ -s "$work/url" ]; do
  kill -0 "$launcher" 2>/dev/null || fail "the stack did not start"
  [ "$SECONDS" -lt "$deadline" ] || fail "the stack was not ready within ${TIMEOUT} s"
  sleep 0.2
done
url=$(cat "$work/url")
echo "smoke: ingress ready at $url"

body='{"integration_id": "smoke", "period_id": "2017-01"}'
status=$(curl -sS -o "$work/receipt.json" -w '%{http_code}' -X POST \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  --data "$body" "$url/v1/sync-requests")
[ "$status" = 200 ] || fail "POST /v1/sync-requests answered HTTP $status: $(cat "$work/receipt.json")"
request_id=$("$PYTHON" - "$work/receipt.json" <<'PY'
import json
import sys

receipt = json.load(open(sys.argv[1], encoding="utf-8"))
assert set(receipt) == {"request_id", "idempotency_key", "duplicate"}, receipt
assert receipt["idempotency_key"] == "smoke:2017-01", receipt
assert receipt["duplicate"] is False, receipt
print(receipt["request_id"])
PY
) || fail "the answer is not the JSON receipt: $(cat "$work/receipt.json")"
echo "smoke: POST /v1/sync-requests -> 200 $(cat "$work/receipt.json")"

status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data "$body" "$url/v1/sync-requests")
[ "$status" = 401 ] || fail "a request without an API key answered HTTP $status, not 401"
echo "smoke: without an API key -> 401"

deadline=$((SECONDS + 60))
while :; do
  status=$(curl -sS -o "$work/result.json" -w '%{http_code}' \
    -H "X-API-Key: $key" "$url/v1/sync-results/$request_id")
  [ "$status" = 200 ] && break
  [ "$status" = 404 ] || fail "GET /v1/sync-results answered HTTP $status"
  [ "$SECONDS" -lt "$deadline" ] || fail "no result for request $request_id within 60 s"
  sleep 0.2
done
result=$("$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["status"])' \
  "$work/result.json")
echo "smoke: GET /v1/sync-results/$request_id -> 200, status $result"
ok=1
echo "smoke: OK"
