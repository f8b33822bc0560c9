// SuperTokens' own backend SDKs with Portcullis as their core, driven over HTTP in header mode:
// supertokens-node 24.0.3 with express (e2e/supertokens-apps/node-app.mjs, the seed's
// `Session.init({ errorHandlers })` with all five handlers overridden) and supertokens-python 0.31.4 with
// FastAPI (python_app.py, the same routes and handlers). Each scenario proves which handler fired by the
// handler's own tag and by the app's record of the handlers that ran.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EXPIRY_SLEEP_MS, decodeJwtPayload, sleep, withStack } from "./harness.mjs";

const TEST_TIMEOUT_MS = 60_000;
const HEADER_MODE = { "st-auth-mode": "header" };

/** Calls the app; returns status, JSON body and the session headers it set. */
async function call(appUrl, method, path, { token, body, headers } = {}) {
  const res = await fetch(appUrl + path, {
    method,
    headers: {
      ...HEADER_MODE,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return {
    status: res.status,
    body: json,
    access: res.headers.get("st-access-token"),
    refresh: res.headers.get("st-refresh-token"),
    front: res.headers.get("front-token"),
  };
}

async function signIn(appUrl, userId, role = "member") {
  const res = await call(appUrl, "POST", "/login", { body: { userId, role } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.ok(res.access && res.refresh && res.front, "sign-in sets st-access-token, st-refresh-token and front-token");
  return res;
}

const refresh = (appUrl, refreshToken) => call(appUrl, "POST", "/auth/session/refresh", { token: refreshToken });

async function handlersRun(appUrl) {
  return (await call(appUrl, "GET", "/handlers")).body.map((h) => h.handler);
}

for (const backend of ["supertokens-node", "supertokens-python"]) for (const store of ["SQLite", "PostgreSQL"]) describe(`${backend} with Portcullis as its core on ${store} (header mode)`, () => {
  const postgres = store === "PostgreSQL";
  test("sign-in, local verification, expiry, one refresh, claims, session data", { timeout: TEST_TIMEOUT_MS }, async () => {
    await withStack({ label: `${backend}-${store}-lifecycle`, app: backend, postgres }, async ({ demoUrl: app }) => {
      const signed = await signIn(app, "u-42");
      const claims = decodeJwtPayload(signed.access);
      assert.equal(claims.sub, "u-42");
      assert.equal(claims.role, "member");
      assert.equal(claims.parentRefreshTokenHash1, null, "Portcullis rotates at refresh: no lazy promotion");

      const me = await call(app, "GET", "/me", { token: signed.access });
      assert.equal(me.status, 200);
      assert.deepEqual([me.body.userId, me.body.handle], ["u-42", signed.body.handle]);

      const denied = await call(app, "GET", "/admin", { token: signed.access });
      assert.equal(denied.status, 403);
      assert.equal(denied.body.handler, "onInvalidClaim");
      assert.equal(denied.body.claimValidationErrors[0].id, "is-admin");

      const tampered = signed.access.slice(0, -4) + (signed.access.endsWith("AAAA") ? "BBBB" : "AAAA");
      const refused = await call(app, "GET", "/me", { token: tampered });
      assert.deepEqual([refused.status, refused.body.handler], [401, "onTryRefreshToken"]);

      const merged = await call(app, "POST", "/claim", { token: signed.access, body: { plan: "pro" } });
      assert.equal(merged.status, 200, JSON.stringify(merged.body));
      assert.ok(merged.access, "the merged claims come back in a new access token");
      const mergedClaims = decodeJwtPayload(merged.access);
      assert.equal(mergedClaims.plan, "pro");
      assert.equal(mergedClaims.exp, claims.exp, "regenerate keeps the expiry");

      const data = await call(app, "POST", "/data", { token: merged.access, body: { cart: 3 } });
      assert.deepEqual(data.body, { data: { cart: 3 } });
      const info = await call(app, "GET", `/info/${signed.body.handle}`);
      assert.deepEqual([info.body.userId, info.body.recipeUserId, info.body.tenantId], ["u-42", "u-42", "public"]);
      assert.deepEqual(info.body.sessionDataInDatabase, { cart: 3 });
      assert.equal(info.body.customClaimsInAccessTokenPayload.plan, "pro");

      await sleep(EXPIRY_SLEEP_MS);
      const expired = await call(app, "GET", "/me", { token: merged.access });
      assert.deepEqual([expired.status, expired.body.handler], [401, "onTryRefreshToken"]);
      const rotated = await refresh(app, signed.refresh);
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      assert.ok(rotated.access && rotated.refresh && rotated.refresh !== signed.refresh, "refresh rotates both tokens");
      assert.equal(decodeJwtPayload(rotated.access).plan, "pro", "claims survive the refresh");
      const again = await call(app, "GET", "/me", { token: rotated.access });
      assert.equal(again.status, 200);
      assert.equal(again.access, null, "a token minted at refresh needs no core call and no re-mint");

      const handles = await call(app, "GET", "/handles/u-42");
      assert.deepEqual(handles.body.handles, [signed.body.handle]);
      assert.deepEqual(await handlersRun(app), ["onInvalidClaim", "onTryRefreshToken", "onTryRefreshToken"]);
    });
  });

  test("a replayed refresh token after the grace window fires onTokenTheftDetected and ends the session", { timeout: TEST_TIMEOUT_MS }, async () => {
    await withStack({ label: `${backend}-${store}-theft`, app: backend, postgres, graceSecs: 0 }, async ({ demoUrl: app }) => {
      const signed = await signIn(app, "victim");
      const rotated = await refresh(app, signed.refresh);
      assert.equal(rotated.status, 200);
      const theft = await refresh(app, signed.refresh);
      assert.deepEqual([theft.status, theft.body.handler], [401, "onTokenTheftDetected"]);
      const run = (await call(app, "GET", "/handlers")).body;
      assert.deepEqual(run.at(-1), {
        handler: "onTokenTheftDetected",
        sessionHandle: signed.body.handle,
        userId: "victim",
        recipeUserId: "victim",
      });
      const after = await refresh(app, rotated.refresh);
      assert.deepEqual([after.status, after.body.handler], [401, "onUnauthorised"], "the whole family is revoked");
      const info = await call(app, "GET", `/info/${signed.body.handle}`);
      assert.deepEqual(info.body, { missing: true });
    });
  });

  test("a revoked session fires onUnauthorised where the database is checked", { timeout: TEST_TIMEOUT_MS }, async () => {
    await withStack({ label: `${backend}-${store}-revoked`, app: backend, postgres }, async ({ demoUrl: app }) => {
      const first = await signIn(app, "alice");
      const second = await signIn(app, "alice");
      assert.equal((await call(app, "GET", "/me-db", { token: first.access })).status, 200);
      const revoked = await call(app, "POST", "/revoke/alice");
      assert.deepEqual(revoked.body.revoked.sort(), [first.body.handle, second.body.handle].sort());
      const refused = await call(app, "GET", "/me-db", { token: first.access });
      assert.deepEqual([refused.status, refused.body.handler], [401, "onUnauthorised"]);
      const noRefresh = await refresh(app, second.refresh);
      assert.deepEqual([noRefresh.status, noRefresh.body.handler], [401, "onUnauthorised"]);
      assert.deepEqual(await handlersRun(app), ["onUnauthorised", "onUnauthorised"]);
    });
  });

  test("UserRoles fill st-role and st-perm at sign-in; their validators admit and refuse", { timeout: TEST_TIMEOUT_MS }, async () => {
    await withStack({ label: `${backend}-${store}-roles`, app: backend, postgres }, async ({ demoUrl: app }) => {
      const granted = await call(app, "POST", "/roles/carol", { body: { admin: ["read", "write"], viewer: ["read"] } });
      assert.deepEqual(granted.body.roles.sort(), ["admin", "viewer"]);
      const carol = await signIn(app, "carol");
      const claims = decodeJwtPayload(carol.access);
      assert.deepEqual(claims["st-role"].v.sort(), ["admin", "viewer"]);
      assert.deepEqual(claims["st-perm"].v.sort(), ["read", "write"]);
      assert.equal((await call(app, "GET", "/role-admin", { token: carol.access })).status, 200);
      assert.equal((await call(app, "GET", "/perm-write", { token: carol.access })).status, 200);

      await call(app, "POST", "/roles/dave", { body: { viewer: ["read"] } });
      const dave = await signIn(app, "dave");
      const noRole = await call(app, "GET", "/role-admin", { token: dave.access });
      assert.deepEqual([noRole.status, noRole.body.handler], [403, "onInvalidClaim"]);
      assert.equal(noRole.body.claimValidationErrors[0].id, "st-role");
      const noPerm = await call(app, "GET", "/perm-write", { token: dave.access });
      assert.deepEqual([noPerm.status, noPerm.body.claimValidationErrors[0].id], [403, "st-perm"]);

      const updated = await call(app, "POST", "/metadata/dave", { body: { theme: "dark", beta: true } });
      assert.deepEqual(updated.body, { status: "OK", metadata: { theme: "dark", beta: true } });
      await call(app, "POST", "/metadata/dave", { body: { beta: null } });
      assert.deepEqual((await call(app, "GET", "/metadata/dave")).body, { status: "OK", metadata: { theme: "dark" } });
    });
  });

  if (postgres) test("two Portcullis instances on one PostgreSQL, used in turn: every refresh rotates, no false theft, a replay is theft", { timeout: TEST_TIMEOUT_MS }, async () => {
    await withStack(
      { label: `${backend}-two-instances`, app: backend, postgres: true, instances: 2, graceSecs: 0 },
      async ({ demoUrl: app, portcullisUrls }) => {
        assert.equal(portcullisUrls.length, 2);
        const signed = await signIn(app, "erin");
        let current = signed;
        for (let i = 0; i < 10; i += 1) {
          const rotated = await refresh(app, current.refresh);
          assert.equal(rotated.status, 200, `refresh ${i}: ${JSON.stringify(rotated.body)}`);
          const me = await call(app, "GET", "/me-db", { token: rotated.access });
          assert.equal(me.status, 200, `verify ${i} on the other instance`);
          current = rotated;
        }
        assert.deepEqual(await handlersRun(app), [], "no handler ran: no false theft, nothing refused");
        for (const url of portcullisUrls) {
          const metrics = await (await fetch(`${url}/metrics`)).text();
          const served = metrics
            .split("\n")
            .filter((line) => line.startsWith("portcullis_http_requests_total") && line.includes("/supertokens/"))
            .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
          assert.ok(served >= 10, `each instance served its share of the core calls (${url}: ${served})`);
        }
        const theft = await refresh(app, signed.refresh);
        assert.deepEqual([theft.status, theft.body.handler], [401, "onTokenTheftDetected"]);
      },
    );
  });

  test("duplicate access cookies after a cookie-domain change fire onClearDuplicateSessionCookies", { timeout: TEST_TIMEOUT_MS }, async () => {
    await withStack(
      { label: `${backend}-${store}-duplicates`, app: backend, postgres, demoEnv: { OLDER_COOKIE_DOMAIN: ".example.test" } },
      async ({ demoUrl: app }) => {
        const signed = await signIn(app, "bob");
        const res = await fetch(app + "/auth/session/refresh", {
          method: "POST",
          headers: { cookie: `sAccessToken=${signed.access}; sAccessToken=old-domain-copy; sRefreshToken=${signed.refresh}` },
        });
        const body = await res.json();
        assert.deepEqual([res.status, body.handler], [200, "onClearDuplicateSessionCookies"]);
        const cleared = res.headers.getSetCookie().filter((c) => /^sAccessToken=("")?;.*domain=\.?example\.test/i.test(c));
        assert.equal(cleared.length, 1, `the older domain's access cookie is cleared: ${res.headers.getSetCookie()}`);
        assert.deepEqual(await handlersRun(app), ["onClearDuplicateSessionCookies"]);
      },
    );
  });
});
