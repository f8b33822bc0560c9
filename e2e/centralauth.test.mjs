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
async function startLogin(stack, { errorDescription } = {}) {
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

test("the seed's quick-example: a failed callback returns to the login page with the message shown", () =>
  withLoginStack(async (stack) => {
    // The route logic of the seed: callback errors redirect to login with error_message.
    const route = async (action, requestUrl) => {
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

    const afterCallback = await route("callback", callbackUrl);
    assert.equal(afterCallback.status, 302);
    assert.match(afterCallback.location, /^\/api\/auth\/login\?error_message=/);
    const login = await route("login", `https://app.example.com${afterCallback.location}`);
    const page = await fetch(login.location, { headers: { cookie: login.cookie } });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /role="alert">The OAuth state is missing\.</);
  }));
