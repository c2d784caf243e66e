#!/usr/bin/python3
"""produce.py -- a Dialgen-like platform reporting one batch to hookd from
Python (redis-py, Debian's python3-redis): batch.create, then one
call.completed per call. hookd turns these facts into the onCallComplete
webhooks and, after the last call, exactly one onBatchComplete.

    REDIS_URL=redis://127.0.0.1:6379 WEBHOOK_BASE=http://127.0.0.1:3000 python3 produce.py

REDIS_URL may also be unix:///path/redis.sock (hookd's embedded Redis).
PREFIX (hookd), BATCH_ID (batch_<time>), CALLS (100) are optional.
"""
import json
import os
import time

import redis

url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
prefix = os.environ.get("PREFIX", "hookd")
batch_id = os.environ.get("BATCH_ID", "batch_%d" % time.time())
base = os.environ.get("WEBHOOK_BASE", "http://127.0.0.1:3000")
calls = int(os.environ.get("CALLS", "100"))

r = redis.Redis.from_url(url)
queue = prefix + ":queue"
r.lpush(queue, json.dumps({
    "type": "batch.create", "batchId": batch_id, "agentId": "agent_1", "userId": "user_1",
    "total": calls,
    "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
    "options": {"webhooks": {"onBatchComplete": base + "/webhooks/batch-complete",
                             "onCallComplete": base + "/webhooks/call-complete",
                             "onBatchFailed": base + "/webhooks/batch-failed"}}}))

# Calls reported as they end; a pipeline sends them in one round trip.
pipe = r.pipeline(transaction=False)
succeeded = 0
for i in range(1, calls + 1):
    ok = i % 5 != 0
    succeeded += ok
    pipe.lpush(queue, json.dumps({
        "type": "call.completed", "batchId": batch_id, "success": ok,
        "callData": {"id": "%s_call_%d" % (batch_id, i), "contactId": "contact_%d" % i,
                     "agentId": "agent_1", "batchId": batch_id,
                     "status": "COMPLETED" if ok else "NO_ANSWER", "duration": 30 + i,
                     "summary": "Call %d of %d" % (i, calls),
                     "metricJson": {"intent": "SALES_INQUIRY", "sentiment": "positive"}},
        "metricSchema": {"intent": "string", "sentiment": "string"}}))
pipe.execute()
print("batch %s: created with %d contacts, reported %d calls (%d succeeded, %d failed)"
      % (batch_id, calls, calls, succeeded, calls - succeeded))
