// standard.js -- a receiver that checks the Standard Webhooks headers
// (webhook-id, webhook-timestamp, webhook-signature) with the
// `standardwebhooks` npm package, over the raw body, and de-duplicates by
// webhook-id as that specification advises.
//
//   WEBHOOK_SECRET=whsec_... PORT=3001 node standard.js
'use strict';
const express = require('express');
const { Webhook } = require('standardwebhooks');

const wh = new Webhook(process.env.WEBHOOK_SECRET);
const seen = new Set();
const app = express();

app.post('/webhooks/:kind', express.raw({ type: '*/*' }), (req, res) => {
  let payload;
  try {
    payload = wh.verify(req.body.toString('utf8'), req.headers);
  } catch (e) {
    console.log(`Invalid signature: ${e.message}`);
    return res.status(401).json({ error: 'Invalid signature' });
  }
  const id = req.headers['webhook-id'];
  if (seen.has(id)) {
    console.log(`Duplicate ${id}`);
    return res.status(200).json({ received: true, duplicate: true });
  }
  seen.add(id);
  res.status(200).json({ received: true });
  setImmediate(() => console.log(`Verified ${id} ${req.headers['x-dialgen-event'] || ''} ` +
                                 `${payload.callData ? payload.callData.id : payload.batchId}`));
});

const server = app.listen(Number(process.env.PORT || 3001), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
