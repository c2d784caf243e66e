// express.js -- a Dialgen webhook receiver written the way the Dialgen
// documentation's Node samples are: express.json(), the x-dialgen-signature
// check over JSON.stringify(req.body), idempotency by id, respond first and
// process afterwards. hookd's deliveries must satisfy it unmodified.
//
//   WEBHOOK_SECRET=whsec_... PORT=3000 [HOST=0.0.0.0] [FAIL_RATE=0.3] node express.js
'use strict';
const crypto = require('crypto');
const express = require('express');

const app = express();
app.use(express.json());

// Not in the documentation: FAIL_RATE=0.3 answers 503 to 30% of requests,
// at random and before anything else, to watch hookd's retries at work.
const failRate = Number(process.env.FAIL_RATE || 0);
app.use((req, res, next) => {
  if (Math.random() < failRate) return res.status(503).json({ error: 'try again' });
  next();
});

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
  console.log(`Statistics ${body.batchId} ${JSON.stringify(body.statistics)}`);
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

app.post('/webhooks/batch-failed', (req, res) => {
  if (!verifyWebhook(req, process.env.WEBHOOK_SECRET)) {
    console.log('Invalid signature');
    return res.status(401).json({ error: 'Invalid signature' });
  }
  res.status(200).json({ received: true });
  console.log(`Batch ${req.body.batchId} failed: ${req.body.error} (${req.body.code})`);
});

// HOST=0.0.0.0 in a container (deploy/docker-compose.yml), where hookd
// connects from another address; loopback only otherwise.
const server = app.listen(Number(process.env.PORT || 3000), process.env.HOST || '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
