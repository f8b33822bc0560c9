import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
const dir = new URL('../node_modules/supertokens-web-js/bundle/', import.meta.url);
const hits = [];
const server = http.createServer((req, res) => {
  hits.push(`${req.method} ${req.url} rid=${req.headers.rid} mode=${req.headers['st-auth-mode']} cookie=${req.headers.cookie ?? ''}`);
  if (req.url === '/') { res.writeHead(200, {'content-type': 'text/html'}); res.end('<!doctype html><title>t</title>'); return; }
  res.writeHead(401, {'content-type': 'application/json', 'front-token': 'remove'}); res.end('{"message":"unauthorised"}');
});
await new Promise(r => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}`;
const t0 = Date.now();
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
  args: ['--headless','--no-sandbox','--disable-gpu','--disable-background-networking','--disable-component-update','--disable-sync','--no-first-run'] });
console.log('launched in', Date.now() - t0, 'ms, version', browser.version());
const page = await browser.newPage();
page.on('console', m => console.log('console:', m.text()));
await page.goto(url + '/');
for (const p of ['website.', 'supertokens.', 'session.']) {
  const f = readdirSync(dir).find(n => n.startsWith(p) && n.endsWith('.js'));
  await page.addScriptTag({ content: readFileSync(new URL(f, dir), 'utf8') });
}
const r = await page.evaluate(async (apiDomain) => {
  window.__events = [];
  const g = { w: typeof supertokensWebsite, s: typeof supertokens, ss: typeof supertokensSession };
  supertokens.init({ appInfo: { appName: 'demo', apiDomain, apiBasePath: '/auth' },
    recipeList: [supertokensSession.init({ tokenTransferMethod: 'cookie', onHandleEvent: e => window.__events.push(e.action) })] });
  const exists = await supertokensSession.doesSessionExist();
  const exists2 = await supertokensSession.doesSessionExist();
  return { g, exists, exists2, events: window.__events, cookies: document.cookie };
}, url);
console.log(JSON.stringify(r), hits);
await browser.close(); server.close();
