#!/usr/bin/env node
// THROWAWAY mock of `demo-app` implementing the e2e contract in Node (never committed).
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
const P = process.env.PORTCULLIS_URL;
const cfg = await (await fetch(P + '/mock-config')).json();
if (!cfg.keys.includes(process.env.DEMO_API_KEY)) { console.error('bad api key'); process.exit(3); }
const BUG = process.env.MOCK_BUG ?? '';
const VALIDITY_MS = cfg.validity * 1000, GRACE_MS = BUG === 'strict' ? 0 : cfg.grace * 1000;
const sessions = new Map(); // handle -> {userId, roles, cur:Set, prev, rotatedAt, revoked}
const rtIndex = new Map(); // refresh token -> handle
const stats = { refreshAttempts: 0, refreshSuccesses: 0 };
let dropNext = false;
const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function mintAccess(handle) {
  const s = sessions.get(handle); const now = Date.now(); const ate = now + VALIDITY_MS;
  const up = { sub: s.userId, exp: Math.ceil(ate / 1000), iat: Math.floor(now / 1000), sessionHandle: handle, 'st-role': { v: s.roles, t: now } };
  const jwt = `${b64u({ alg: 'none', kid: 'mock' })}.${b64u({ ...up, ateMs: ate })}.sig`;
  const front = Buffer.from(JSON.stringify({ uid: s.userId, ate, up })).toString('base64');
  return { jwt, front };
}
function newRefresh(handle) { const t = randomBytes(24).toString('base64').replace(/=+$/, ''); rtIndex.set(t, handle); return t; }
function parseCookies(h) { const out = {}; for (const p of (h ?? '').split(/;\s*/)) { const i = p.indexOf('='); if (i > 0) out[p.slice(0, i)] = decodeURIComponent(p.slice(i + 1)); } return out; }
function tokensOut(res, mode, handle, rt) {
  const { jwt, front } = mintAccess(handle);
  const h = { 'front-token': front };
  const cookies = [];
  if (mode === 'cookie') {
    cookies.push(BUG === 'noexpires' ? `sAccessToken=${encodeURIComponent(jwt)}; Path=/; HttpOnly; SameSite=Lax` : `sAccessToken=${encodeURIComponent(jwt)}; Path=/; Expires=${new Date(Date.now() + 31536000000).toUTCString()}; HttpOnly; SameSite=Lax`);
    cookies.push(`sRefreshToken=${encodeURIComponent(rt)}; Path=/auth/session/refresh; Expires=${new Date(Date.now() + 8640000000).toUTCString()}; HttpOnly; SameSite=Lax`);
  } else { h['st-access-token'] = jwt; h['st-refresh-token'] = rt; }
  return { h, cookies };
}
function clear() {
  return { h: { 'front-token': BUG === 'noremove' ? undefined : 'remove', 'st-access-token': '', 'st-refresh-token': '' }, cookies: [
    'sAccessToken=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax',
    'sRefreshToken=; Path=/auth/session/refresh; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax'] };
}
function send(res, status, body, extra = { h: {}, cookies: [] }) {
  const headers = { 'content-type': 'application/json', ...extra.h };
  if (extra.cookies.length) headers['set-cookie'] = extra.cookies;
  res.writeHead(status, headers); res.end(JSON.stringify(body));
}
function verify(req) {
  let tok; const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) { const t = auth.slice(7); if (t.split('.').length === 3) tok = t; }
  if (!tok) tok = parseCookies(req.headers.cookie).sAccessToken;
  if (!tok) return { err: 'unauthorised' };
  let p; try { p = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url')); } catch { return { err: 'unauthorised' }; }
  if (Date.now() > p.ateMs) return { err: 'try refresh token' };
  return { p };
}
const server = http.createServer(async (req, res) => {
  const chunks = []; for await (const c of req) chunks.push(c);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks)) : undefined;
  const url = new URL(req.url, 'http://x');
  const key = `${req.method} ${url.pathname}`;
  if (key === 'GET /') { res.writeHead(200, { 'content-type': 'text/html' }); return res.end('<!doctype html><title>demo</title><p>demo'); }
  if (key === 'POST /dev/sign-in') {
    const mode = req.headers['st-auth-mode'] === 'cookie' ? 'cookie' : 'header';
    const handle = randomUUID();
    sessions.set(handle, { userId: body.userId, roles: body.roles ?? [], cur: new Set(), prev: null, rotatedAt: 0, revoked: false });
    const rt = newRefresh(handle); sessions.get(handle).cur.add(rt);
    const out = tokensOut(res, mode, handle, rt);
    return send(res, 200, { status: 'OK', userId: body.userId }, out);
  }
  if (key === 'GET /api/me' || key === 'GET /api/admin') {
    const v = verify(req);
    if (v.err) return send(res, 401, { message: v.err });
    if (url.pathname === '/api/admin') {
      const roles = v.p['st-role']?.v ?? [];
      if (!roles.includes('admin')) return send(res, 403, { message: 'invalid claim', claimValidationErrors: [{ id: 'st-role', reason: { message: 'wrong value', expectedToInclude: 'admin', actualValue: roles } }] });
      return send(res, 200, { ok: true });
    }
    return send(res, 200, { userId: v.p.sub, sessionHandle: v.p.sessionHandle });
  }
  if (key === 'POST /auth/session/refresh') {
    stats.refreshAttempts++;
    let rt, mode;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) { rt = auth.slice(7); mode = 'header'; } else { rt = parseCookies(req.headers.cookie).sRefreshToken; mode = 'cookie'; }
    if (!req.headers.rid || !rt || !rtIndex.has(rt)) return send(res, 401, { message: 'unauthorised' }, clear());
    const handle = rtIndex.get(rt); const s = sessions.get(handle);
    if (s.revoked) return send(res, 401, { message: 'unauthorised' }, clear());
    let n;
    if (s.cur.has(rt)) { n = newRefresh(handle); s.prev = rt; s.cur = new Set([n]); s.rotatedAt = Date.now(); }
    else if (s.prev === rt && Date.now() <= s.rotatedAt + GRACE_MS) { n = newRefresh(handle); s.cur.add(n); }
    else if (BUG === 'notheft') { n = newRefresh(handle); s.cur.add(n); } else { s.revoked = true; return send(res, 401, { message: 'token theft detected' }, clear()); }
    stats.refreshSuccesses++;
    if (dropNext) { dropNext = false; req.socket.destroy(); return; }
    const o = tokensOut(res, mode, handle, n); if (BUG === 'nofront') delete o.h['front-token']; return send(res, 200, {}, o);
  }
  if (key === 'POST /auth/signout') {
    const v = verify(req);
    if (v.err) return send(res, 401, { message: v.err });
    sessions.get(v.p.sessionHandle).revoked = true;
    return send(res, 200, { status: 'OK' }, clear());
  }
  if (key === 'POST /dev/revoke') { let n = 0; for (const s of sessions.values()) if (s.userId === body.userId && !s.revoked) { s.revoked = true; n++; } return send(res, 200, { revoked: n }); }
  if (key === 'GET /dev/stats') return send(res, 200, stats);
  if (key === 'POST /dev/fault/drop-next-refresh') { dropNext = true; return send(res, 200, { armed: true }); }
  send(res, 404, { message: 'not found' });
});
const [host, port] = process.env.DEMO_LISTEN.split(':');
server.listen(Number(port), host, () => console.log(`demo-app listening on http://${host}:${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
