#!/usr/bin/env node
// THROWAWAY mock of `portcullis` for checking the e2e harness and tests (never committed).
import http from 'node:http';
import { randomUUID, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
const args = process.argv.slice(2);
const dataDir = process.env.PORTCULLIS_DATA_DIR;
if (!dataDir) { console.error('no data dir'); process.exit(2); }
mkdirSync(dataDir, { recursive: true });
const db = `${dataDir}/mock.json`;
const load = () => existsSync(db) ? JSON.parse(readFileSync(db, 'utf8')) : { orgs: [], keys: [] };
const save = (d) => writeFileSync(db, JSON.stringify(d));
if (args[0] === 'serve') {
  const [host, port] = process.env.PORTCULLIS_SERVER__LISTEN.split(':');
  const cfg = { validity: Number(process.env.PORTCULLIS_SESSION__ACCESS_TOKEN_VALIDITY_SECS ?? 3600), grace: Number(process.env.PORTCULLIS_SESSION__REFRESH_GRACE_SECS ?? 30) };
  const s = http.createServer((req, res) => {
    if (req.url === '/health') { res.writeHead(200, {'content-type':'application/json'}); return res.end('{"status":"ok"}'); }
    if (req.url === '/mock-config') { res.writeHead(200, {'content-type':'application/json'}); return res.end(JSON.stringify({ ...cfg, keys: load().keys.map(k => k.key) })); }
    res.writeHead(404); res.end();
  });
  s.listen(Number(port), host, () => {
    process.stdout.write(`Portcullis 0.1.0 is serving on http://${host}:${s.address().port} (store: mock at ${dataDir})\nAdmin API token: x\n`);
  });
  process.on('SIGTERM', () => { s.close(); process.exit(0); });
} else if (args[0] === 'org' && args[1] === 'create') {
  const d = load(); const org = { id: randomUUID(), name: args[2], created: new Date().toISOString() };
  d.orgs.push(org); save(d); console.log(JSON.stringify(org, null, 2));
} else if (args[0] === 'org' && args[1] === 'api-key' && args[2] === 'create') {
  const d = load(); const k = { id: randomUUID(), key: 'pk_' + randomBytes(16).toString('hex'), organization: args[3] };
  d.keys.push(k); save(d); console.log(JSON.stringify(k, null, 2));
} else { console.error('usage'); process.exit(2); }
