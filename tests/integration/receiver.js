// receiver.js -- a real HTTP webhook receiver for hookd's integration tests.
//
// Verifies every delivery independently of hookd:
//   x-dialgen-signature exactly as the Dialgen documentation's Node sample
//   does it (HMAC-SHA256 hex over JSON.stringify(req.body), where req.body is
//   JSON.parse of the raw body, which is what express.json() produces), and
//   the Standard Webhooks webhook-signature (v1, base64 HMAC over
//   "<id>.<timestamp>.<raw body>", key = base64-decoded whsec_ secret).
// Records every delivery; GET /__stats on the control port returns the
// record as JSON.
//
// What it answers is chosen per request by the query string, so one receiver
// serves many scenarios:
//   ?fail_first=K    answer `status` (default 500) to the first K attempts of
//                    each webhook-id, then 200
//   ?status=N        always answer N (unless fail_first applies)
//   ?retry_after=S   add a Retry-After: S header to failing answers
//   ?location=URL    add a Location header (for 3xx)
//   ?hang=1          never answer
//   ?fail_rate=P     answer 500 with probability P
//   ?delay=MS        answer after MS milliseconds (a success counts only if
//                    the client is still there to get it)
// The control port (printed at start) serves /__stats and /__config:
// /__config?delay=MS overrides every request's delay from then on ('' undoes
// it); /__config?reset=1 forgets everything recorded so far;
// /__config?status=N answers N to every request from then on ('' undoes
// it); /__config?down=1 closes the webhook port and cuts its connections,
// down=0 opens it again; /__config?release=1 answers at once every request
// still waiting out a delay.
//
//   ?big=N           answer 200 with an N-byte body; big_reset[webhook-id]
//                    is set when the client resets the connection (it
//                    closed it with part of the answer unread)
//   ?answer=B64      answer these bytes (base64) instead of {"received":true}
//   ?keep=1          keep the body (base64, by webhook-id), as the request
//                    header x-keep-body: 1 does
//   ?headers=1       keep the request headers (by webhook-id: name, lower
//                    case, to value, of the latest request), as the request
//                    header x-keep-headers: 1 does
//
// With --tls-cert/--tls-key it serves HTTPS; --client-ca makes it require a
// client certificate signed by that CA (mutual TLS); --http2 offers HTTP/2
// (ALPN, HTTP/1.1 still accepted). The record counts requests over HTTP/2
// (http2), TLS connections (tls_connections) and those that resumed a
// session (tls_resumed).
//
// Usage: node receiver.js --secret S [--port P] [--host H]
//                         [--tls-cert F --tls-key F [--client-ca F] [--http2]]
// Prints {"port": P, "control": C} on its first stdout line once listening.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const http2 = require('http2');
const crypto = require('crypto');

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : dflt;
}
const secret = opt('secret', '');
const port = Number(opt('port', '0'));
const host = opt('host', '127.0.0.1');
const status = Number(opt('status', '200'));

function standardKey(s) {
  return s.startsWith('whsec_') ? Buffer.from(s.slice(6), 'base64') : Buffer.from(s);
}

// --sw-secret S: also verify with the standardwebhooks npm package, as a
// receiver holding only S would (sw_valid / sw_invalid counts).
const swSecret = opt('sw-secret', null);
const swHook = swSecret ? new (require('standardwebhooks').Webhook)(swSecret) : null;

function newRecord() {
  return { sw_valid: 0, sw_invalid: 0, count: 0, valid_dialgen: 0, valid_standard: 0, invalid: [],
           ids: {}, events: {}, content_types: {}, bodies: {}, times: {}, succeeded: {},
           paths: {}, headers: {}, big_reset: {}, tls_connections: 0, tls_resumed: 0, http2: 0 };
}
let rec = newRecord();

function verify(req, raw) {
  const id = req.headers['webhook-id'];
  const ts = req.headers['webhook-timestamp'];
  const ctype = req.headers['content-type'] || '';
  let dialgenOk = false;
  if (ctype.startsWith('application/json')) {
    // The documented receiver: JSON.stringify(req.body) after express.json().
    let payload;
    try { payload = JSON.stringify(JSON.parse(raw.toString('utf8'))); } catch (e) { payload = null; }
    if (payload !== null) {
      const expected = crypto.createHmac('sha256', secret).update(payload).digest('hex');
      dialgenOk = req.headers['x-dialgen-signature'] === expected;
    }
  } else {
    const expected = crypto.createHmac('sha256', secret).update(raw).digest('hex');
    dialgenOk = req.headers['x-dialgen-signature'] === expected;
  }
  const mac = crypto.createHmac('sha256', standardKey(secret))
    .update(Buffer.concat([Buffer.from(`${id}.${ts}.`), raw])).digest('base64');
  const sigs = (req.headers['webhook-signature'] || '').split(' ');
  const standardOk = sigs.includes('v1,' + mac) &&
    Math.abs(Date.now() / 1000 - Number(ts)) < 300;
  return { dialgenOk, standardOk, id };
}

let delayOverride = null;
let statusOverride = null;
const sockets = new Set();
const delayed = new Set();      // {timer, answer} of requests waiting out a delay

// The control port stays up while the webhook port can be taken "down"
// (listener closed, every connection cut: hookd sees connection refused),
// so the record survives an outage.
const control = http.createServer((req, res) => {
  const q = new URL(req.url, 'http://x').searchParams;
  if (req.url.startsWith('/__stats')) {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(rec));
    return;
  }
  if (q.get('reset') === '1') rec = newRecord();
  if (q.has('delay')) delayOverride = q.get('delay') === '' ? null : Number(q.get('delay'));
  if (q.has('status')) statusOverride = q.get('status') === '' ? null : Number(q.get('status'));
  if (q.get('down') === '1' && server.listening) {
    server.close();
    for (const s of sockets) s.destroy();
  }
  if (q.get('down') === '0' && !server.listening) server.listen(server.lastPort, host, 4096);
  if (q.get('release') === '1') {
    for (const d of delayed) {
      clearTimeout(d.timer);
      d.answer();
    }
    delayed.clear();
  }
  res.end('{}');
});

const tlsCert = opt('tls-cert', null);
const handler = (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const v = verify(req, raw);
    rec.count++;
    if (req.httpVersionMajor === 2) rec.http2++;
    if (swHook) {
      try {
        swHook.verify(raw.toString('utf8'), req.headers);
        rec.sw_valid++;
      } catch (e) {
        rec.sw_invalid++;
      }
    }
    if (v.dialgenOk) rec.valid_dialgen++;
    if (v.standardOk) rec.valid_standard++;
    if (!v.dialgenOk || !v.standardOk)
      rec.invalid.push({ id: v.id, dialgen: v.dialgenOk, standard: v.standardOk });
    rec.ids[v.id] = (rec.ids[v.id] || 0) + 1;
    const ev = req.headers['x-dialgen-event'] || '';
    rec.events[ev] = (rec.events[ev] || 0) + 1;
    rec.content_types[req.headers['content-type']] = true;
    const url = new URL(req.url, 'http://x');
    if (req.headers['x-keep-body'] || url.searchParams.get('keep'))
      rec.bodies[v.id] = raw.toString('base64');
    if (req.headers['x-keep-headers'] || url.searchParams.get('headers'))
      rec.headers[v.id] = req.headers;
    (rec.times[v.id] = rec.times[v.id] || []).push(Date.now());
    rec.paths[url.pathname] = (rec.paths[url.pathname] || 0) + 1;
    const q = url.searchParams;
    if (q.get('hang')) return;      // never answer; hookd's timeout cuts it
    let code = Number(q.get('status') || status);
    const failFirst = Number(q.get('fail_first') || 0);
    if (failFirst > 0) code = rec.ids[v.id] <= failFirst ? Number(q.get('status') || 500) : 200;
    if (q.get('fail_rate') && Math.random() < Number(q.get('fail_rate'))) code = 500;
    if (statusOverride !== null) code = statusOverride;
    if (code < 200 || code >= 300) {
      if (q.get('retry_after')) res.setHeader('retry-after', q.get('retry_after'));
      if (q.get('location')) res.setHeader('location', q.get('location'));
    }
    const answer = () => {
      if (req.socket.destroyed) return;       // the client gave up: no answer reached it
      if (code >= 200 && code < 300) rec.succeeded[v.id] = (rec.succeeded[v.id] || 0) + 1;
      res.statusCode = code;
      res.end(q.get('answer') !== null ? Buffer.from(q.get('answer'), 'base64')
                                       : '{"received":true}');
    };
    const delay = delayOverride !== null ? delayOverride : Number(q.get('delay') || 0);
    if (q.get('big')) {
      rec.succeeded[v.id] = (rec.succeeded[v.id] || 0) + 1;
      res.statusCode = 200;
      req.socket.on('close', (hadError) => { if (hadError) rec.big_reset[v.id] = true; });
      res.end(Buffer.alloc(Number(q.get('big')), 'x'));
      return;
    }
    if (delay > 0) {
      const d = { answer };
      d.timer = setTimeout(() => { delayed.delete(d); answer(); }, delay);
      delayed.add(d);
    } else {
      answer();
    }
  });
};
const tlsOptions = () => ({ cert: fs.readFileSync(tlsCert), key: fs.readFileSync(opt('tls-key')) });
const server = tlsCert && args.includes('--http2')
  ? http2.createSecureServer({ ...tlsOptions(), allowHTTP1: true }, handler)
  : tlsCert
  ? https.createServer({ ...tlsOptions(),
                         ca: opt('client-ca', null) ? fs.readFileSync(opt('client-ca')) : undefined,
                         requestCert: !!opt('client-ca', null),
                         rejectUnauthorized: !!opt('client-ca', null) }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 30000;
server.on(tlsCert ? 'secureConnection' : 'connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
  if (tlsCert) {
    rec.tls_connections++;
    if (s.isSessionReused()) rec.tls_resumed++;     // an abbreviated handshake
  }
});
// A deep accept backlog: hookd opens up to workers x max_in_flight connections at once.
server.listen(port, host, 4096, () => {
  server.lastPort = server.address().port;
  control.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.lastPort,
                                          control: control.address().port }) + '\n');
  });
});
process.on('SIGTERM', () => process.exit(0));
