// The standard OAuth 2.1 / OpenID Connect face, driven by openid-client (npm) as any relying party would
// use it: discovery, authorization code + PKCE + nonce, ID-token validation against the JWKS, userinfo,
// refresh-token rotation, and the refusal of a replayed refresh token.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as oidc from "openid-client";
import { withStack } from "./harness.mjs";

const REDIRECT = "https://app.example.com/oidc/callback";

async function withOidcStack(fn) {
  const options = { label: "oidc", graceSecs: 0, portcullisEnv: { PORTCULLIS_LOGIN__DEV_OUTBOX: "true" } };
  await withStack(options, async (stack) => {
    await stack.cli("org", "configure", stack.orgId, "--whitelist", "https://app.example.com", "--redirect-uri", REDIRECT, "--json");
    const { secret } = await stack.cli("org", "secret", "create", stack.orgId, "--json");
    const config = await oidc.discovery(
      new URL(stack.portcullisUrl),
      stack.orgId,
      undefined,
      oidc.ClientSecretBasic(secret),
      { execute: [oidc.allowInsecureRequests] },
    );
    await fn({ ...stack, secret, config });
  });
}

/** The person on the hosted pages: email, code from the dev outbox. Returns the callback URL. */
async function logIn(stack, authorizationUrl, email) {
  const started = await fetch(authorizationUrl, { redirect: "manual" });
  assert.equal(started.status, 303, await started.text());
  const page = new URL(started.headers.get("location"), stack.portcullisUrl);
  const cookie = started.headers.get("set-cookie").split(";")[0];
  const base = `${page.origin}${page.pathname}`;
  const post = (fields) => ({ method: "POST", redirect: "manual", headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields) });
  assert.equal((await fetch(`${base}/email`, post({ email }))).status, 303);
  const outbox = await (await fetch(`${stack.portcullisUrl}/dev/outbox`)).json();
  const code = outbox.messages[0].body.match(/\b(\d{6,10})\b/)[1];
  const done = await fetch(`${base}/code`, post({ code }));
  assert.equal(done.status, 303);
  return new URL(done.headers.get("location"));
}

test("openid-client: discovery, code + PKCE, ID token, userinfo, refresh rotation, replay refused", () =>
  withOidcStack(async ({ config, ...stack }) => {
    const metadata = config.serverMetadata();
    assert.equal(metadata.issuer, stack.portcullisUrl);
    assert.deepEqual(metadata.code_challenge_methods_supported, ["S256"]);

    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: "openid email offline_access",
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
    });
    const callback = await logIn(stack, url, "olivia@example.com");

    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const claims = tokens.claims();
    assert.equal(claims.iss, stack.portcullisUrl);
    assert.equal(claims.aud, stack.orgId);
    assert.equal(claims.email, "olivia@example.com");
    assert.equal(claims.nonce, nonce);
    assert.equal(tokens.token_type.toLowerCase(), "bearer");

    const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.email, "olivia@example.com");
    assert.equal(info.email_verified, true);

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, "refresh tokens rotate");
    assert.equal(refreshed.claims().sub, claims.sub);

    // This stack rotates strictly (grace 0): replaying the rotated-out token is theft. It is refused, and
    // the whole family is revoked, so the newest token stops working too.
    await assert.rejects(oidc.refreshTokenGrant(config, tokens.refresh_token), (error) => error.error === "invalid_grant");
    await assert.rejects(oidc.refreshTokenGrant(config, refreshed.refresh_token), (error) => error.error === "invalid_grant");
    await assert.rejects(oidc.refreshTokenGrant(config, "v1.forged.token"), (error) => error.error === "invalid_grant");
  }));

test("openid-client: a wrong verifier and a replayed code are invalid_grant", () =>
  withOidcStack(async ({ config, ...stack }) => {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: "openid",
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
    });
    const callback = await logIn(stack, url, "mallory@example.com");
    await assert.rejects(
      oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: state }),
      (error) => error.error === "invalid_grant",
    );
    await assert.rejects(
      oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }),
      (error) => error.error === "invalid_grant",
      "the first try spent the code",
    );
  }));
