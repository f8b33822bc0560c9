// Test harness for the browser end-to-end suite.
//
// It starts a Portcullis server and the demo app (each in a fresh temporary directory, each on a
// free port), creates the organization and API key the demo app needs, launches Debian's Chromium
// through playwright-core, loads SuperTokens' real browser bundles (supertokens-web-js 0.16.0) into
// a page served by the demo app, and offers small helpers that run SDK calls inside that page.
//
// Every child process is registered and killed when its stack stops, when a test fails, and when
// the Node process exits for any reason.

import { spawn, execFile } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const E2E_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(E2E_DIR, "..");

/** Access-token lifetime the stack is started with, and how long tests sleep to outlive it. */
export const ACCESS_TOKEN_VALIDITY_SECS = 2;
export const EXPIRY_SLEEP_MS = 2500;

const STARTUP_TIMEOUT_MS = 20_000;
const CLI_TIMEOUT_MS = 20_000;

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Binaries, logs
// ---------------------------------------------------------------------------------------------

export function binaries() {
  // Where `cargo build` put them: CARGO_TARGET_DIR when set, as cargo itself does.
  const debug = path.join(process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, "target"), "debug");
  return {
    portcullis: process.env.PORTCULLIS_BIN ?? path.join(debug, "portcullis"),
    demoApp: process.env.DEMO_APP_BIN ?? path.join(debug, "demo-app"),
  };
}

function requireBinary(file, what) {
  if (!existsSync(file)) {
    throw new Error(
      `${what} binary not found at ${file}. Build it first (cargo build -p portcullis -p demo-app) ` +
        `or point ${what === "portcullis" ? "PORTCULLIS_BIN" : "DEMO_APP_BIN"} at it.`,
    );
  }
}

// Logs: e2e/logs/<start time>-<pid>/NN-<label>.log, one directory per test-file process (node --test
// runs each file in its own process), one file per stack with both servers' output and the CLI calls.
const RUN_ID = `${new Date().toISOString().replace(/[:.]/g, "-")}-${process.pid}`;
let logCounter = 0;

function newLogFile(label) {
  const dir = path.join(E2E_DIR, "logs", RUN_ID);
  mkdirSync(dir, { recursive: true });
  logCounter += 1;
  const safe = label.replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 80);
  return path.join(dir, `${String(logCounter).padStart(2, "0")}-${safe}.log`);
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

const liveChildren = new Set();
const liveTmpDirs = new Set();

// Last line of defence: whatever ends the test process, no server or data dir is left behind.
process.on("exit", () => {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  if (!process.env.E2E_KEEP_TMP) {
    for (const dir of liveTmpDirs) rmSync(dir, { recursive: true, force: true });
  }
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => process.exit(130));
}

/**
 * The children's environment: this process's, minus any PORTCULLIS_* / DEMO_* the shell happened to
 * have (so a developer's config cannot leak in), plus the layers; `undefined` removes a variable.
 */
function mergeEnv(...layers) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(PORTCULLIS|DEMO)_/.test(key)));
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer ?? {})) {
      if (value === undefined) delete env[key];
      else env[key] = String(value);
    }
  }
  return env;
}

/**
 * Spawns a long-running child, copies all its output to `log` (so its pipes never fill up), and
 * resolves with the first stdout line. Rejects if the child exits or stays silent too long.
 */
function spawnServer({ name, file, args, cwd, env, log }) {
  const child = spawn(file, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  liveChildren.add(child);
  const exited = new Promise((resolve) => {
    // "close" (not "exit"): it comes after the output pipes are drained, so the log can end safely.
    child.once("close", (code, signal) => {
      liveChildren.delete(child);
      log.write(`[${name}] exited: code=${code} signal=${signal}\n`);
      resolve({ code, signal });
    });
  });
  child.once("error", (err) => log.write(`[${name}] spawn error: ${err.message}\n`));
  createInterface({ input: child.stderr }).on("line", (line) => log.write(`[${name} stderr] ${line}\n`));

  const firstLine = new Promise((resolve, reject) => {
    let seen = false;
    createInterface({ input: child.stdout }).on("line", (line) => {
      log.write(`[${name} stdout] ${line}\n`);
      if (!seen) {
        seen = true;
        resolve(line);
      }
    });
    child.once("error", reject);
    exited.then(({ code, signal }) => {
      if (!seen) reject(new Error(`${name} exited (code=${code} signal=${signal}) before printing its address; see ${log.path}`));
    });
    setTimeout(() => {
      if (!seen) reject(new Error(`${name} printed nothing within ${STARTUP_TIMEOUT_MS} ms; see ${log.path}`));
    }, STARTUP_TIMEOUT_MS).unref();
  });

  // SIGTERM first (clean shutdown, readable logs), SIGKILL if it lingers: the data dir is thrown away.
  async function stop() {
    let timer;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    }
    await exited;
    clearTimeout(timer);
  }
  return { child, firstLine, exited, stop };
}

function firstHttpUrl(line) {
  const url = line.split(/\s+/).find((word) => word.startsWith("http://"));
  if (!url) throw new Error(`no http:// address in: ${JSON.stringify(line)}`);
  return url.replace(/[),;]+$/, "").replace(/\/+$/, "");
}

async function waitForOk(url, timeoutMs = STARTUP_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  throw new Error(`GET ${url} did not answer 200 within ${timeoutMs} ms (${last})`);
}

/** Runs a short CLI command and parses its (possibly pretty-printed) JSON output. */
function runJson({ file, args, cwd, env, log }) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      log.write(`[cli] ${path.basename(file)} ${args.join(" ")}\n${stdout}${stderr ? `[cli stderr] ${stderr}` : ""}`);
      if (err) {
        reject(new Error(`${path.basename(file)} ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`${path.basename(file)} ${args.join(" ")} printed no JSON: ${stdout}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The stack: Portcullis server + org + API key + demo app
// ---------------------------------------------------------------------------------------------

/**
 * Starts Portcullis and the demo app.
 *
 * Options:
 *   label          names the log file
 *   graceSecs      PORTCULLIS_SESSION__REFRESH_GRACE_SECS (default 30)
 *   portcullisEnv  extra env for portcullis (server and CLI); `undefined` values remove a variable
 *   demoEnv        extra env for the demo app
 *   login          configure the organization for the hosted login and give the demo app its client
 *   postgres       run Portcullis on a fresh database of the local PostgreSQL instead of SQLite
 *   instances      how many Portcullis processes share the store (a SuperTokens backend gets them all)
 *   app            the backend in front of Portcullis: "demo" (the Rust SDK's demo app, default),
 *                  "supertokens-node" or "supertokens-python" (SuperTokens' SDKs with Portcullis as their core)
 *
 * Returns { portcullisUrl, portcullisUrls, demoUrl, orgId, apiKey, logPath, tmp, stop(), cli(...args) → JSON }.
 */
export async function startStack({
  label = "stack",
  graceSecs = 30,
  portcullisEnv,
  demoEnv,
  login = false,
  app = "demo",
  postgres = false,
  instances = 1,
} = {}) {
  const bins = binaries();
  requireBinary(bins.portcullis, "portcullis");
  if (app === "demo") requireBinary(bins.demoApp, "demo-app");

  const tmp = mkdtempSync(path.join(tmpdir(), "portcullis-e2e-"));
  liveTmpDirs.add(tmp);
  const logPath = newLogFile(label);
  const stream = createWriteStream(logPath, { flags: "a" });
  stream.on("error", () => {});
  let ended = false;
  const log = {
    path: logPath,
    write: (text) => void (ended || stream.write(text)),
    end: (cb) => {
      ended = true;
      stream.end(cb);
    },
  };
  const stoppers = [];

  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => {});
    stoppers.length = 0;
    await new Promise((resolve) => log.end(resolve));
    if (!process.env.E2E_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
    liveTmpDirs.delete(tmp);
  };

  try {
    const storeEnv = postgres ? await freshPostgresDatabase(stoppers, log) : {};
    const pEnv = mergeEnv(
      {
        PORTCULLIS_DATA_DIR: path.join(tmp, "data"),
        PORTCULLIS_SERVER__LISTEN: "127.0.0.1:0",
        RUST_LOG: "warn",
        PORTCULLIS_SESSION__ACCESS_TOKEN_VALIDITY_SECS: ACCESS_TOKEN_VALIDITY_SECS,
        PORTCULLIS_SESSION__REFRESH_GRACE_SECS: graceSecs,
        ...storeEnv,
      },
      portcullisEnv,
    );
    // Several instances share the store and the data directory (its master key), as a deployment does.
    const portcullisUrls = [];
    const servers = [];
    // Starts one more instance on the same store, with `extraEnv` over the stack's; resolves when healthy.
    const startInstance = async (extraEnv = {}) => {
      const name = `portcullis-${servers.length + 1}`;
      const server = spawnServer({ name, file: bins.portcullis, args: ["serve"], cwd: tmp, env: mergeEnv(pEnv, extraEnv), log });
      stoppers.push(server.stop);
      const url = firstHttpUrl(await server.firstLine);
      await waitForOk(`${url}/health`);
      servers.push({ ...server, url });
      return url;
    };
    for (let i = 0; i < instances; i += 1) portcullisUrls.push(await startInstance());
    const portcullisUrl = portcullisUrls[0];

    const cli = (...args) => runJson({ file: bins.portcullis, args, cwd: tmp, env: pEnv, log });
    const org = await cli("org", "create", "demo", "--json");
    const key = await cli("org", "api-key", "create", org.id, "--json");
    if (typeof key.key !== "string" || key.key === "") throw new Error(`api-key create printed no key: ${JSON.stringify(key)}`);
    // With `login`, the demo app signs in through the hosted login: its loopback callback is allowed and
    // it gets the client secret.
    let loginEnv = {};
    if (login) {
      await cli("org", "configure", org.id, "--allow-localhost", "true", "--json");
      const { secret } = await cli("org", "secret", "create", org.id, "--json");
      loginEnv = { DEMO_CLIENT_ID: org.id, DEMO_CLIENT_SECRET: secret };
    }

    const demo =
      app === "demo"
        ? spawnServer({
            name: "demo-app",
            file: bins.demoApp,
            args: [],
            cwd: tmp,
            env: mergeEnv(
              {
                PORTCULLIS_URL: portcullisUrl,
                DEMO_API_KEY: key.key,
                DEMO_LISTEN: "127.0.0.1:0",
                DEMO_DEV_MODE: "1",
                RUST_LOG: "warn",
                ...loginEnv,
              },
              demoEnv,
            ),
            log,
          })
        : spawnServer({
            name: app,
            ...SUPERTOKENS_APPS[app],
            cwd: tmp,
            env: mergeEnv(
              {
                // SuperTokens' SDKs use `;`-separated cores in turn.
                CONNECTION_URI: portcullisUrls.map((url) => `${url}/supertokens/appid-${org.id}`).join(";"),
                API_KEY: key.key,
              },
              demoEnv,
            ),
            log,
          });
    stoppers.push(demo.stop);
    const demoUrl = firstHttpUrl(await demo.firstLine);
    await waitForOk(`${demoUrl}/`);

    return {
      portcullisUrl,
      portcullisUrls,
      servers,
      startInstance,
      demoUrl,
      orgId: org.id,
      apiKey: key.key,
      logPath,
      tmp,
      stop,
      cli,
    };
  } catch (err) {
    await stop();
    err.message += ` (log: ${logPath})`;
    throw err;
  }
}

const POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/** Makes a database on the local PostgreSQL for one stack, dropped when the stack stops. */
async function freshPostgresDatabase(stoppers, log) {
  const name = `portcullis_e2e_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const psql = (sql) =>
    new Promise((resolve, reject) => {
      execFile("psql", [POSTGRES_ADMIN, "-v", "ON_ERROR_STOP=1", "-qc", sql], { timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
        log.write(`[psql] ${sql}\n${stdout}${stderr}`);
        if (err) reject(new Error(`psql ${sql} failed: ${stderr || err.message}`));
        else resolve();
      });
    });
  await psql(`CREATE DATABASE ${name}`);
  stoppers.push(() => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  return {
    PORTCULLIS_STORE__BACKEND: "postgres",
    PORTCULLIS_STORE__POSTGRES_URL: `postgres://postgres@127.0.0.1:5432/${name}`,
  };
}

/** SuperTokens backends that use Portcullis as their core, by the `app` option of startStack. */
const SUPERTOKENS_APPS = {
  "supertokens-node": { file: process.execPath, args: [path.join(E2E_DIR, "supertokens-apps", "node-app.mjs")] },
  // e2e/setup.sh installs supertokens-python and FastAPI into e2e/.venv.
  "supertokens-python": {
    file: path.join(E2E_DIR, ".venv", "bin", "python"),
    args: [path.join(E2E_DIR, "supertokens-apps", "python_app.py")],
  },
};

/** Runs fn(stack) and always stops the stack afterwards. */
export async function withStack(options, fn) {
  const stack = await startStack(options);
  try {
    return await fn(stack);
  } finally {
    await stack.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Browser
// ---------------------------------------------------------------------------------------------

/** Launches Debian's Chromium headless (playwright gives it a fresh user data dir). */
export function launchBrowser(extraArgs = []) {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** Runs fn(browser) and always closes the browser afterwards. */
/** Chromium's virtual authenticator on `page` (a platform passkey that answers by itself): the DevTools
 *  session and the authenticator's id, to read its credentials. */
export async function virtualAuthenticator(context, page) {
  const devtools = await context.newCDPSession(page);
  await devtools.send("WebAuthn.enable");
  const { authenticatorId } = await devtools.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      ctap2Version: "ctap2_1",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { devtools, authenticatorId };
}

export async function withBrowser(fn) {
  const browser = await launchBrowser();
  try {
    return await fn(browser);
  } finally {
    await browser.close();
  }
}

let bundleSources;
/**
 * The three browser bundles, in load order. website.* carries the webpack runtime the other two
 * need, so it must come first. File names carry a content hash, hence the prefix match.
 */
export function sdkBundles() {
  if (!bundleSources) {
    const dir = path.join(E2E_DIR, "node_modules/supertokens-web-js/bundle");
    const files = readdirSync(dir);
    bundleSources = ["website.", "supertokens.", "session."].map((prefix) => {
      const matches = files.filter((f) => f.startsWith(prefix) && f.endsWith(".js"));
      if (matches.length !== 1) throw new Error(`expected one ${prefix}*.js in ${dir}, found ${matches.join(", ") || "none"}; run e2e/setup.sh`);
      return { name: matches[0], content: readFileSync(path.join(dir, matches[0]), "utf8") };
    });
  }
  return bundleSources;
}

/**
 * Opens a page on the demo app's origin, injects the SDK bundles and initializes the session recipe
 * in `mode` ("cookie" | "header").
 *
 * In the page:
 *   window.__rawFetch   the browser's fetch, saved before supertokens.init patches window.fetch;
 *                       for test controls the SDK must not see
 *   window.__events     every onHandleEvent, as {action, sessionExpiredOrRevoked?, claimValidationErrors?}
 *   window.__e2e.call   an SDK-intercepted fetch returning {status, body, frontToken} or {error}
 */
export async function openSdkPage(context, demoUrl, mode) {
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/Failed to load resource/.test(msg.text())) {
      process.stderr.write(`[page console.error] ${msg.text()}\n`);
    }
  });
  page.on("pageerror", (err) => process.stderr.write(`[page error] ${err.message}\n`));
  const res = await page.goto(`${demoUrl}/`);
  if (!res || res.status() !== 200) throw new Error(`GET ${demoUrl}/ answered ${res && res.status()}`);
  for (const bundle of sdkBundles()) await page.addScriptTag({ content: bundle.content });

  await page.evaluate(
    ({ apiDomain, mode }) => {
      // Saved BEFORE init: supertokens.init replaces window.fetch with its interceptor.
      window.__rawFetch = window.fetch.bind(window);
      window.__events = [];
      const readBody = async (res) => {
        const text = await res.text();
        try {
          return JSON.parse(text);
        } catch {
          return text;
        }
      };
      window.__e2e = {
        readBody,
        async call(path, init) {
          try {
            const res = await window.fetch(apiDomain + path, init);
            return { status: res.status, body: await readBody(res), frontToken: res.headers.get("front-token") };
          } catch (err) {
            return { error: String(err && err.message ? err.message : err) };
          }
        },
        async control(method, path, body) {
          const res = await window.__rawFetch(apiDomain + path, {
            method,
            headers: body === undefined ? {} : { "content-type": "application/json" },
            body: body === undefined ? undefined : JSON.stringify(body),
          });
          return { status: res.status, body: await readBody(res) };
        },
      };
      supertokens.init({
        appInfo: { appName: "demo", apiDomain, apiBasePath: "/auth" },
        recipeList: [
          supertokensSession.init({
            tokenTransferMethod: mode,
            onHandleEvent: (e) => {
              const event = { action: e.action };
              if ("sessionExpiredOrRevoked" in e) event.sessionExpiredOrRevoked = e.sessionExpiredOrRevoked;
              if ("claimValidationErrors" in e) event.claimValidationErrors = e.claimValidationErrors;
              window.__events.push(event);
            },
          }),
        ],
      });
    },
    { apiDomain: demoUrl, mode },
  );
  return page;
}

/**
 * One scenario's world: a stack, a fresh browser context (own cookie jar, storage and socket pool)
 * and one SDK page. Everything is torn down afterwards, also when fn throws.
 */
export async function withScenario(browser, { mode, label, graceSecs, portcullisEnv, demoEnv, app, postgres }, fn) {
  return withStack({ label: label ?? mode, graceSecs, portcullisEnv, demoEnv, app, postgres }, async (stack) => {
    const context = await browser.newContext();
    const wire = recordWire(context);
    try {
      const page = await openSdkPage(context, stack.demoUrl, mode);
      return await fn({ stack, context, page, wire, mode, newPage: () => openSdkPage(context, stack.demoUrl, mode) });
    } finally {
      await context.close().catch(() => {});
    }
  });
}

// ---------------------------------------------------------------------------------------------
// In-page helpers
// ---------------------------------------------------------------------------------------------

export const sdk = {
  doesSessionExist: (page) => page.evaluate(() => supertokensSession.doesSessionExist()),
  getUserId: (page) => page.evaluate(() => supertokensSession.getUserId()),
  getAccessToken: (page) => page.evaluate(() => supertokensSession.getAccessToken()),
  signOut: (page) => page.evaluate(() => supertokensSession.signOut()),
  /** SDK-intercepted fetch. */
  call: (page, path, init) => page.evaluate(([p, i]) => window.__e2e.call(p, i), [path, init]),
  /** n SDK-intercepted GETs started together. */
  callParallel: (page, path, n) =>
    page.evaluate(([p, count]) => Promise.all(Array.from({ length: count }, () => window.__e2e.call(p))), [path, n]),
  /** Signs in through the intercepted fetch, so the SDK sees (and stores) the new tokens. */
  signIn: (page, userId = "u1", roles) =>
    page.evaluate(
      ([u, r]) =>
        window.__e2e.call("/dev/sign-in", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(r === undefined ? { userId: u } : { userId: u, roles: r }),
        }),
      [userId, roles],
    ),
  events: (page) => page.evaluate(() => window.__events.slice()),
  actions: (page) => page.evaluate(() => window.__events.map((e) => e.action)),
  clearEvents: (page) => page.evaluate(() => void (window.__events.length = 0)),
};

/** Test controls, sent with the fetch saved before supertokens.init (never intercepted). */
export const controls = {
  stats: async (page) => {
    const res = await page.evaluate(() => window.__e2e.control("GET", "/dev/stats"));
    if (res.status !== 200) throw new Error(`/dev/stats answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  },
  revoke: (page, userId = "u1") => page.evaluate((u) => window.__e2e.control("POST", "/dev/revoke", { userId: u }), userId),
  dropNextRefresh: (page) => page.evaluate(() => window.__e2e.control("POST", "/dev/fault/drop-next-refresh")),
};

/** Refresh counters relative to a baseline taken now: `const d = await refreshCounter(page); ...; await d()`. */
export async function refreshCounter(page) {
  const base = await controls.stats(page);
  return async () => {
    const now = await controls.stats(page);
    return {
      attempts: now.refreshAttempts - base.refreshAttempts,
      successes: now.refreshSuccesses - base.refreshSuccesses,
    };
  };
}

// ---------------------------------------------------------------------------------------------
// Wire recording and cookies
// ---------------------------------------------------------------------------------------------

/**
 * Records every exchange with the SuperTokens endpoints (/auth/...), the demo's protected routes
 * (/api/...) and /dev/sign-in in a context:
 * method, path, request headers as sent (including Cookie), status, response headers (set-cookie
 * lines joined by "\n") and body. Call `await wire.settle()` before reading `wire.exchanges`.
 *
 * Note: this sees what the page asked for. A POST that Chromium's network stack re-sends by itself
 * (after a reused connection closed without an answer) shows up here once.
 */
const WIRE_PATHS = /^\/(auth\/|api\/|dev\/sign-in)/;

export function recordWire(context) {
  const exchanges = [];
  const pending = new Set();
  const failed = [];
  let nextSeq = 0;
  context.on("requestfailed", (req) => {
    if (WIRE_PATHS.test(new URL(req.url()).pathname)) {
      failed.push({ method: req.method(), path: new URL(req.url()).pathname, error: req.failure()?.errorText });
    }
  });
  context.on("response", (res) => {
    const url = new URL(res.url());
    if (!WIRE_PATHS.test(url.pathname)) return;
    const seq = nextSeq++; // responses are recorded asynchronously; keep their arrival order
    const p = (async () => {
      const req = res.request();
      let body;
      try {
        const text = await res.text();
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
      } catch {
        body = undefined;
      }
      exchanges.push({
        seq,
        method: req.method(),
        path: url.pathname,
        requestHeaders: await req.allHeaders(),
        status: res.status(),
        responseHeaders: await res.allHeaders(),
        body,
      });
    })().catch(() => {}); // the context may close while a body is still being read
    pending.add(p);
    p.finally(() => pending.delete(p));
  });
  return {
    exchanges,
    failed,
    async settle() {
      await sleep(50);
      while (pending.size) await Promise.allSettled([...pending]);
      exchanges.sort((a, b) => a.seq - b.seq);
    },
    forPath(p) {
      return exchanges.filter((e) => e.path === p);
    },
    refreshes() {
      return exchanges.filter((e) => e.path === "/auth/session/refresh");
    },
    /** Forgets everything recorded so far (waits for exchanges still being recorded first). */
    async clear() {
      await this.settle();
      exchanges.length = 0;
      failed.length = 0;
    },
  };
}

/** Cookies of the context as a name → cookie map (the last one wins; tests check for duplicates). */
export async function cookieMap(context, url) {
  const list = await context.cookies(url);
  return Object.fromEntries(list.map((c) => [c.name, c]));
}

/** Decodes a front-token / sFrontToken value: base64 of UTF-8 JSON {uid, ate, up}. */
export function decodeFrontToken(value) {
  return JSON.parse(Buffer.from(decodeURIComponent(value), "base64").toString("utf8"));
}

/** Decodes the payload of a JWT without verifying it. */
export function decodeJwtPayload(jwt) {
  const part = jwt.split(".")[1];
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

/** Parses a "\n"-joined set-cookie header into [{name, value, attrs: {lowercased name → value}}]. */
export function parseSetCookies(joined) {
  if (!joined) return [];
  return joined.split("\n").map((line) => {
    const [pair, ...attrParts] = line.split(";");
    const eq = pair.indexOf("=");
    const attrs = {};
    for (const a of attrParts) {
      const [k, ...v] = a.trim().split("=");
      if (k) attrs[k.toLowerCase()] = v.join("=");
    }
    return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), attrs };
  });
}

/**
 * Sends POST /auth/session/refresh from Node (not the browser), as an attacker replaying a copied
 * refresh token would: cookie mode puts it in `Cookie: sRefreshToken=...`, header mode in
 * `Authorization: Bearer ...`.
 */
export async function replayRefresh(demoUrl, mode, refreshToken) {
  const headers = { rid: "session", "st-auth-mode": mode, "fdi-version": "4.1" };
  if (mode === "cookie") headers.cookie = `sRefreshToken=${refreshToken}`;
  else headers.authorization = `Bearer ${refreshToken}`;
  const res = await fetch(`${demoUrl}/auth/session/refresh`, { method: "POST", headers });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, setCookies: parseSetCookies(res.headers.getSetCookie().join("\n")), body };
}
