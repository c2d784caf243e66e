// express.js -- a Dialgen webhook receiver written the way the Dialgen
// documentation's Node samples are: express.json(), the x-dialgen-signature
// check over JSON.stringify(req.body), idempotency by id, respond first and
// process afterwards. hookd's deliveries must satisfy it unmodified.
//
//   WEBHOOK_SECRET=whsec_... PORT=3000 node express.js
'use strict';
const crypto = require('crypto');
const express = require('express');

const app = express();
app.use(express.json());

function verifyWebhook(req, secret) {
  const signature = req.headers['x-dialgen-signature'];
  const payload = JSON.stringify(req.body);
  const expectedSignature = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');
  return signature === expectedSignature;
}

const processedWebhooks = new Set();

function processCallData(body) {
  const { callData } = body;
  console.log(`Call ${callData.id} completed (success=${body.success}, duration ${callData.duration}s)`);
}

function processBatch(body) {
  console.log(`Batch ${body.batchId} completed: success rate ${body.statistics.successRate}%`);
}

app.post('/webhooks/call-complete', (req, res) => {
  if (!verifyWebhook(req, process.env.WEBHOOK_SECRET)) {
    console.log('Invalid signature');
    return res.status(401).json({ error: 'Invalid signature' });
  }
  const callId = req.body.callData.id;
  if (processedWebhooks.has(callId)) {
    console.log(`Duplicate call ${callId}`);
    return res.status(200).json({ received: true, duplicate: true });
  }
  processedWebhooks.add(callId);
  // Respond immediately, process asynchronously
  res.status(200).json({ received: true });
  setImmediate(() => processCallData(req.body));
});

app.post('/webhooks/batch-complete', (req, res) => {
  if (!verifyWebhook(req, process.env.WEBHOOK_SECRET)) {
    console.log('Invalid signature');
    return res.status(401).json({ error: 'Invalid signature' });
  }
  const key = `batch:${req.body.batchId}`;
  if (processedWebhooks.has(key)) {
    console.log(`Duplicate batch ${req.body.batchId}`);
    return res.status(200).json({ received: true, duplicate: true });
  }
  processedWebhooks.add(key);
  res.status(200).json({ received: true });
  setImmediate(() => processBatch(req.body));
});

const server = app.listen(Number(process.env.PORT || 3000), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
