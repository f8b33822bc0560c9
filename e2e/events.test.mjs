// Outbound events against a receiver that checks every signature with the `standardwebhooks` package
// from npm (Standard Webhooks' own library): one event per cause, order kept while the receiver is down,
// nothing lost to a `kill -9` between the state change and the delivery, and two instances delivering
// each event once on average and at least once always.

import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Webhook } from "standardwebhooks";
import { sleep, withStack } from "./harness.mjs";

/** A Standard Webhooks receiver on loopback: verifies, records, or answers 503 while `down`. */
async function startReceiver() {
  const state = { secrets: [], received: [], refused: 0, down: false };
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      if (state.down) return void res.writeHead(503).end();
      const headers = {
        "webhook-id": req.headers["webhook-id"],
        "webhook-timestamp": req.headers["webhook-timestamp"],
        "webhook-signature": req.headers["webhook-signature"],
      };
      let payload = null;
      for (const secret of state.secrets) {
        try {
          payload = new Webhook(secret).verify(body, headers);
          break;
        } catch {
          // Another secret may verify it.
        }
      }
      if (payload === null) {
        state.refused += 1;
        return void res.writeHead(401).end();
      }
      state.received.push({ id: headers["webhook-id"], payload });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${server.address().port}/hook`;
  state.close = () => new Promise((resolve) => server.close(resolve));
  state.ofType = (type) => state.received.filter((r) => r.payload.type === type);
  return state;
}

async function eventually(what, probe, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await sleep(50);
  }
}

const eventsEnv = {
  PORTCULLIS_EVENTS__POLL_INTERVAL_MS: 50,
  PORTCULLIS_EVENTS__RETRY_INITIAL_SECS: 1,
  PORTCULLIS_EVENTS__RETRY_MAX_SECS: 2,
  PORTCULLIS_EVENTS__HTTP_TIMEOUT_SECS: 2,
  PORTCULLIS_CONNECTORS__EGRESS_ALLOW: '["127.0.0.1"]',
};

/**
 * The delivery log once no delivery is pending: the receiver records a request before it answers, and the
 * worker records the outcome only after the answer, so the log trails what the receiver saw.
 */
function settledLog(stack) {
  return eventually("every delivery's outcome recorded", async () => {
    const log = await stack.cli("events", "deliveries", stack.orgId, "--json");
    return log.every((d) => d.state !== "pending") && log;
  });
}

/** Adds an endpoint through the CLI and gives its secret to the receiver. */
async function subscribe(stack, receiver) {
  const { endpoint, secret } = await stack.cli("events", "add", stack.orgId, "--url", receiver.url, "--json");
  assert.match(secret, /^whsec_/);
  receiver.secrets.push(secret);
  return endpoint;
}

/** A session of `user` whose first refresh token is replayed after a rotation: a theft. */
async function theft(baseUrl, apiKey, user) {
  const call = async (path, body) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const created = await call("/api/v1/sessions", { userId: user });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const token = created.body.refreshToken;
  assert.equal((await call("/api/v1/sessions/refresh", { refreshToken: token })).status, 200);
  const replay = await call("/api/v1/sessions/refresh", { refreshToken: token });
  assert.equal(replay.body.errorCode, "tokenTheftDetected");
}

const usersOf = (receiver) => receiver.ofType("session.theftDetected").map((r) => r.payload.data.userId);

for (const postgres of [false, true]) {
  const store = postgres ? "PostgreSQL" : "SQLite";

  test(`${store}: each cause raises one signed event naming its catalog code`, async () => {
    const receiver = await startReceiver();
    try {
      await withStack({ label: "events-causes", postgres, graceSecs: 0, portcullisEnv: eventsEnv }, async (stack) => {
        await subscribe(stack, receiver);
        await theft(stack.portcullisUrl, stack.apiKey, "alice");
        await stack.cli("keys", "rotate", "--json");
        await eventually("both events", () => receiver.ofType("keys.rotated").length && usersOf(receiver).length);
        const log = await settledLog(stack);
        assert.equal(log.length, 2, `one delivery per cause: ${JSON.stringify(log)}`);
        assert.ok(log.every((d) => d.state === "delivered"), JSON.stringify(log));
        const [stolen] = receiver.ofType("session.theftDetected");
        assert.equal(stolen.payload.data.code, "tokenTheftDetected");
        assert.equal(stolen.payload.data.organizationId, stack.orgId);
        assert.match(stolen.id, /^msg_/);
        const [rotated] = receiver.ofType("keys.rotated");
        assert.equal(rotated.payload.data.ring, "server");
        assert.equal(rotated.payload.data.code, undefined, "a rotation reports no failure");
        assert.equal(receiver.refused, 0, "every signature verified");
      });
    } finally {
      await receiver.close();
    }
  });

  test(`${store}: a receiver down for a while gets every event after it returns, in order`, async () => {
    const receiver = await startReceiver();
    try {
      await withStack({ label: "events-down", postgres, graceSecs: 0, portcullisEnv: eventsEnv }, async (stack) => {
        await subscribe(stack, receiver);
        receiver.down = true;
        const users = ["u1", "u2", "u3", "u4", "u5"];
        for (const user of users) await theft(stack.portcullisUrl, stack.apiKey, user);
        await eventually("a refused attempt in the log", async () => {
          const log = await stack.cli("events", "deliveries", stack.orgId, "--state", "pending", "--json");
          return log.some((d) => d.lastStatus === 503);
        });
        receiver.down = false;
        await eventually("every held-back event", () => usersOf(receiver).length === users.length);
        assert.deepEqual(usersOf(receiver), users, "in the order of their causes");
      });
    } finally {
      await receiver.close();
    }
  });

  test(`${store}: kill -9 between the state change and the delivery loses nothing`, async () => {
    const receiver = await startReceiver();
    try {
      // The first instance looks for events at start and then only once a minute: the event it writes
      // is still in the outbox when it is killed.
      const slow = { ...eventsEnv, PORTCULLIS_EVENTS__POLL_INTERVAL_MS: 60_000 };
      await withStack({ label: "events-kill", postgres, graceSecs: 0, portcullisEnv: slow }, async (stack) => {
        await subscribe(stack, receiver);
        await theft(stack.portcullisUrl, stack.apiKey, "victim");
        const [first] = stack.servers;
        first.child.kill("SIGKILL");
        await first.exited;
        assert.equal(receiver.received.length, 0, "nothing was delivered before the kill");
        await stack.startInstance({ PORTCULLIS_EVENTS__POLL_INTERVAL_MS: 50 });
        await eventually("the event, after the restart", () => usersOf(receiver).length === 1);
        assert.deepEqual(usersOf(receiver), ["victim"]);
      });
    } finally {
      await receiver.close();
    }
  });
}

test("PostgreSQL: two instances deliver each event once on average and at least once always", async () => {
  const receiver = await startReceiver();
  try {
    const options = { label: "events-two", postgres: true, instances: 2, graceSecs: 0, portcullisEnv: eventsEnv };
    await withStack(options, async (stack) => {
      await subscribe(stack, receiver);
      const users = Array.from({ length: 30 }, (_, i) => `user-${i}`);
      await Promise.all(users.map((user, i) => theft(stack.portcullisUrls[i % 2], stack.apiKey, user)));
      await eventually("every event", () => new Set(receiver.received.map((r) => r.id)).size === users.length);
      const log = await settledLog(stack);
      assert.equal(log.length, users.length, "one delivery per event");
      assert.ok(log.every((d) => d.state === "delivered"), JSON.stringify(log));
      const perEvent = receiver.received.length / users.length;
      console.log(`two instances: ${receiver.received.length} requests for ${users.length} events (${perEvent.toFixed(2)} each)`);
      assert.ok(perEvent <= 1.1, `${perEvent} requests per event`);
      assert.deepEqual([...new Set(usersOf(receiver))].sort(), [...users].sort());
    });
  } finally {
    await receiver.close();
  }
});
