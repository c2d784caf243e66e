// bullmq.js -- the peer hookd is measured against: a BullMQ worker doing
// hookd's job the way a Node shop would write it: take a job, HMAC-SHA256
// sign its 1 KB JSON body (hex, as x-dialgen-signature), POST it with a
// keep-alive agent, complete the job. Prints {"rate": deliveries/s} for N
// jobs at the given concurrency.
//
// usage: node bullmq.js --redis-port P --url URL --jobs N --concurrency C
'use strict';
const crypto = require('crypto');
const http = require('http');
const { Queue, Worker } = require('bullmq');

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf('--' + k); return i >= 0 ? args[i + 1] : d; };
const connection = { host: '127.0.0.1', port: Number(opt('redis-port')) };
const url = new URL(opt('url'));
const n = Number(opt('jobs', '10000'));
const concurrency = Number(opt('concurrency', '64'));
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const name = 'bench' + Date.now();

function post(body) {
  return new Promise((resolve, reject) => {
    const sig = crypto.createHmac('sha256', secret).update(body).digest('hex');
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname,
                               method: 'POST', agent,
                               headers: { 'content-type': 'application/json',
                                          'content-length': Buffer.byteLength(body),
                                          'x-dialgen-signature': sig } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode < 300 ? resolve() : reject(new Error('status ' + res.statusCode))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

(async () => {
  const queue = new Queue(name, { connection });
  const payload = { success: true, callData: { id: 'x', duration: 180, summary: 'x'.repeat(800),
                                               metricJson: { confidence: 0.95 } } };
  for (let k = 0; k < n; k += 1000) {
    const batch = [];
    for (let i = k; i < Math.min(n, k + 1000); i++)
      batch.push({ name: 'hook', data: { id: 'b' + i, body: JSON.stringify({ ...payload, i }) },
                   opts: { removeOnComplete: true } });
    await queue.addBulk(batch);
  }
  let done = 0;
  const t0 = process.hrtime.bigint();
  await new Promise((resolve) => {
    const worker = new Worker(name, (job) => post(job.data.body), { connection, concurrency });
    worker.on('completed', () => { if (++done === n) { resolve(); worker.close(); } });
    worker.on('failed', (job, err) => { console.error(err.message); });
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ rate: n / secs, seconds: secs }) + '\n');
  await queue.obliterate({ force: true });
  await queue.close();
  process.exit(0);
})();
