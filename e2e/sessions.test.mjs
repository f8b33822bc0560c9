// SuperTokens' real frontend SDK (supertokens-web-js 0.16.0, browser bundles) against Portcullis's
// session layer, in headless Chromium. Scenarios follow docs section 13 of the session-protocol
// reference; each runs in cookie and in header mode against a fresh Portcullis + demo app.
//
// Timing: access tokens live 2 s (ACCESS_TOKEN_VALIDITY_SECS). Tests sleep EXPIRY_SLEEP_MS (2.5 s) to
// outlive one, and otherwise do their checks right after signing in, because several SDK calls
// (doesSessionExist, getAccessToken, signOut) refresh first when the front token's `ate` has passed.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  EXPIRY_SLEEP_MS,
  controls,
  cookieMap,
  decodeFrontToken,
  decodeJwtPayload,
  launchBrowser,
  parseSetCookies,
  refreshCounter,
  replayRefresh,
  sdk,
  sleep,
  withScenario,
} from "./harness.mjs";

const TEST_TIMEOUT_MS = 90_000;
const REFRESH_PATH = "/auth/session/refresh";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

// ---- small assertion helpers ------------------------------------------------------------------

/** The refresh token the browser holds now: the HttpOnly cookie, or the SDK's header-mode cookie. */
async function currentRefreshToken(context, demoUrl, mode) {
  const cookies = await cookieMap(context, demoUrl + REFRESH_PATH);
  const token = mode === "cookie" ? cookies.sRefreshToken?.value : cookies["st-refresh-token"]?.value;
  assert.ok(token, `no ${mode === "cookie" ? "sRefreshToken" : "st-refresh-token"} cookie in the browser`);
  return token;
}

/** A Set-Cookie that deletes: empty value and an expiry in the past (or Max-Age <= 0). */
function isClearing(cookie) {
  if (cookie.value !== "") return false;
  if ("max-age" in cookie.attrs && Number(cookie.attrs["max-age"]) <= 0) return true;
  return "expires" in cookie.attrs && Date.parse(cookie.attrs.expires) <= Date.now();
}

function setCookiesOf(exchange) {
  return parseSetCookies(exchange.responseHeaders["set-cookie"]);
}

/** Asserts the response carries new session tokens in `mode` and a real front token. */
function assertIssuesTokens(exchange, mode, what) {
  const front = exchange.responseHeaders["front-token"];
  assert.ok(front && front !== "remove", `${what}: front-token header missing (got ${front})`);
  if (mode === "cookie") {
    const names = setCookiesOf(exchange)
      .filter((c) => c.value !== "")
      .map((c) => c.name);
    assert.ok(names.includes("sAccessToken"), `${what}: no sAccessToken Set-Cookie (got ${names})`);
    assert.ok(names.includes("sRefreshToken"), `${what}: no sRefreshToken Set-Cookie (got ${names})`);
  } else {
    assert.ok(exchange.responseHeaders["st-access-token"], `${what}: no st-access-token header`);
    assert.ok(exchange.responseHeaders["st-refresh-token"], `${what}: no st-refresh-token header`);
    const set = setCookiesOf(exchange).filter((c) => c.value !== "" && /^s(Access|Refresh)Token$/.test(c.name));
    assert.deepEqual(set, [], `${what}: header mode must not set session cookies`);
  }
  return decodeFrontToken(front);
}

const logoutEvents = (events) => events.filter((e) => e.action === "UNAUTHORISED" || e.action === "SIGN_OUT");

const NOT_ADMIN_ERRORS = [
  {
    id: "st-role",
    reason: { message: "wrong value", expectedToInclude: "admin", actualValue: ["viewer"] },
  },
];

// ---- scenarios --------------------------------------------------------------------------------

for (const mode of ["cookie", "header"]) {
  describe(`${mode} mode`, { timeout: TEST_TIMEOUT_MS }, () => {
    const scenario = (label, options, fn) =>
      withScenario(browser, { mode, label: `${mode}-${label}`, ...options }, fn);

    test("1. fresh page: no session, after exactly one token-less refresh probe", () =>
      scenario("1-fresh", {}, async ({ page, wire }) => {
        const delta = await refreshCounter(page);

        assert.equal(await sdk.doesSessionExist(page), false);
        // With neither sFrontToken nor st-last-access-token-update the SDK cannot tell whether a
        // session exists (MAY_EXIST), so it POSTs /session/refresh with no tokens first. The 401 +
        // `front-token: remove` writes st-last-access-token-update: NOT_EXISTS, never asked again.
        assert.deepEqual(await delta(), { attempts: 1, successes: 0 });
        await wire.settle();
        const [probe, ...more] = wire.refreshes();
        assert.equal(more.length, 0);
        assert.equal(probe.method, "POST");
        assert.equal(probe.requestHeaders.rid, "session");
        assert.equal(probe.requestHeaders["st-auth-mode"], mode);
        assert.ok(probe.requestHeaders["fdi-version"], "refresh carries fdi-version");
        assert.doesNotMatch(probe.requestHeaders.cookie ?? "", /sRefreshToken|sAccessToken/);
        assert.equal(probe.requestHeaders.authorization, undefined);
        assert.equal(probe.status, 401);
        assert.deepEqual(probe.body, { message: "unauthorised" });
        assert.equal(probe.responseHeaders["front-token"], "remove");

        assert.equal(await sdk.doesSessionExist(page), false);
        assert.deepEqual(await delta(), { attempts: 1, successes: 0 }, "NOT_EXISTS: no second probe");
        assert.deepEqual(await sdk.events(page), []);

        // A protected call without a session: 401, and the SDK does not try to refresh.
        const me = await sdk.call(page, "/api/me");
        assert.equal(me.status, 401);
        assert.deepEqual(me.body, { message: "unauthorised" });
        assert.deepEqual(await delta(), { attempts: 1, successes: 0 });
        assert.deepEqual(await sdk.events(page), [{ action: "UNAUTHORISED", sessionExpiredOrRevoked: false }]);
      }));

    test("2. sign-in: session exists, user id, SESSION_CREATED, token transport", () =>
      scenario("2-sign-in", {}, async ({ page, context, wire, stack }) => {
        const delta = await refreshCounter(page);
        const signIn = await sdk.signIn(page, "u1");
        // Read everything at once: after 2 s these calls would refresh first.
        const seen = await page.evaluate(async () => ({
          exists: await supertokensSession.doesSessionExist(),
          userId: await supertokensSession.getUserId(),
          accessToken: (await supertokensSession.getAccessToken()) ?? null,
        }));

        assert.equal(signIn.status, 200);
        assert.deepEqual(signIn.body, { status: "OK", userId: "u1" });
        assert.equal(seen.exists, true);
        assert.equal(seen.userId, "u1");
        assert.deepEqual(await sdk.events(page), [{ action: "SESSION_CREATED" }]);
        // The only refresh call is the token-less probe before the sign-in request.
        assert.deepEqual(await delta(), { attempts: 1, successes: 0 });

        await wire.settle();
        const [exchange] = wire.forPath("/dev/sign-in");
        assert.equal(exchange.requestHeaders["st-auth-mode"], mode);
        const front = assertIssuesTokens(exchange, mode, "sign-in");
        assert.equal(front.uid, "u1");
        assert.equal(typeof front.ate, "number");
        assert.ok(front.ate > Date.now() - 5000 && front.ate < Date.now() + 60_000, `ate ${front.ate} is ms epoch ~2 s ahead`);
        assert.equal(front.up.sub, "u1");
        assert.equal(typeof front.up.iat, "number", "up.iat must be numeric seconds (clock-skew logic)");

        const all = await cookieMap(context);
        const atRoot = await cookieMap(context, `${stack.demoUrl}/`);
        assert.ok(all.sFrontToken && all["st-last-access-token-update"], "SDK wrote its own cookies");
        if (mode === "cookie") {
          assert.equal(seen.accessToken, null, "cookie mode: getAccessToken() is undefined");
          const at = all.sAccessToken;
          const rt = all.sRefreshToken;
          assert.ok(at && rt, "both session cookies set");
          assert.equal(at.path, "/");
          assert.equal(at.httpOnly, true);
          assert.equal(at.sameSite, "Lax");
          // A long-lived cookie keeps sending the expired JWT, so the server can answer "try
          // refresh token" instead of "unauthorised".
          assert.ok(at.expires * 1000 > Date.now() + 300 * 86_400_000, "sAccessToken expires ~1 year ahead");
          assert.equal(rt.path, "/auth/session/refresh");
          assert.equal(rt.httpOnly, true);
          assert.equal(rt.sameSite, "Lax");
          assert.equal(atRoot.sRefreshToken, undefined, "the refresh cookie only goes to the refresh path");
          assert.equal(all["st-access-token"], undefined);
        } else {
          assert.equal(typeof seen.accessToken, "string", "header mode: getAccessToken() is the token");
          assert.equal(seen.accessToken, exchange.responseHeaders["st-access-token"]);
          assert.equal(seen.accessToken.split(".").length, 3, "access token is a JWT");
          assert.equal(decodeJwtPayload(seen.accessToken).sub, "u1");
          assert.equal(all["st-refresh-token"]?.value, exchange.responseHeaders["st-refresh-token"]);
          assert.equal(all.sAccessToken, undefined, "header mode sets no session cookie");
          assert.equal(all.sRefreshToken, undefined, "header mode sets no session cookie");
        }
      }));

    test("3. expired access token, one call: one refresh, retried call 200", () =>
      scenario("3-expired", {}, async ({ page, context, wire, stack }) => {
        await sdk.signIn(page, "u1");
        const before = await sdk.call(page, "/api/me");
        assert.equal(before.status, 200);
        assert.equal(before.body.userId, "u1");
        const rt0 = await currentRefreshToken(context, stack.demoUrl, mode);
        await sdk.clearEvents(page);
        await wire.clear();
        const delta = await refreshCounter(page);

        await sleep(EXPIRY_SLEEP_MS);
        const me = await sdk.call(page, "/api/me");

        assert.equal(me.status, 200);
        assert.deepEqual(me.body, { userId: "u1", sessionHandle: before.body.sessionHandle }, "same session after refresh");
        assert.deepEqual(await delta(), { attempts: 1, successes: 1 });
        // The new front token's payload differs (iat/exp), hence ACCESS_TOKEN_PAYLOAD_UPDATED first.
        assert.deepEqual(await sdk.actions(page), ["ACCESS_TOKEN_PAYLOAD_UPDATED", "REFRESH_SESSION"]);

        await wire.settle();
        const calls = wire.forPath("/api/me");
        assert.equal(calls.length, 2, "the original call and its retry");
        assert.equal(calls[0].status, 401);
        assert.deepEqual(calls[0].body, { message: "try refresh token" });
        assert.equal(calls[0].responseHeaders["front-token"], undefined, "try-refresh clears nothing");
        const [refresh, ...more] = wire.refreshes();
        assert.equal(more.length, 0);
        assert.equal(refresh.requestHeaders.rid, "session");
        assert.equal(refresh.requestHeaders["st-auth-mode"], mode);
        if (mode === "cookie") {
          assert.match(refresh.requestHeaders.cookie ?? "", new RegExp(`(^|; )sRefreshToken=${escapeRegExp(rt0)}(;|$)`));
        } else {
          // Header mode: the refresh token travels as the bearer token of the refresh call.
          assert.equal(refresh.requestHeaders.authorization, `Bearer ${rt0}`);
        }
        assert.equal(refresh.status, 200);
        assert.deepEqual(refresh.body, {});
        const front = assertIssuesTokens(refresh, mode, "refresh");
        assert.equal(front.uid, "u1");
        assert.notEqual(await currentRefreshToken(context, stack.demoUrl, mode), rt0, "refresh token rotated");
      }));

    test("4. 8 parallel calls with an expired token: exactly one refresh, all 200", () =>
      scenario("4-parallel", {}, async ({ page, wire }) => {
        await sdk.signIn(page, "u1");
        await wire.clear();
        const delta = await refreshCounter(page);
        await sleep(EXPIRY_SLEEP_MS);

        const results = await sdk.callParallel(page, "/api/me", 8);

        assert.deepEqual(
          results.map((r) => r.status),
          Array(8).fill(200),
          JSON.stringify(results),
        );
        assert.deepEqual(await delta(), { attempts: 1, successes: 1 });
        assert.equal((await sdk.actions(page)).filter((a) => a === "REFRESH_SESSION").length, 1);
        await wire.settle();
        assert.equal(wire.refreshes().length, 1);
      }));

    test("5. 3 tabs x 4 calls with an expired token: one refresh attempt in all, 12 x 200", () =>
      scenario("5-tabs", {}, async ({ page, newPage }) => {
        // Open and initialize every tab first; they share cookies and localStorage (the SDK's
        // cross-tab lock lives there), so after the sign-in all three see the session.
        const tabs = [page, await newPage(), await newPage()];
        await sdk.signIn(page, "u1");
        const delta = await refreshCounter(page);
        await sleep(EXPIRY_SLEEP_MS);

        const results = (await Promise.all(tabs.map((tab) => sdk.callParallel(tab, "/api/me", 4)))).flat();

        assert.deepEqual(
          results.map((r) => r.status),
          Array(12).fill(200),
          JSON.stringify(results),
        );
        assert.deepEqual(await delta(), { attempts: 1, successes: 1 });
        const refreshEvents = (await Promise.all(tabs.map((tab) => sdk.actions(tab))))
          .flat()
          .filter((a) => a === "REFRESH_SESSION");
        assert.equal(refreshEvents.length, 1, "one tab refreshed, the others retried with its tokens");
      }));

    test("6. claim check: 403, API_INVALID_CLAIM, getInvalidClaimsFromResponse, no refresh", () =>
      scenario("6-claim", {}, async ({ page, stack }) => {
        const signIn = await sdk.signIn(page, "u1", ["viewer"]);
        assert.equal(signIn.status, 200);
        await sdk.clearEvents(page);
        const delta = await refreshCounter(page);

        const seen = await page.evaluate(async (apiDomain) => {
          const response = await window.fetch(apiDomain + "/api/admin");
          const claims = await supertokensSession.getInvalidClaimsFromResponse({ response });
          return { status: response.status, body: await response.json(), claims };
        }, stack.demoUrl);

        assert.equal(seen.status, 403);
        assert.deepEqual(seen.body, { message: "invalid claim", claimValidationErrors: NOT_ADMIN_ERRORS });
        assert.deepEqual(seen.claims, NOT_ADMIN_ERRORS);
        assert.deepEqual(await sdk.events(page), [{ action: "API_INVALID_CLAIM", claimValidationErrors: NOT_ADMIN_ERRORS }]);
        assert.deepEqual(await delta(), { attempts: 0, successes: 0 }, "a 403 never triggers a refresh");
        assert.equal(await sdk.doesSessionExist(page), true, "and it does not end the session");
      }));

    test("6b. claim check passes with the admin role", () =>
      scenario("6b-claim-ok", {}, async ({ page, wire }) => {
        await sdk.signIn(page, "u1", ["admin"]);
        const admin = await sdk.call(page, "/api/admin");
        assert.equal(admin.status, 200, JSON.stringify(admin));
        await wire.settle();
        const front = decodeFrontToken(wire.forPath("/dev/sign-in")[0].responseHeaders["front-token"]);
        assert.deepEqual(front.up["st-role"]?.v, ["admin"], "roles travel as the st-role claim {v, t}");
        assert.deepEqual(await sdk.actions(page), ["SESSION_CREATED"]);
      }));

    test("7. sign-out: cleared, SIGN_OUT, next call 401 without a refresh", () =>
      scenario("7-sign-out", {}, async ({ page, context, wire, stack }) => {
        await sdk.signIn(page, "u1");
        const accessTokenBefore = mode === "header" ? (await cookieMap(context))["st-access-token"]?.value : undefined;
        await sdk.clearEvents(page);
        await wire.clear();
        const delta = await refreshCounter(page);

        await sdk.signOut(page); // resolves to undefined; throws on errors
        assert.equal(await sdk.doesSessionExist(page), false);
        assert.deepEqual(await sdk.events(page), [{ action: "SIGN_OUT" }]);
        assert.deepEqual(await delta(), { attempts: 0, successes: 0 });

        await wire.settle();
        const [out, ...more] = wire.forPath("/auth/signout");
        assert.equal(more.length, 0);
        assert.equal(out.method, "POST");
        assert.equal(out.requestHeaders.rid, "session");
        assert.ok(out.requestHeaders["fdi-version"]);
        if (mode === "cookie") {
          assert.match(out.requestHeaders.cookie ?? "", /(^|; )sAccessToken=/);
        } else {
          assert.equal(out.requestHeaders.authorization, `Bearer ${accessTokenBefore}`);
        }
        assert.equal(out.status, 200);
        assert.deepEqual(out.body, { status: "OK" });
        assert.equal(out.responseHeaders["front-token"], "remove");
        if (mode === "cookie") {
          const set = setCookiesOf(out);
          const at = set.find((c) => c.name === "sAccessToken");
          const rt = set.find((c) => c.name === "sRefreshToken");
          assert.ok(at && isClearing(at) && at.attrs.path === "/", `sAccessToken cleared on Path=/: ${JSON.stringify(at)}`);
          assert.ok(
            rt && isClearing(rt) && rt.attrs.path === "/auth/session/refresh",
            `sRefreshToken cleared on its own path: ${JSON.stringify(rt)}`,
          );
        }
        // Only the SDK's "there was a session" marker survives.
        assert.deepEqual(Object.keys(await cookieMap(context, stack.demoUrl + REFRESH_PATH)), ["st-last-access-token-update"]);

        const me = await sdk.call(page, "/api/me");
        assert.equal(me.status, 401);
        assert.deepEqual(me.body, { message: "unauthorised" });
        assert.deepEqual(await delta(), { attempts: 0, successes: 0 }, "no refresh after sign-out");
        assert.deepEqual(await sdk.events(page), [
          { action: "SIGN_OUT" },
          { action: "UNAUTHORISED", sessionExpiredOrRevoked: false },
        ]);
      }));

    test("8. server-side revoke, then expiry: refresh 401, session gone, UNAUTHORISED", () =>
      scenario("8-revoke", {}, async ({ page, context, wire, stack }) => {
        await sdk.signIn(page, "u1");
        await sdk.clearEvents(page);
        await wire.clear();
        const delta = await refreshCounter(page);

        const revoked = await controls.revoke(page, "u1");
        assert.deepEqual(revoked, { status: 200, body: { revoked: 1 } });
        await sleep(EXPIRY_SLEEP_MS);
        const me = await sdk.call(page, "/api/me");

        // The caller gets the refresh call's 401 (the SDK hands it back instead of retrying).
        assert.equal(me.status, 401);
        assert.deepEqual(me.body, { message: "unauthorised" });
        assert.deepEqual(await delta(), { attempts: 1, successes: 0 });
        assert.equal(await sdk.doesSessionExist(page), false);
        assert.deepEqual(await sdk.events(page), [{ action: "UNAUTHORISED", sessionExpiredOrRevoked: true }]);

        await wire.settle();
        const [refresh] = wire.refreshes();
        assert.equal(refresh.status, 401);
        assert.deepEqual(refresh.body, { message: "unauthorised" });
        assert.equal(refresh.responseHeaders["front-token"], "remove");
        const left = await cookieMap(context, stack.demoUrl + REFRESH_PATH);
        for (const name of ["sAccessToken", "sRefreshToken", "sFrontToken", "st-access-token", "st-refresh-token"]) {
          assert.equal(left[name], undefined, `${name} is gone`);
        }
      }));

    test("9. theft: an old refresh token replayed after the grace window logs everyone out", () =>
      scenario("9-theft", { graceSecs: 1 }, async ({ page, context, stack }) => {
        await sdk.signIn(page, "u1");
        // The "stolen" copy: the refresh token as the browser holds it right now.
        const stolen = await currentRefreshToken(context, stack.demoUrl, mode);
        const delta = await refreshCounter(page);

        await sleep(EXPIRY_SLEEP_MS);
        const me = await sdk.call(page, "/api/me");
        assert.equal(me.status, 200);
        const refreshedAt = Date.now();
        assert.deepEqual(await delta(), { attempts: 1, successes: 1 });
        assert.notEqual(await currentRefreshToken(context, stack.demoUrl, mode), stolen, "the page rotated its token");

        await sleep(1500); // past the 1 s grace window
        const replay = await replayRefresh(stack.demoUrl, mode, stolen);
        assert.equal(replay.status, 401);
        assert.deepEqual(replay.body, { message: "token theft detected" });
        assert.equal(replay.headers.get("front-token"), "remove");
        if (mode === "cookie") {
          const rt = replay.setCookies.find((c) => c.name === "sRefreshToken");
          assert.ok(rt && isClearing(rt), "theft answer clears the refresh cookie");
        }

        // The victim: once its access token expires, its refresh fails: the session was revoked.
        await sleep(Math.max(0, refreshedAt + EXPIRY_SLEEP_MS - Date.now()));
        await sdk.clearEvents(page);
        const after = await sdk.call(page, "/api/me");
        assert.equal(after.status, 401);
        assert.equal(await sdk.doesSessionExist(page), false);
        assert.deepEqual(await sdk.events(page), [{ action: "UNAUTHORISED", sessionExpiredOrRevoked: true }]);
        const d = await delta();
        assert.equal(d.successes, 1, `no refresh succeeds after the theft (${JSON.stringify(d)})`);
      }));

    test("10. the same refresh re-sent within the grace window is no theft", () =>
      scenario("10-grace-replay", { graceSecs: 30 }, async ({ page, context, stack }) => {
        await sdk.signIn(page, "u1");
        const old = await currentRefreshToken(context, stack.demoUrl, mode);
        const delta = await refreshCounter(page);
        await sleep(EXPIRY_SLEEP_MS);
        assert.equal((await sdk.call(page, "/api/me")).status, 200);
        const pageToken = await currentRefreshToken(context, stack.demoUrl, mode);
        assert.notEqual(pageToken, old);

        // What a re-sent POST looks like to the server: the just-rotated token once more.
        const replay = await replayRefresh(stack.demoUrl, mode, old);
        assert.equal(replay.status, 200, JSON.stringify(replay.body));
        assert.deepEqual(replay.body, {});
        const front = replay.headers.get("front-token");
        assert.ok(front && front !== "remove", "a fresh token pair with its front token");
        assert.equal(decodeFrontToken(front).uid, "u1");
        const replayToken =
          mode === "cookie"
            ? replay.setCookies.find((c) => c.name === "sRefreshToken" && c.value !== "")?.value
            : replay.headers.get("st-refresh-token");
        assert.ok(replayToken, "the replay got a refresh token");
        assert.notEqual(replayToken, old);
        assert.notEqual(replayToken, pageToken);
        assert.deepEqual(await delta(), { attempts: 2, successes: 2 });

        // The page is untouched and stays signed in; its own (sibling) token still refreshes.
        assert.equal(await sdk.doesSessionExist(page), true);
        await sleep(EXPIRY_SLEEP_MS);
        const later = await sdk.call(page, "/api/me");
        assert.equal(later.status, 200);
        assert.deepEqual(await delta(), { attempts: 3, successes: 3 });
        assert.deepEqual(logoutEvents(await sdk.events(page)), []);
      }));

    test("10b. refresh committed but its answer lost (connection dropped): still signed in", (t) =>
      scenario("10b-dropped-refresh", { graceSecs: 30 }, async ({ page, wire }) => {
        await sdk.signIn(page, "u1");
        await sdk.clearEvents(page);
        await wire.clear();
        const delta = await refreshCounter(page);
        const armed = await controls.dropNextRefresh(page);
        assert.ok(armed.status >= 200 && armed.status < 300, `arming the fault switch: ${JSON.stringify(armed)}`);
        await sleep(EXPIRY_SLEEP_MS);

        // Chromium re-sends a POST by itself when a *reused* keep-alive connection closes before
        // any response byte; the re-sent request carries the old refresh token, which the grace
        // window accepts. On a fresh connection it does not: fetch rejects, the SDK reports
        // API_ERROR to the caller (it neither retries nor signs out), and the app's next call
        // refreshes again with the same old token, again within the grace window.
        const first = await sdk.call(page, "/api/me");
        let final = first;
        if (first.error) {
          t.diagnostic(`dropped refresh: Chromium did not re-send; the call failed with "${first.error}", retrying once`);
          final = await sdk.call(page, "/api/me");
        } else {
          t.diagnostic("dropped refresh: Chromium re-sent the POST by itself; the call succeeded");
          // The re-send happens inside Chromium's network stack: the page (and CDP) saw one refresh
          // request, answered 200, while the server received two POSTs with the same old token.
          await wire.settle();
          assert.deepEqual(wire.refreshes().map((e) => e.status), [200]);
          assert.equal((await delta()).attempts, 2, "the dropped POST and Chromium's re-send");
        }
        assert.equal(final.status, 200, JSON.stringify({ first, final }));
        const d = await delta();
        t.diagnostic(`refresh counters: ${JSON.stringify(d)}`);
        assert.ok(d.attempts >= 2, `the dropped refresh and its successor both reached the server (${JSON.stringify(d)})`);
        assert.ok(d.successes >= 1, JSON.stringify(d));
        assert.equal(await sdk.doesSessionExist(page), true);
        const events = await sdk.events(page);
        assert.deepEqual(logoutEvents(events), [], JSON.stringify(events));
        assert.ok(events.some((e) => e.action === "REFRESH_SESSION"), JSON.stringify(events));

        // And the lineage is intact: the next expiry refreshes normally.
        await sleep(EXPIRY_SLEEP_MS);
        const later = await sdk.call(page, "/api/me");
        assert.equal(later.status, 200, JSON.stringify(later));
        assert.deepEqual(logoutEvents(await sdk.events(page)), []);
      }));
  });
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
