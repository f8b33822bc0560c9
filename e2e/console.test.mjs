// The admin console in a real browser: the first operator is added from the CLI, signs in through the
// hosted login of the operator organization (email code, then a passkey on Chromium's virtual
// authenticator), walks every page, creates an organization, and signs out. A viewer is refused an admin
// action, and a post without the form token is refused. Every page passes axe-core with no serious or
// critical violation; the run writes the screenshots docs/console.md shows.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { EXPIRY_SLEEP_MS, REPO_ROOT, sleep, virtualAuthenticator, withBrowser, withStack } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const SCREENSHOTS = path.join(REPO_ROOT, "docs", "img");
const stackOptions = { label: "console", portcullisEnv: { PORTCULLIS_LOGIN__DEV_OUTBOX: "true" } };

async function latestCode(portcullisUrl) {
  const outbox = await (await fetch(`${portcullisUrl}/dev/outbox`)).json();
  return outbox.messages[0].body.match(/\b(\d{6,10})\b/)[1];
}

/** axe-core on the page as it is: no serious or critical violation. The script is evaluated through the
 *  DevTools protocol, so the console's CSP (no script at all) stays on. */
async function assertAccessible(page, name) {
  await page.evaluate(`${AXE_SOURCE}\n;0`);
  const results = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ["violations"] }));
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `${name}: accessibility violations`,
  );
}

/** Submits a form the page builds (form-action 'self' allows it; the CSP forbids the page's own scripts,
 *  not the test's DevTools evaluation) and waits for the answer page. */
async function postForm(page, action, fields) {
  await Promise.all([
    page.waitForNavigation(),
    page.evaluate(
      ({ action, fields }) => {
        const form = document.createElement("form");
        form.method = "post";
        form.action = action;
        for (const [name, value] of Object.entries(fields)) {
          const input = document.createElement("input");
          input.type = "hidden";
          input.name = name;
          input.value = value;
          form.append(input);
        }
        document.body.append(form);
        form.submit();
      },
      { action, fields },
    ),
  ]);
}

async function signInByCode(page, stack, email) {
  await page.goto(`${stack.portcullisUrl}/console/`);
  await page.waitForURL((url) => url.pathname.startsWith("/login/flow/"));
  assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Log in to Portcullis console");
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Send me a login code" }).click();
  await page.getByLabel("Login code").fill(await latestCode(stack.portcullisUrl));
  await page.getByRole("button", { name: "Log in" }).click();
}

test("the first operator signs in by email code, then by passkey, and uses every page", () =>
  withStack(stackOptions, (stack) =>
    withBrowser(async (browser) => {
      const added = await stack.cli("console", "operator", "add", "--email", "ops@example.com", "--role", "admin", "--json");
      assert.equal(added.role, "admin");
      // The operator organization's pages on `localhost` (a secure context over http, so passkeys work).
      await stack.cli("org", "configure", "portcullis-console", "--passkeys", "true", "--auth-domain", "localhost", "--json");

      const context = await browser.newContext();
      const page = await context.newPage();
      const violations = [];
      page.on("console", (message) => {
        if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
      });
      const { devtools, authenticatorId } = await virtualAuthenticator(context, page);

      await signInByCode(page, stack, "ops@example.com");
      await page.waitForURL((url) => url.pathname.endsWith("/passkeys"));
      await page.getByLabel("Name of the new passkey").fill("Operator laptop");
      await page.getByRole("button", { name: "Add a passkey" }).click();
      await page.waitForURL((url) => url.search === "?done=added");
      await page.getByRole("button", { name: "Continue to the application" }).click();
      await page.waitForURL(`${stack.portcullisUrl}/console/`);

      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Overview");
      assert.match(await page.locator("header").textContent(), /ops@example\.com\s+admin/);
      await assertAccessible(page, "overview");
      await page.screenshot({ path: path.join(SCREENSHOTS, "console-overview.png"), fullPage: true });

      await page.getByRole("link", { name: "Organizations" }).click();
      await page.getByLabel("New organization's name").fill("Acme");
      await page.getByRole("button", { name: "Create" }).click();
      await page.waitForURL((url) => /\/console\/organizations\/[0-9a-f-]{36}$/.test(url.pathname));
      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Acme");
      const organizationUrl = page.url();
      await page.getByLabel("enableUserCreation").selectOption("false");
      await page.getByLabel("whitelist").fill("https://app.example.com");
      await page.getByRole("button", { name: "Save settings" }).click();
      assert.equal(await page.getByRole("status").textContent(), "Saved.");
      assert.equal(await page.getByLabel("enableUserCreation").inputValue(), "false");
      await assertAccessible(page, "organization");
      await page.screenshot({ path: path.join(SCREENSHOTS, "console-organization.png"), fullPage: true });
      await page.getByRole("button", { name: "New API key" }).click();
      const apiKey = await page.locator("code.secret").textContent();
      assert.match(apiKey, /^pcak_/);
      const call = (key) =>
        fetch(`${stack.portcullisUrl}/api/v1/connectors/none/accounts/none/calls`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: "{}",
        });
      assert.equal((await call(`${apiKey}x`)).status, 401, "a wrong key is refused");
      assert.notEqual((await call(apiKey)).status, 401, "the API key shown once works");
      await page.goto(organizationUrl);
      assert.equal(await page.locator("code.secret").count(), 0, "shown only once");
      await page.getByRole("button", { name: /^Revoke API key / }).click();
      assert.match(await page.locator("main").textContent(), /revoked 20/);
      assert.equal((await call(apiKey)).status, 401, "a revoked key is refused at once");
      await page.getByRole("link", { name: "Connector accounts" }).click();
      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Connector accounts of Acme");
      await assertAccessible(page, "connector accounts");
      await page.goto(organizationUrl);
      await page.getByLabel("Find a user by email or id").fill("nobody@example.com");
      await page.getByRole("button", { name: "Find" }).click();
      assert.match(await page.getByRole("alert").textContent(), /No user of Acme/);
      await assertAccessible(page, "user search");
      await page.getByRole("link", { name: "Organizations" }).first().click();
      assert.equal(await page.getByRole("link", { name: "Acme" }).count(), 1);
      assert.equal(await page.getByRole("link", { name: "demo" }).count(), 1);
      await assertAccessible(page, "organizations");
      await page.screenshot({ path: path.join(SCREENSHOTS, "console-organizations.png"), fullPage: true });

      await page.getByRole("link", { name: "Operators" }).click();
      assert.match(await page.locator("tbody").textContent(), /ops@example\.com\s*admin/);
      await page.getByLabel("Email").fill("helper@example.com");
      await page.getByLabel("Role").selectOption("viewer");
      await page.getByRole("button", { name: "Save" }).click();
      assert.equal(await page.getByRole("status").textContent(), "helper@example.com is a console viewer.");
      await assertAccessible(page, "operators");

      await page.getByRole("link", { name: "Audit log" }).click();
      assert.match(await page.locator("tbody").textContent(), /organization\.create/);
      await assertAccessible(page, "audit log");
      await page.screenshot({ path: path.join(SCREENSHOTS, "console-audit.png"), fullPage: true });
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("link", { name: "Export as CSV" }).click(),
      ]);
      const csv = readFileSync(await download.path(), "utf8");
      assert.match(csv, /^id,created,organization,kind,subject,detail\n/);
      assert.match(csv, /organization\.create/);

      await page.getByRole("link", { name: "Error catalog" }).click();
      assert.ok(await page.locator("#noPermission").isVisible());
      await assertAccessible(page, "errors");

      // A post without the form token (what another site's form would send) is refused and creates nothing.
      await page.goto(`${stack.portcullisUrl}/console/organizations`);
      await postForm(page, "/console/organizations", { name: "Forged" });
      assert.match(await page.getByRole("alert").textContent(), /did not come from the console/);
      assert.equal(await page.getByRole("link", { name: "noPermission" }).count(), 1);
      await page.goto(`${stack.portcullisUrl}/console/organizations`);
      assert.equal(await page.getByRole("link", { name: "Forged" }).count(), 0);

      await page.getByRole("button", { name: "Sign out" }).click();
      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "You are signed out");

      // Signing in again uses the passkey: the login page's autofill request is answered by the
      // authenticator, with no email typed.
      const signCount = async () => (await devtools.send("WebAuthn.getCredentials", { authenticatorId })).credentials[0].signCount;
      const before = await signCount();
      await page.goto(`${stack.portcullisUrl}/console/`);
      await page.waitForURL(`${stack.portcullisUrl}/console/`);
      assert.equal(await signCount(), before + 1, "the sign-in used the passkey");
      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Overview");

      // The operator's own page in the operator organization: their login sessions and the passkey.
      await page.goto(`${stack.portcullisUrl}/console/organizations/portcullis-console/users?q=ops%40example.com`);
      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "ops@example.com");
      await page.getByLabel("New name of Operator laptop").fill("Work laptop");
      await page.getByRole("button", { name: "Rename" }).click();
      assert.equal(await page.getByRole("status").textContent(), "The passkey is renamed.");
      assert.equal(await page.getByLabel("New name of Work laptop").count(), 1);
      await assertAccessible(page, "user");
      await page.getByRole("button", { name: "Remove the passkey Work laptop" }).click();
      assert.equal(await page.getByRole("status").textContent(), "The passkey is removed.");
      assert.match(await page.locator("main").textContent(), /No passkey\./);
      assert.deepEqual(violations, [], "no CSP violation on any console page");
      await context.close();
    }),
  ));

test("a viewer reads every page but is refused an admin action", () =>
  withStack(stackOptions, (stack) =>
    withBrowser(async (browser) => {
      await stack.cli("console", "operator", "add", "--email", "viewer@example.com", "--role", "viewer", "--json");
      const context = await browser.newContext();
      const page = await context.newPage();
      await signInByCode(page, stack, "viewer@example.com");
      await page.waitForURL((url) => url.pathname.endsWith("/passkeys"));
      await page.getByRole("button", { name: "Continue to the application" }).click();
      await page.waitForURL(`${stack.portcullisUrl}/console/`);
      await page.getByRole("link", { name: "Organizations" }).click();
      assert.equal(await page.getByLabel("New organization's name").count(), 0, "no create form for a viewer");
      assert.equal(await page.getByRole("link", { name: "demo" }).count(), 1);

      // The form a viewer is not shown, posted from their page with their own valid form token.
      const token = await page.locator("input[name=form_token]").first().inputValue();
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "POST"),
        postForm(page, "/console/organizations", { name: "Nope", form_token: token }),
      ]);
      assert.equal(response.status(), 403);
      assert.match(await page.getByRole("alert").textContent(), /admin role/);
      await assertAccessible(page, "error page");
      await page.screenshot({ path: path.join(SCREENSHOTS, "console-refused.png"), fullPage: true });
      const organizations = await stack.cli("org", "list", "--json");
      assert.ok(!organizations.some((o) => o.name === "Nope"));
      await context.close();
    }),
  ));

test("an operator ends a signed-in person's sessions from the console, and the application signs them out", () =>
  withStack({ label: "console-revoke", login: true, portcullisEnv: { PORTCULLIS_LOGIN__DEV_OUTBOX: "true" } }, (stack) =>
    withBrowser(async (browser) => {
      await stack.cli("console", "operator", "add", "--email", "ops@example.com", "--role", "admin", "--json");

      // A person logs in to the demo application through the hosted login.
      const person = await (await browser.newContext()).newPage();
      await person.goto(`${stack.demoUrl}/`);
      await person.getByRole("link", { name: "Log in" }).click();
      await person.getByLabel("Email address").fill("person@example.com");
      await person.getByRole("button", { name: "Send me a login code" }).click();
      await person.getByLabel("Login code").fill(await latestCode(stack.portcullisUrl));
      await person.getByRole("button", { name: "Log in" }).click();
      await person.waitForURL(`${stack.demoUrl}/`);
      const me = () => person.evaluate(async () => (await fetch("/api/me")).status);
      assert.equal(await me(), 200);

      // The operator finds them and ends everything.
      const page = await (await browser.newContext()).newPage();
      await signInByCode(page, stack, "ops@example.com");
      await page.waitForURL((url) => url.pathname.endsWith("/passkeys"));
      await page.getByRole("button", { name: "Continue to the application" }).click();
      await page.waitForURL(`${stack.portcullisUrl}/console/`);
      await page.goto(`${stack.portcullisUrl}/console/organizations/${stack.orgId}/users?q=person%40example.com`);
      assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "person@example.com");
      assert.equal(await page.getByRole("button", { name: /^End the login session/ }).count(), 1);
      assert.equal(await page.getByRole("button", { name: /^Revoke session / }).count(), 1);
      await assertAccessible(page, "user with sessions");
      await page.screenshot({ path: path.join(SCREENSHOTS, "console-user.png"), fullPage: true });
      await page.getByRole("button", { name: "Revoke every session" }).click();
      assert.equal(await page.getByRole("status").textContent(), "Every session is revoked.");
      await page.getByRole("button", { name: "End every login session" }).click();
      assert.equal(await page.getByRole("status").textContent(), "Every login session is ended.");
      assert.match(await page.locator("main").textContent(), /No live login session\.[\s\S]*No live session\./);

      // Once the access token expires, the application's refresh is refused: the person is signed out.
      await sleep(EXPIRY_SLEEP_MS);
      assert.equal(await me(), 401);
    }),
  ));

/** A third-party API on loopback for the connector test: OAuth 2 authorize and token endpoints and one data
 *  endpoint that accepts only the current access token (`revoke()` makes the provider refuse it). */
async function fakeProvider() {
  let current = "";
  let issued = 0;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname === "/authorize") {
      const back = new URL(url.searchParams.get("redirect_uri"));
      back.searchParams.set("code", "the-code");
      back.searchParams.set("state", url.searchParams.get("state"));
      res.writeHead(302, { location: back.href }).end();
    } else if (url.pathname === "/oauth/token") {
      for await (const _ of req);
      issued += 1;
      current = `at-${issued}`;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: current, refresh_token: `rt-${issued}`, expires_in: 3600 }));
    } else if (url.pathname === "/data" && req.headers.authorization === `Bearer ${current}`) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ items: [1, 2] }));
    } else {
      res.writeHead(403).end("forbidden");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { base, revoke: () => void (current = "revoked"), close: () => server.close() };
}

test("an admin installs, authorizes and calls a connector account from the console, and sees the refresh it ran", async () => {
  const provider = await fakeProvider();
  const definitions = mkdtempSync(path.join(tmpdir(), "console-connectors-"));
  const b = provider.base;
  writeFileSync(
    path.join(definitions, "acme.yaml"),
    [
      "name: acme",
      `base_url: ${b}`,
      "auth:",
      "  type: oauth2",
      "  grant: authorization_code",
      `  authorize_url: ${b}/authorize`,
      `  token_url: ${b}/oauth/token`,
      "  client_id: cid",
      "  client_secret: '{{ClientSecret}}'",
      "  pkce: true",
      "properties:",
      "  - name: ClientSecret",
      "    sensitive: true",
      "    required: true",
      "script: |",
      "  function after_error() {",
      "      if (method_error != null && method_error.statusCode.toString() === '403') { throw new AuthRefreshException(); }",
      "      return true;",
      "  }",
      "methods:",
      "  list:",
      "    path: /data",
      "",
    ].join("\n"),
  );
  const portcullisEnv = {
    PORTCULLIS_LOGIN__DEV_OUTBOX: "true",
    PORTCULLIS_CONNECTORS__DIR: definitions,
    PORTCULLIS_CONNECTORS__EGRESS_ALLOW: '["127.0.0.1"]',
  };
  try {
    await withStack({ label: "console-connectors", portcullisEnv }, (stack) =>
      withBrowser(async (browser) => {
        await stack.cli("console", "operator", "add", "--email", "ops@example.com", "--role", "admin", "--json");
        const page = await (await browser.newContext()).newPage();
        await signInByCode(page, stack, "ops@example.com");
        await page.waitForURL((url) => url.pathname.endsWith("/passkeys"));
        await page.getByRole("button", { name: "Continue to the application" }).click();
        await page.goto(`${stack.portcullisUrl}/console/organizations/${stack.orgId}`);

        // A client secret, shown once; a second one is staged until it is activated.
        await page.getByRole("button", { name: "New client secret" }).click();
        assert.match(await page.locator("code.secret").textContent(), /^[A-Za-z0-9_-]{64}$/);
        assert.match(await page.locator(".shown").textContent(), /Active now\./);
        await page.getByRole("button", { name: "New client secret" }).click();
        assert.match(await page.locator(".shown").textContent(), /Staged: the current secret keeps working/);
        await page.getByRole("button", { name: "Activate the staged secret" }).click();
        assert.equal(await page.getByRole("status").textContent(), "Saved.");

        await page.getByRole("link", { name: "Connector accounts" }).click();
        await page.getByLabel("Connector", { exact: true }).selectOption("acme");
        await page.getByLabel("Account id (optional)").fill("crm");
        await page.getByLabel("Properties, one name=value per line").fill("ClientSecret=s3cret");
        await page.getByRole("button", { name: "Install" }).click();
        assert.match(await page.getByRole("heading", { level: 2 }).first().textContent(), /Account crm of acme installed\./);
        assert.doesNotMatch(await page.locator("main").textContent(), /s3cret/);

        await page.getByRole("button", { name: "Authorize crm" }).click();
        await page.getByRole("link", { name: "Continue to the provider" }).click();
        await page.waitForURL((url) => url.pathname === "/connectors/oauth2/callback");
        assert.match(await page.locator("body").textContent(), /Connected/);

        await page.goto(`${stack.portcullisUrl}/console/organizations/${stack.orgId}/connectors`);
        await page.getByLabel("Method", { exact: true }).fill("list");
        await page.getByRole("button", { name: "Call" }).click();
        assert.match(await page.getByRole("heading", { level: 2 }).first().textContent(), /list on crm: success \(upstream status 200\)\./);
        provider.revoke();
        await page.getByLabel("Method", { exact: true }).fill("list");
        await page.getByRole("button", { name: "Call" }).click();
        assert.match(
          await page.locator("ol.steps").textContent(),
          /The API refused the credentials \(AuthRefreshException\): refreshed the token, and sent the request again\./,
        );
        await assertAccessible(page, "connector call");
        await page.screenshot({ path: path.join(SCREENSHOTS, "console-connectors.png"), fullPage: true });

        await page.getByRole("button", { name: "Test crm" }).click();
        assert.match(await page.locator("main").textContent(), /connectorInvalid|Test of crm/);
      }),
    );
  } finally {
    provider.close();
    rmSync(definitions, { recursive: true, force: true });
  }
});
