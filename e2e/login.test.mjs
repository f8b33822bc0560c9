// The hosted login in a real browser: the demo app sends the person to Portcullis's login page, the
// email code comes from the dev outbox, the callback creates a Portcullis session, and the demo app's
// protected API answers. And the seed's error pattern: a failing flow lands back on the login page with
// the message shown. And passkeys, with Chromium's virtual authenticator.

import { test } from "node:test";
import assert from "node:assert/strict";
import { virtualAuthenticator, withBrowser, withStack } from "./harness.mjs";

const stackOptions = { label: "hosted-login", login: true, portcullisEnv: { PORTCULLIS_LOGIN__DEV_OUTBOX: "true" } };

async function latestCode(portcullisUrl) {
  const outbox = await (await fetch(`${portcullisUrl}/dev/outbox`)).json();
  return outbox.messages[0].body.match(/\b(\d{6,10})\b/)[1];
}

test("demo app → hosted login → email code → callback → signed in", () =>
  withStack(stackOptions, (stack) =>
    withBrowser(async (browser) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${stack.demoUrl}/`);
      await page.getByRole("link", { name: "Log in" }).click();

      await page.waitForURL((url) => url.href.startsWith(`${stack.portcullisUrl}/login/flow/`));
      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Log in to demo");
      await page.getByLabel("Email address").fill("browser@example.com");
      await page.getByRole("button", { name: "Send me a login code" }).click();
      await page.getByLabel("Login code").waitFor();
      assert.match(await page.getByRole("status").textContent(), /browser@example\.com/);

      await page.getByLabel("Login code").fill(await latestCode(stack.portcullisUrl));
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL(`${stack.demoUrl}/`);

      const me = await page.evaluate(async () => {
        const response = await fetch("/api/me");
        return { status: response.status, body: await response.json() };
      });
      assert.equal(me.status, 200);
      assert.equal(typeof me.body.userId, "string");
      const user = await page.evaluate(async () => (await fetch("/api/auth/user")).json());
      assert.equal(user.email, "browser@example.com");
      const cookies = await context.cookies(stack.demoUrl);
      assert.ok(cookies.some((c) => c.name === "sAccessToken" && c.httpOnly), "signed in with a session cookie");
      await context.close();
    }),
  ));

test("a failing flow lands back on the login page with the error message", () =>
  withStack(stackOptions, (stack) =>
    withBrowser(async (browser) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${stack.demoUrl}/api/auth/login`);
      await page.waitForURL((url) => url.href.startsWith(`${stack.portcullisUrl}/login/flow/`));
      await page.getByLabel("Email address").fill("lost@example.com");
      await page.getByRole("button", { name: "Send me a login code" }).click();
      await page.getByLabel("Login code").waitFor();

      // The login's state cookie is lost (another browser profile, a cleared cookie jar): the callback
      // fails, and the demo app's login route shows why on a fresh hosted page.
      await context.clearCookies({ name: "pc_login_state" });
      await page.getByLabel("Login code").fill(await latestCode(stack.portcullisUrl));
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL((url) => url.href.startsWith(`${stack.portcullisUrl}/login/flow/`));
      assert.match(await page.getByRole("alert").textContent(), /does not belong to this browser/);
      const me = await page.evaluate(async (demo) => (await fetch(`${demo}/api/me`, { credentials: "include" })).status, stack.demoUrl).catch(() => 401);
      assert.notEqual(me, 200, "no session was created");
      await context.close();
    }),
  ));

test("challenge login: the page shows a number, a click on it in the mail (another device) signs the page in", () =>
  withStack(stackOptions, (stack) =>
    withBrowser(async (browser) => {
      await stack.cli("org", "configure", stack.orgId, "--login-attempt-type", "challenge", "--json");
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${stack.demoUrl}/api/auth/login`);
      await page.waitForURL((url) => url.href.startsWith(`${stack.portcullisUrl}/login/flow/`));
      await page.getByLabel("Email address").fill("challenge@example.com");
      await page.getByRole("button", { name: "Send me a login code" }).click();
      await page.waitForURL((url) => url.pathname.endsWith("/wait"));
      const number = (await page.getByLabel("Number to click in the email").textContent()).trim();
      assert.match(number, /^\d{2}$/);

      // The mail, opened on another device: three numbers; the right one asks for a click first.
      const outbox = await (await fetch(`${stack.portcullisUrl}/dev/outbox`)).json();
      const links = outbox.messages[0].body.match(/https?:\/\/\S+\?pick=\d+/g);
      assert.equal(links.length, 3);
      const right = links.find((link) => link.endsWith(`?pick=${number}`));
      const phone = await browser.newContext();
      const mail = await phone.newPage();
      await mail.goto(right);
      await mail.getByRole("button", { name: "Yes, approve the login" }).click();
      await mail.getByRole("heading", { name: "Login approved" }).waitFor();

      // The waiting page reloads by itself and lands in the demo app, signed in.
      await page.waitForURL(`${stack.demoUrl}/`, { timeout: 15_000 });
      const me = await page.evaluate(async () => (await fetch("/api/me")).status);
      assert.equal(me, 200);
      const phoneCookies = await phone.cookies(stack.demoUrl);
      assert.ok(!phoneCookies.some((c) => c.name === "sAccessToken"), "the device that clicked is not signed in");
      await phone.close();
      await context.close();
    }),
  ));

test("captcha: past its allowance, the page's script solves the proof of work in Chromium and the login goes on", () =>
  withStack(
    { ...stackOptions, portcullisEnv: { ...stackOptions.portcullisEnv, PORTCULLIS_LOGIN__CAPTCHA_IP_ALLOWANCE: "1" } },
    (stack) =>
      withBrowser(async (browser) => {
        const context = await browser.newContext();
        const page = await context.newPage();
        for (const [email, captcha] of [["first@example.com", false], ["second@example.com", true]]) {
          await page.goto(`${stack.demoUrl}/api/auth/login`);
          await page.waitForURL((url) => url.href.startsWith(`${stack.portcullisUrl}/login/flow/`));
          const form = page.locator("form[data-challenge]");
          assert.equal(await form.count(), captcha ? 1 : 0, `${email}: captcha ${captcha}`);
          if (captcha) {
            await page.getByText("Browser check done.").waitFor({ timeout: 30_000 });
            const solved = JSON.parse(await page.locator("input[name=captcha]").inputValue());
            assert.equal(typeof solved.solution.counter, "number");
          }
          await page.getByLabel("Email address").fill(email);
          await page.getByRole("button", { name: "Send me a login code" }).click();
          await page.getByLabel("Login code").waitFor();
          await page.getByLabel("Login code").fill(await latestCode(stack.portcullisUrl));
          await page.getByRole("button", { name: "Log in" }).click();
          await page.waitForURL(`${stack.demoUrl}/`);
        }
        const user = await page.evaluate(async () => (await fetch("/api/auth/user")).json());
        assert.equal(user.email, "second@example.com");
        await context.close();
      }),
  ));

const ADMIN_TOKEN = "e2e-admin-token-for-the-audit-log-0123456789";

test("lockout: a third party's wrong code locks the account; the owner, on another network, is not delayed and the page solves the highest captcha", () =>
  withStack(
    {
      ...stackOptions,
      portcullisEnv: {
        ...stackOptions.portcullisEnv,
        PORTCULLIS_LOGIN__MAX_CODE_FAILURES: "1",
        PORTCULLIS_SERVER__TRUSTED_PROXIES: '["127.0.0.1"]',
        PORTCULLIS_ADMIN__TOKEN: ADMIN_TOKEN,
      },
    },
    (stack) =>
      withBrowser(async (browser) => {
        const email = "owner@example.com";
        // The third party, on its own network, asks for a code for the owner's address and guesses wrong.
        const third = await browser.newContext({ extraHTTPHeaders: { "x-forwarded-for": "198.51.100.7" } });
        const guesser = await third.newPage();
        await guesser.goto(`${stack.demoUrl}/api/auth/login`);
        await guesser.waitForURL((url) => url.href.startsWith(`${stack.portcullisUrl}/login/flow/`));
        await guesser.getByLabel("Email address").fill(email);
        await guesser.getByRole("button", { name: "Send me a login code" }).click();
        const field = guesser.getByLabel("Login code");
        assert.equal(await field.getAttribute("pattern"), "[0-9]{6}");
        assert.equal(await field.getAttribute("autocomplete"), "one-time-code");
        const code = await latestCode(stack.portcullisUrl);
        await field.fill(code.replace(/\d/g, (d) => (d === "0" ? "1" : "0")));
        await guesser.getByRole("button", { name: "Log in" }).click();
        await guesser.getByText("Too many wrong codes").waitFor();
        await third.close();

        // The owner, on another network, at once: no wait, the page solves the highest-level check by
        // itself and sends the form again, and the owner logs in.
        const own = await browser.newContext({ extraHTTPHeaders: { "x-forwarded-for": "203.0.113.9" } });
        const page = await own.newPage();
        await page.goto(`${stack.demoUrl}/api/auth/login`);
        await page.waitForURL((url) => url.href.startsWith(`${stack.portcullisUrl}/login/flow/`));
        await page.getByLabel("Email address").fill(email);
        // The answer asks for the captcha; the page solves it and sends the form again by itself. The challenge
        // is read from that second post, since the page it was on may already be gone.
        const captchaOf = (request) => new URLSearchParams(request.postData() ?? "").get("captcha");
        const resent = page.waitForRequest(
          (r) => r.method() === "POST" && r.url().endsWith("/email") && Boolean(captchaOf(r)),
          { timeout: 60_000 },
        );
        const [answer] = await Promise.all([
          page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/email")),
          page.getByRole("button", { name: "Send me a login code" }).click(),
        ]);
        assert.equal(answer.status(), 400, "the first post lacks the captcha");
        const { challenge } = JSON.parse(captchaOf(await resent));
        assert.equal(challenge.parameters.data.level, 3, "locked out: the highest level");
        await page.getByLabel("Login code").waitFor({ timeout: 60_000 });
        const fresh = await latestCode(stack.portcullisUrl);
        assert.notEqual(fresh, code);
        await page.getByLabel("Login code").fill(fresh);
        await page.getByRole("button", { name: "Log in" }).click();
        await page.waitForURL(`${stack.demoUrl}/`);
        const user = await page.evaluate(async () => (await fetch("/api/auth/user")).json());
        assert.equal(user.email, email);

        const audit = await (
          await fetch(`${stack.portcullisUrl}/admin/v1/organizations/${stack.orgId}/audit?kind=login.lockedOut`, {
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          })
        ).json();
        assert.equal(audit.events?.length, 1, JSON.stringify(audit));
        assert.equal(audit.events[0].subject, email);
        await own.close();
      }),
  ));

test("passkey: added on the hosted page after an email code (Chromium's virtual authenticator), then autofill and the button log in to the demo app", () =>
  withStack(stackOptions, (stack) =>
    withBrowser(async (browser) => {
      // The organization's login pages live on its auth domain, `localhost` (a secure context over http).
      await stack.cli("org", "configure", stack.orgId, "--passkeys", "true", "--auth-domain", "localhost", "--json");
      const authOrigin = stack.portcullisUrl.replace("127.0.0.1", "localhost");
      const context = await browser.newContext();
      const page = await context.newPage();
      const { devtools, authenticatorId } = await virtualAuthenticator(context, page);

      await page.goto(`${stack.demoUrl}/api/auth/login`);
      await page.waitForURL((url) => url.href.startsWith(`${authOrigin}/login/flow/`));
      await page.getByLabel("Email address").fill("passkey@example.com");
      await page.getByRole("button", { name: "Send me a login code" }).click();
      await page.getByLabel("Login code").fill(await latestCode(stack.portcullisUrl));
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL((url) => url.pathname.endsWith("/passkeys"));
      assert.match(await page.locator("main").textContent(), /You have no passkeys yet/);

      await page.getByLabel("Name of the new passkey").fill("Chromium");
      await page.getByRole("button", { name: "Add a passkey" }).click();
      await page.waitForURL((url) => url.search === "?done=added");
      assert.match(await page.getByRole("status").first().textContent(), /Passkey added/);
      const { credentials } = await devtools.send("WebAuthn.getCredentials", { authenticatorId });
      assert.equal(credentials.length, 1, "the authenticator holds the new passkey");
      assert.ok(credentials[0].isResidentCredential, "a discoverable credential");
      assert.equal(credentials[0].rpId, "localhost");
      await page.getByRole("button", { name: "Continue to the application" }).click();
      await page.waitForURL(`${stack.demoUrl}/`);
      assert.equal(await page.evaluate(async () => (await fetch("/api/me")).status), 200);

      const signOut = async () => {
        const status = await page.evaluate(async () => (await fetch("/auth/signout", { method: "POST", headers: { rid: "session" } })).status);
        assert.equal(status, 200);
        assert.equal(await page.evaluate(async () => (await fetch("/api/me")).status), 401);
      };
      const signedInAs = async (email) => {
        assert.equal(await page.evaluate(async () => (await fetch("/api/me")).status), 200);
        const user = await page.evaluate(async () => (await fetch("/api/auth/user")).json());
        assert.equal(user.email, email);
      };
      const signCount = async () => (await devtools.send("WebAuthn.getCredentials", { authenticatorId })).credentials[0].signCount;

      // Autofill: the login page's conditional request is answered by the authenticator (which simulates
      // the person's choice), with no email typed and no button pressed.
      await signOut();
      const before = await signCount();
      await page.goto(`${stack.demoUrl}/api/auth/login`);
      await page.waitForURL(`${stack.demoUrl}/`);
      await signedInAs("passkey@example.com");
      assert.equal(await signCount(), before + 1, "the login used the passkey");

      // The button, username first, as in a browser without autofill.
      await signOut();
      await page.addInitScript(() => {
        PublicKeyCredential.isConditionalMediationAvailable = async () => false;
      });
      await page.goto(`${stack.demoUrl}/api/auth/login`);
      await page.waitForURL((url) => url.href.startsWith(`${authOrigin}/login/flow/`));
      await page.getByLabel("Email address").fill("passkey@example.com");
      await page.getByRole("button", { name: "Log in with a passkey" }).click();
      await page.waitForURL(`${stack.demoUrl}/`);
      await signedInAs("passkey@example.com");
      assert.equal(await signCount(), before + 2);
      await context.close();
    }),
  ));
