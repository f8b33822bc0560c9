// The CentralAuth-compatible face, driven exactly as CentralAuth's npm library (`centralauth`, whose
// package is not in the registry here) does it, with the real `jose` library decrypting the tokens:
//   login:    /login?redirect_uri=<callback?return_to=…>&client_id&response_type=code&state=<UUID>
//             &code_challenge=<S256 of a UUID verifier>&code_challenge_method=S256
//   callback: POST /api/v1/verify, HTTP Basic, multipart {code, redirect_uri: bare callback, code_verifier},
//             no grant_type; then jose.jwtDecrypt(token, UTF-8(secret))
//   user:     POST /api/v1/userinfo?domain=<callback origin>, Basic, raw token body, user-agent, auth-ip
// and the seed's quick-example route logic: a failed callback redirects to
// /api/auth/login?error_message=<message>, which shows the message on the hosted login page.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { jwtDecrypt } from "jose";
import { withStack } from "./harness.mjs";

const CALLBACK = "https://app.example.com/api/auth/callback";

const basic = (id, secret) => "Basic " + Buffer.from(`${id}:${secret}`).toString("base64");
const s256 = (verifier) => createHash("sha256").update(verifier).digest("base64url");

async function withLoginStack(fn) {
  await withStack({ label: "centralauth", portcullisEnv: { PORTCULLIS_LOGIN__DEV_OUTBOX: "true" } }, async (stack) => {
    await stack.cli("org", "configure", stack.orgId, "--whitelist", "https://app.example.com", "--json");
    const { secret } = await stack.cli("org", "secret", "create", stack.orgId, "--json");
    await fn({ ...stack, secret });
  });
}

/** Starts a login like the npm library's `login()`; returns the flow page, its cookie and the verifier. */
async function startLogin(stack, { errorDescription, translations } = {}) {
  const verifier = randomUUID();
  const state = randomUUID();
  const url = new URL("/login", stack.portcullisUrl);
  url.searchParams.set("redirect_uri", `${CALLBACK}?return_to=${encodeURIComponent("https://app.example.com/dashboard")}`);
  url.searchParams.set("client_id", stack.orgId);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", s256(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  if (errorDescription) url.searchParams.set("error_description", errorDescription);
  // The library's encoding: Buffer.from(JSON.stringify(translations)).toString("base64").
  if (translations) url.searchParams.set("translations", Buffer.from(JSON.stringify(translations)).toString("base64"));
  const started = await fetch(url, { redirect: "manual" });
  assert.equal(started.status, 303);
  const page = new URL(started.headers.get("location"), stack.portcullisUrl);
  const cookie = started.headers.get("set-cookie").split(";")[0];
  return { page, cookie, verifier, state };
}

/** The person: types the email, reads the code from the dev outbox, types it. Returns the callback URL. */
async function logIn(stack, flow, email) {
  const base = `${flow.page.origin}${flow.page.pathname}`;
  const form = (fields) => ({ method: "POST", redirect: "manual", headers: { cookie: flow.cookie, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields) });
  assert.equal((await fetch(`${base}/email`, form({ email }))).status, 303);
  const outbox = await (await fetch(`${stack.portcullisUrl}/dev/outbox`)).json();
  const code = outbox.messages[0].body.match(/\b(\d{6,10})\b/)[1];
  const done = await fetch(`${base}/code`, form({ code }));
  assert.equal(done.status, 303);
  return new URL(done.headers.get("location"));
}

/** The npm library's `callback()` token request. */
async function verify(stack, code, verifier) {
  const body = new FormData();
  body.set("code", code);
  body.set("redirect_uri", CALLBACK);
  body.set("code_verifier", verifier);
  return fetch(`${stack.portcullisUrl}/api/v1/verify`, { method: "POST", headers: { Authorization: basic(stack.orgId, stack.secret) }, body });
}

test("the npm library's requests log a user in; jose decrypts the tokens locally", () =>
  withLoginStack(async (stack) => {
    const flow = await startLogin(stack);
    const callback = await logIn(stack, flow, "grace@example.com");
    assert.equal(`${callback.origin}${callback.pathname}`, CALLBACK);
    assert.equal(callback.searchParams.get("state"), flow.state);
    assert.equal(callback.searchParams.get("return_to"), "https://app.example.com/dashboard");
    assert.equal(callback.searchParams.get("iss"), stack.portcullisUrl);

    const response = await verify(stack, callback.searchParams.get("code"), flow.verifier);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "no-store");
    const tokens = await response.json();
    assert.equal(tokens.token_type, "Bearer");

    const key = new TextEncoder().encode(stack.secret);
    const { payload: access, protectedHeader } = await jwtDecrypt(tokens.access_token, key);
    assert.deepEqual(protectedHeader, { alg: "dir", enc: "A256CBC-HS512" });
    assert.equal(typeof access.sessionId, "string");
    const { payload: id } = await jwtDecrypt(tokens.id_token, key);
    assert.equal(id.sessionId, access.sessionId);
    assert.equal(id.user.email, "grace@example.com");
    await assert.rejects(jwtDecrypt(tokens.access_token, new TextEncoder().encode("x".repeat(64))), { code: "ERR_JWE_DECRYPTION_FAILED" });

    // user(): userinfo with the origin of the callback, the raw token, and the RP's view of the client.
    const userinfo = await fetch(`${stack.portcullisUrl}/api/v1/userinfo?domain=${encodeURIComponent(new URL(CALLBACK).origin)}`, {
      method: "POST",
      headers: { Authorization: basic(stack.orgId, stack.secret), "Content-Type": "text/plain", "user-agent": "Mozilla/5.0 (X11)", "auth-ip": "203.0.113.9" },
      body: tokens.access_token,
    });
    assert.equal(userinfo.status, 200);
    const user = await userinfo.json();
    assert.equal(user.email, "grace@example.com");
    assert.equal(user.organizationId, stack.orgId);

    // Every failure is JSON with errorCode and message (the library calls .json() on every error).
    const replay = await verify(stack, callback.searchParams.get("code"), flow.verifier);
    assert.equal(replay.status, 400);
    const error = await replay.json();
    assert.equal(error.errorCode, "tokenInvalid");
    assert.equal(error.error, "invalid_grant");
    assert.equal(typeof error.message, "string");
  }));

/** The seed's quick-example route logic: callback errors redirect to login with error_message. */
function seedRoute(stack) {
  return async (action, requestUrl) => {
    const searchParams = new URL(requestUrl).searchParams;
    try {
      if (action === "callback") {
        const error = searchParams.get("error");
        if (error) throw { errorCode: error, message: searchParams.get("error_description") };
        return { status: 200 };
      }
      if (action === "login") {
        // login() forwards the message to the hosted page as error_description.
        const flow = await startLogin(stack, { errorDescription: searchParams.get("error_message") ?? undefined });
        return { status: 302, location: flow.page, cookie: flow.cookie };
      }
    } catch (error) {
      if (action === "callback") return { status: 302, location: `/api/auth/login?error_message=${error.message}` };
    }
    return { status: 404 };
  };
}

/** The app's side of a failed flow: the seed's catch sends the browser back to the login page, which shows the message. */
async function loginPageAfter(stack, callbackUrl) {
  const route = seedRoute(stack);
  const afterCallback = await route("callback", callbackUrl);
  assert.equal(afterCallback.status, 302);
  assert.match(afterCallback.location, /^\/api\/auth\/login\?error_message=/);
  // The browser follows the relative redirect, so the message arrives URL-decoded as the seed wrote it.
  const login = await route("login", `https://app.example.com${afterCallback.location}`);
  const page = await fetch(login.location, { headers: { cookie: login.cookie } });
  assert.equal(page.status, 200);
  return page.text();
}

test("the seed's quick-example: a failed callback returns to the login page with the message shown", () =>
  withLoginStack(async (stack) => {
    // A flow error reaches the callback in CentralAuth's format A: ?error=<errorCode>&error_description=…
    const noState = new URL("/login", stack.portcullisUrl);
    noState.searchParams.set("client_id", stack.orgId);
    noState.searchParams.set("redirect_uri", CALLBACK);
    noState.searchParams.set("code_challenge", s256(randomUUID()));
    noState.searchParams.set("code_challenge_method", "S256");
    const failed = await fetch(noState, { redirect: "manual" });
    assert.equal(failed.status, 302);
    const callbackUrl = new URL(failed.headers.get("location"));
    assert.equal(callbackUrl.searchParams.get("error"), "stateMissing");
    assert.match(await loginPageAfter(stack, callbackUrl), /role="alert">The OAuth state is missing\.</);
  }));

/** A failure inside the flow: a 303 to the callback, with the flow's state and the catalog code. */
function flowFailure(response, flow, code) {
  assert.equal(response.status, 303);
  const url = new URL(response.headers.get("location"));
  assert.equal(`${url.origin}${url.pathname}`, CALLBACK);
  assert.equal(url.searchParams.get("error"), code);
  assert.equal(url.searchParams.get("state"), flow.state);
  assert.equal(url.searchParams.get("return_to"), "https://app.example.com/dashboard");
  return url;
}

test("failures inside the flow reach the callback, and the seed's catch shows them on the login page", () =>
  withLoginStack(async (stack) => {
    const post = (flow, step, fields) =>
      fetch(`${flow.page.origin}${flow.page.pathname}/${step}`, {
        method: "POST", redirect: "manual",
        headers: { cookie: flow.cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields),
      });

    // Five wrong codes: the first four stay on the page, the fifth ends the flow.
    const guessed = await startLogin(stack);
    assert.equal((await post(guessed, "email", { email: "guess@example.com" })).status, 303);
    for (let left = 4; left >= 1; left--) {
      const wrong = await post(guessed, "code", { code: "000000" });
      assert.equal(wrong.status, 400);
      assert.match(await wrong.text(), new RegExp(`${left} tries left`));
    }
    const voided = flowFailure(await post(guessed, "code", { code: "000000" }), guessed, "loginAttemptInvalid");
    assert.match(await loginPageAfter(stack, voided), /role="alert">Too many wrong codes\. Please request a new code\.</);

    // A code step before any email: no attempt.
    const early = await startLogin(stack);
    flowFailure(await post(early, "code", { code: "123456" }), early, "loginAttemptMissing");

    // An undo from the mail ends the waiting browser's flow.
    await stack.cli("org", "configure", stack.orgId, "--login-attempt-type", "link", "--login-method", "remote", "--json");
    const undone = await startLogin(stack);
    const sent = await post(undone, "email", { email: "undo@example.com" });
    assert.equal(sent.status, 303);
    const outbox = await (await fetch(`${stack.portcullisUrl}/dev/outbox`)).json();
    const undo = outbox.messages[0].body.split(/\s+/).find((word) => word.includes("/login/undo/"));
    assert.equal((await fetch(undo, { method: "POST" })).status, 200);
    const waiting = await fetch(new URL(sent.headers.get("location"), stack.portcullisUrl), { redirect: "manual", headers: { cookie: undone.cookie } });
    const url = flowFailure(waiting, undone, "loginAttemptInvalid");
    assert.match(await loginPageAfter(stack, url), /role="alert">This login was undone from the email\. Please start again\.</);
  }));

test("CentralAuth's translation keys set the hosted page's texts; unknown keys are ignored", () =>
  withLoginStack(async (stack) => {
    const flow = await startLogin(stack, {
      translations: { loginPageIntro: "Welkom bij Acme", emailAddress: "E-mailadres", loginPageCaptchaPuzzleText: "unused" },
    });
    const page = await fetch(flow.page, { headers: { cookie: flow.cookie } });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /Welkom bij Acme/);
    assert.match(html, /E-mailadres/);
    assert.doesNotMatch(html, /unused/);
    assert.doesNotMatch(html, /Email address/);
  }));
