// SuperTokens' whole stack with Portcullis as its core: supertokens-web-js 0.16.0 in headless Chromium,
// against a supertokens-node 24.0.3 backend (e2e/supertokens-apps/node-app.mjs, the seed's five error
// handlers overridden) whose core is Portcullis. Cookie and header mode. Each scenario proves which backend
// handler fired from the backend's own record, and what the frontend SDK did (refreshes, events).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  EXPIRY_SLEEP_MS,
  cookieMap,
  launchBrowser,
  openSdkPage,
  replayRefresh,
  sdk,
  sleep,
  withScenario,
  withStack,
} from "./harness.mjs";

const TEST_TIMEOUT_MS = 90_000;
const APP = "supertokens-node";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const signIn = (page, userId, role = "member") =>
  page.evaluate(
    ([u, r]) =>
      window.__e2e.call("/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ userId: u, role: r }),
      }),
    [userId, role],
  );

const appJson = async (appUrl, path, init) => (await fetch(appUrl + path, init)).json();
// A fresh page's token-less refresh probe runs onUnauthorised in the backend without any core call; the
// scenarios look at the handlers that ran after sign-in.
const handlersRun = async (appUrl, since = 0) => (await appJson(appUrl, "/handlers")).slice(since).map((h) => h.handler);

/** The refresh token the browser holds now (HttpOnly cookie, or the SDK's header-mode cookie). */
async function refreshTokenOf(context, appUrl, mode) {
  const cookies = await cookieMap(context, `${appUrl}/auth/session/refresh`);
  const token = mode === "cookie" ? cookies.sRefreshToken?.value : cookies["st-refresh-token"]?.value;
  assert.ok(token, "the browser holds a refresh token");
  return token;
}

for (const store of ["SQLite", "PostgreSQL"]) for (const mode of ["cookie", "header"]) {
  describe(`supertokens-web-js → supertokens-node → Portcullis on ${store} (${mode} mode)`, () => {
    const scenario = (name, options, fn) =>
      withScenario(
        browser,
        { mode, label: `st-browser-${store}-${mode}-${name}`, app: APP, postgres: store === "PostgreSQL", ...options },
        fn,
      );

    test("sign-in, a refresh after expiry, then 8 parallel calls with an expired token make one refresh", { timeout: TEST_TIMEOUT_MS }, () =>
      scenario("lifecycle", {}, async ({ page, stack }) => {
        const app = stack.demoUrl;
        assert.equal((await signIn(page, "ann")).status, 200);
        const mark = (await appJson(app, "/handlers")).length;
        assert.equal(await sdk.doesSessionExist(page), true);
        assert.equal(await sdk.getUserId(page), "ann");
        const me = await sdk.call(page, "/me");
        assert.deepEqual([me.status, me.body.userId], [200, "ann"]);

        await sleep(EXPIRY_SLEEP_MS);
        const before = await appJson(app, "/stats");
        const again = await sdk.call(page, "/me");
        assert.equal(again.status, 200, "the SDK refreshed and retried");
        const after1 = await appJson(app, "/stats");
        assert.equal(after1.refreshSuccesses - before.refreshSuccesses, 1);

        await sleep(EXPIRY_SLEEP_MS);
        const results = await sdk.callParallel(page, "/me", 8);
        assert.deepEqual(results.map((r) => r.status), Array(8).fill(200));
        const after8 = await appJson(app, "/stats");
        assert.equal(after8.refreshAttempts - after1.refreshAttempts, 1, "8 parallel calls, one refresh");
        assert.deepEqual(await handlersRun(app, mark), ["onTryRefreshToken", ...Array(8).fill("onTryRefreshToken")]);
      }));

    test("a tampered access token: onTryRefreshToken, one refresh, the call succeeds", { timeout: TEST_TIMEOUT_MS }, () =>
      scenario("tampered", {}, async ({ page, context, stack }) => {
        const app = stack.demoUrl;
        await signIn(page, "eve");
        const name = mode === "cookie" ? "sAccessToken" : "st-access-token";
        const held = (await context.cookies(app)).find((c) => c.name === name);
        assert.ok(held, `the browser holds ${name}`);
        const tail = held.value.slice(-4);
        await context.addCookies([{ ...held, value: held.value.slice(0, -4) + (tail === "AAAA" ? "BBBB" : "AAAA") }]);
        const mark = (await appJson(app, "/handlers")).length;
        const before = await appJson(app, "/stats");
        const me = await sdk.call(page, "/me");
        assert.equal(me.status, 200, "the SDK refreshed and retried");
        assert.equal((await appJson(app, "/stats")).refreshSuccesses - before.refreshSuccesses, 1);
        assert.deepEqual(await handlersRun(app, mark), ["onTryRefreshToken"]);
      }));

    test("a failed claim reaches the page as a 403 through onInvalidClaim", { timeout: TEST_TIMEOUT_MS }, () =>
      scenario("claim", {}, async ({ page, stack }) => {
        await signIn(page, "bea", "member");
        const mark = (await appJson(stack.demoUrl, "/handlers")).length;
        const denied = await sdk.call(page, "/admin");
        assert.equal(denied.status, 403);
        assert.equal(denied.body.handler, "onInvalidClaim");
        assert.equal(denied.body.claimValidationErrors[0].id, "is-admin");
        assert.deepEqual(await handlersRun(stack.demoUrl, mark), ["onInvalidClaim"]);
      }));

    test("a replayed refresh token after the grace window fires onTokenTheftDetected and logs the page out", { timeout: TEST_TIMEOUT_MS }, () =>
      scenario("theft", { graceSecs: 0 }, async ({ page, context, stack }) => {
        const app = stack.demoUrl;
        await signIn(page, "cal");
        const stolen = await refreshTokenOf(context, app, mode);
        await sleep(EXPIRY_SLEEP_MS);
        assert.equal((await sdk.call(page, "/me")).status, 200, "the page refreshed");
        const replay = await replayRefresh(app, mode, stolen);
        assert.deepEqual([replay.status, replay.body.handler], [401, "onTokenTheftDetected"]);
        const run = await appJson(app, "/handlers");
        assert.equal(run.at(-1).userId, "cal");
        const refused = await sdk.call(page, "/me-db");
        assert.equal(refused.status, 401);
        assert.equal(await sdk.doesSessionExist(page), false, "the page is logged out");
        assert.ok((await sdk.actions(page)).includes("UNAUTHORISED"));
        assert.deepEqual((await handlersRun(app)).slice(-2), ["onTokenTheftDetected", "onUnauthorised"]);
      }));

    test("a revoked session: onUnauthorised where the database is checked, and the page is logged out", { timeout: TEST_TIMEOUT_MS }, () =>
      scenario("revoked", {}, async ({ page, stack }) => {
        const app = stack.demoUrl;
        await signIn(page, "dan");
        assert.equal((await sdk.call(page, "/me-db")).status, 200);
        await appJson(app, "/revoke/dan", { method: "POST" });
        const refused = await sdk.call(page, "/me-db");
        assert.equal(refused.status, 401);
        assert.equal(await sdk.doesSessionExist(page), false);
        assert.ok((await handlersRun(app)).includes("onUnauthorised"));
      }));
  });
}

// A cookie-domain change, as a browser lives it: the app's cookies are host-only on app.portcullis.test,
// and a copy of the access cookie from the earlier deployment's domain (.portcullis.test) is still there.
// Chromium maps *.portcullis.test to loopback; IP addresses cannot carry domain cookies.
describe("supertokens-web-js → supertokens-node → Portcullis: duplicate cookies after a cookie-domain change", () => {
  test("onClearDuplicateSessionCookies clears the older domain's cookie and the next call works", { timeout: TEST_TIMEOUT_MS }, async () => {
    const mapped = await launchBrowser(["--host-resolver-rules=MAP *.portcullis.test 127.0.0.1"]);
    try {
      await withStack(
        { label: "st-browser-duplicates", app: APP, demoEnv: { OLDER_COOKIE_DOMAIN: ".portcullis.test" } },
        async ({ demoUrl }) => {
          const app = demoUrl.replace("127.0.0.1", "app.portcullis.test");
          const context = await mapped.newContext();
          try {
            const page = await openSdkPage(context, app, "cookie");
            assert.equal((await signIn(page, "fay")).status, 200);
            const access = (await context.cookies(app)).find((c) => c.name === "sAccessToken");
            assert.ok(access, "signed in with a host-only access cookie");
            await context.addCookies([{ ...access, domain: ".portcullis.test" }]);
            assert.equal((await context.cookies(app)).filter((c) => c.name === "sAccessToken").length, 2);

            await sdk.call(page, "/me");
            const run = await handlersRun(demoUrl);
            assert.ok(run.includes("onClearDuplicateSessionCookies"), `handlers: ${run}`);
            const left = (await context.cookies(app)).filter((c) => c.name === "sAccessToken");
            assert.deepEqual(left.map((c) => c.domain), ["app.portcullis.test"], "the older domain's cookie is gone");
            const next = await sdk.call(page, "/me");
            assert.deepEqual([next.status, next.body.userId], [200, "fay"]);
          } finally {
            await context.close().catch(() => {});
          }
        },
      );
    } finally {
      await mapped.close();
    }
  });
});
