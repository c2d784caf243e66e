// produce.js -- a Dialgen-like platform reporting one batch to hookd from
// Node (the `redis` npm package): batch.create, then one call.completed per
// call. hookd turns these facts into the onCallComplete webhooks and, after
// the last call, exactly one onBatchComplete.
//
//   npm ci && REDIS_URL=redis://127.0.0.1:6379 WEBHOOK_BASE=http://127.0.0.1:3000 node produce.js
//
// REDIS_URL may also be unix:///path/redis.sock (hookd's embedded Redis).
// PREFIX (hookd), BATCH_ID (batch_<time>), CALLS (100) are optional.
'use strict';
const { createClient } = require('redis');

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const prefix = process.env.PREFIX || 'hookd';
const batchId = process.env.BATCH_ID || `batch_${Math.floor(Date.now() / 1000)}`;
const base = process.env.WEBHOOK_BASE || 'http://127.0.0.1:3000';
const calls = Number(process.env.CALLS || 100);

async function main() {
  const client = url.startsWith('unix://')
    ? createClient({ socket: { path: url.slice('unix://'.length) } })
    : createClient({ url });
  await client.connect();
  const queue = `${prefix}:queue`;
  await client.lPush(queue, JSON.stringify({
    type: 'batch.create', batchId, agentId: 'agent_1', userId: 'user_1', total: calls,
    createdAt: new Date().toISOString(),
    options: { webhooks: {
      onBatchComplete: `${base}/webhooks/batch-complete`,
      onCallComplete: `${base}/webhooks/call-complete`,
      onBatchFailed: `${base}/webhooks/batch-failed`,
    } },
  }));
  // Calls reported as they end; node-redis pipelines commands sent together.
  let succeeded = 0;
  const pushes = [];
  for (let i = 1; i <= calls; i++) {
    const ok = i % 5 !== 0;
    if (ok) succeeded++;
    pushes.push(client.lPush(queue, JSON.stringify({
      type: 'call.completed', batchId, success: ok,
      callData: { id: `${batchId}_call_${i}`, contactId: `contact_${i}`, agentId: 'agent_1',
                  batchId, status: ok ? 'COMPLETED' : 'NO_ANSWER', duration: 30 + i,
                  summary: `Call ${i} of ${calls}`,
                  metricJson: { intent: 'SALES_INQUIRY', sentiment: 'positive' } },
      metricSchema: { intent: 'string', sentiment: 'string' },
    })));
  }
  await Promise.all(pushes);
  await client.quit();
  console.log(`batch ${batchId}: created with ${calls} contacts, reported ${calls} calls ` +
              `(${succeeded} succeeded, ${calls - succeeded} failed)`);
}

main().catch((e) => { console.error(e); process.exit(1); });
