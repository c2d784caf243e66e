// bullmq.js -- the peer hookd is measured against: a BullMQ worker doing
// hookd's job the way a Node shop would write it: take a job, HMAC-SHA256
// sign its 1 KB JSON body (hex, as x-dialgen-signature), POST it with a
// keep-alive agent, complete the job. Prints {"rate": deliveries/s,
// "seconds", "cpu_s": CPU of the drain, "maxrss_kb"} for N jobs at the given
// concurrency. Over https (bench/internet.py) it trusts --ca FILE; with
// --urls-file each job goes to its line of that file (one URL per job), as
// hookd's jobs do. Every request carries x-enq: the time the worker started
// (all jobs were queued before), for nginx's latency log.
//
// usage: node bullmq.js --redis-port P (--url URL | --urls-file F) --jobs N
//                       --concurrency C [--ca FILE]
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const { Queue, Worker } = require('bullmq');

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf('--' + k); return i >= 0 ? args[i + 1] : d; };
const connection = { host: '127.0.0.1', port: Number(opt('redis-port')) };
const n = Number(opt('jobs', '10000'));
const urls = opt('urls-file') ? fs.readFileSync(opt('urls-file'), 'utf8').split('\n')
                              : [opt('url')];
const concurrency = Number(opt('concurrency', '64'));
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const ca = opt('ca') ? fs.readFileSync(opt('ca')) : undefined;
// one agent per scheme; an agent keeps maxSockets per origin
const agents = { 'http:': new http.Agent({ keepAlive: true, maxSockets: concurrency }),
                 'https:': new https.Agent({ keepAlive: true, maxSockets: concurrency, ca }) };
const name = 'bench' + Date.now();
let enq = '0';

function post(target, body) {
  return new Promise((resolve, reject) => {
    const url = new URL(target);
    const mod = url.protocol === 'https:' ? https : http;
    const sig = crypto.createHmac('sha256', secret).update(body).digest('hex');
    const req = mod.request({ host: url.hostname, port: url.port, path: url.pathname,
                              method: 'POST', agent: agents[url.protocol],
                              headers: { 'content-type': 'application/json',
                                         'content-length': Buffer.byteLength(body),
                                         'x-dialgen-signature': sig, 'x-enq': enq } }, (res) => {
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
      batch.push({ name: 'hook', data: { id: 'b' + i, url: urls[urls.length > 1 ? i : 0],
                                         body: JSON.stringify({ ...payload, i }) },
                   opts: { removeOnComplete: true } });
    await queue.addBulk(batch);
  }
  let done = 0;
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  enq = String(Date.now());
  await new Promise((resolve) => {
    const worker = new Worker(name, (job) => post(job.data.url, job.data.body),
                              { connection, concurrency });
    worker.on('completed', () => { if (++done === n) { resolve(); worker.close(); } });
    worker.on('failed', (job, err) => { console.error(err.message); });
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ rate: n / secs, seconds: secs,
                                        cpu_s: (cpu.user + cpu.system) / 1e6,
                                        maxrss_kb: process.resourceUsage().maxRSS }) + '\n');
  await queue.obliterate({ force: true });
  await queue.close();
  process.exit(0);
})();
