#!/bin/sh
# produce.sh -- a Dialgen-like platform reporting one batch to hookd with
# nothing but redis-cli: batch.create, then one call.completed per call.
# hookd turns these facts into the onCallComplete webhooks and, after the
# last call, exactly one onBatchComplete.
#
#   REDIS_URL=redis://127.0.0.1:6379 WEBHOOK_BASE=http://127.0.0.1:3000 sh produce.sh
#
# REDIS_URL may also be unix:///path/redis.sock (hookd's embedded Redis).
# PREFIX (hookd), BATCH_ID (batch_<time>), CALLS (100) are optional.
set -eu

REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PREFIX=${PREFIX:-hookd}
BATCH_ID=${BATCH_ID:-batch_$(date +%s)}
WEBHOOK_BASE=${WEBHOOK_BASE:-http://127.0.0.1:3000}
CALLS=${CALLS:-100}

case $REDIS_URL in
unix://*) set -- -s "${REDIS_URL#unix://}" ;;
*) set -- -u "$REDIS_URL" ;;
esac

# Each job goes through redis-cli -x, which takes the command's last
# argument from stdin, so the JSON needs no shell quoting.
job=$(printf '{"type":"batch.create","batchId":"%s","agentId":"agent_1","userId":"user_1","total":%d,"options":{"webhooks":{"onBatchComplete":"%s/webhooks/batch-complete","onCallComplete":"%s/webhooks/call-complete","onBatchFailed":"%s/webhooks/batch-failed"}}}' \
    "$BATCH_ID" "$CALLS" "$WEBHOOK_BASE" "$WEBHOOK_BASE" "$WEBHOOK_BASE")
printf '%s' "$job" | redis-cli "$@" -x LPUSH "$PREFIX:queue" >/dev/null

ok=0
failed=0
i=1
while [ "$i" -le "$CALLS" ]; do
    if [ $((i % 5)) -eq 0 ]; then
        success=false status=NO_ANSWER failed=$((failed + 1))
    else
        success=true status=COMPLETED ok=$((ok + 1))
    fi
    job=$(printf '{"type":"call.completed","batchId":"%s","success":%s,"callData":{"id":"%s_call_%d","contactId":"contact_%d","agentId":"agent_1","batchId":"%s","status":"%s","duration":%d,"summary":"Call %d of %d"},"metricSchema":{"intent":"string"}}' \
        "$BATCH_ID" "$success" "$BATCH_ID" "$i" "$i" "$BATCH_ID" "$status" $((30 + i)) "$i" "$CALLS")
    printf '%s' "$job" | redis-cli "$@" -x LPUSH "$PREFIX:queue" >/dev/null
    i=$((i + 1))
done
echo "batch $BATCH_ID: created with $CALLS contacts, reported $CALLS calls ($ok succeeded, $failed failed)"
