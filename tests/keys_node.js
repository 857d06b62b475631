// Node as the sandbox's client in the keys tests (issue 45), through the
// forward proxy, trusting only the proxy's CA:
//
//     node keys_node.js PROXY_PORT CAFILE HOST PATH NAME:VALUE...
//
// Node 20's global fetch has no proxy support: with undici installed, its
// fetch goes through a ProxyAgent; without, https.request rides a CONNECT
// made with http.request. Prints {"via", "status", "headers", "body"}.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const tls = require('tls');

const [port, caFile, host, path, ...given] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const headers = Object.fromEntries(given.map((h) => {
  const i = h.indexOf(':');
  return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
}));
const show = (via, status, raw, body) => {
  const pairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i], raw[i + 1]]);
  console.log(JSON.stringify({ via, status, headers: pairs, body }));
};

let undici = null;
try {
  undici = require('undici');
} catch (_) {
  undici = null;
}

if (undici) {
  const dispatcher = new undici.ProxyAgent({ uri: `http://127.0.0.1:${port}`, requestTls: { ca } });
  undici.fetch(`https://${host}${path}`, { headers, dispatcher }).then(async (r) => {
    const raw = [];
    r.headers.forEach((v, k) => raw.push(k, v));
    show('undici', r.status, raw, await r.text());
  }, (e) => { console.error(String(e)); process.exit(1); });
} else {
  const connect = http.request({ host: '127.0.0.1', port, method: 'CONNECT', path: `${host}:443` });
  connect.on('connect', (res, socket) => {
    if (res.statusCode !== 200) {
      show('connect', res.statusCode, res.rawHeaders, '');
      socket.destroy();
      return;
    }
    const req = https.request({
      host, port: 443, defaultPort: 443, path, headers, ca, servername: host,
      createConnection: () => tls.connect({ socket, servername: host, ca }),
    }, (r) => {
      let body = '';
      r.setEncoding('latin1');
      r.on('data', (d) => { body += d; });
      r.on('end', () => { show('connect', r.statusCode, r.rawHeaders, body); socket.destroy(); });
    });
    req.on('error', (e) => { console.error(String(e)); process.exit(1); });
    req.end();
  });
  connect.on('error', (e) => { console.error(String(e)); process.exit(1); });
  connect.end();
}
