// A SuperTokens backend written as SuperTokens' documentation writes one (supertokens-node 24 with
// express, the seed's `Session.init({ errorHandlers })` with all five handlers overridden), whose core is
// Portcullis: `connectionURI` is Portcullis's /supertokens/appid-<organization id>.
//
// Every handler records that it ran (GET /handlers lists them) and answers with its own tag, so a test
// can prove which one fired. Prints its address as the first line of stdout.
//
// Environment: CONNECTION_URI, API_KEY (required); WEBSITE_DOMAIN (default http://localhost:3000),
// COOKIE_DOMAIN, OLDER_COOKIE_DOMAIN, COOKIE_SAME_SITE (optional).

import express from "express";
import SuperTokens from "supertokens-node";
import { errorHandler, middleware } from "supertokens-node/framework/express";
import Session from "supertokens-node/recipe/session";
import UserMetadata from "supertokens-node/recipe/usermetadata";
import UserRoles from "supertokens-node/recipe/userroles";
import { verifySession } from "supertokens-node/recipe/session/framework/express";

const handlersRun = [];
const record = (handler, detail) => handlersRun.push({ handler, ...detail });

const server = express();
const listening = server.listen(0, "127.0.0.1");
await new Promise((resolve) => listening.once("listening", resolve));
const apiDomain = `http://127.0.0.1:${listening.address().port}`;
const websiteDomain = process.env.WEBSITE_DOMAIN ?? "http://localhost:3000";

SuperTokens.init({
  framework: "express",
  supertokens: {
    connectionURI: process.env.CONNECTION_URI,
    apiKey: process.env.API_KEY,
  },
  appInfo: {
    apiDomain,
    appName: "portcullis-core-e2e",
    websiteDomain,
    apiBasePath: "/auth",
  },
  recipeList: [
    Session.init({
      cookieDomain: process.env.COOKIE_DOMAIN || undefined,
      olderCookieDomain: process.env.OLDER_COOKIE_DOMAIN || undefined,
      cookieSameSite: process.env.COOKIE_SAME_SITE || undefined,
      errorHandlers: {
        onUnauthorised: async (message, request, response, userContext) => {
          record("onUnauthorised", { message });
          response.setStatusCode(401);
          response.sendJSONResponse({ message: "unauthorised", handler: "onUnauthorised" });
        },
        onInvalidClaim: async (validatorErrors, request, response, userContext) => {
          record("onInvalidClaim", { validatorErrors });
          response.setStatusCode(403);
          response.sendJSONResponse({ message: "invalid claim", claimValidationErrors: validatorErrors, handler: "onInvalidClaim" });
        },
        // supertokens-node 24 passes the recipe user id after the user id (the seed's page predates it).
        onTokenTheftDetected: async (sessionHandle, userId, recipeUserId, request, response, userContext) => {
          record("onTokenTheftDetected", { sessionHandle, userId, recipeUserId: recipeUserId.getAsString() });
          await Session.revokeSession(sessionHandle, userContext);
          response.setStatusCode(401);
          response.sendJSONResponse({ message: "token theft detected", handler: "onTokenTheftDetected" });
        },
        onTryRefreshToken: async (message, request, response, userContext) => {
          record("onTryRefreshToken", { message });
          response.setStatusCode(401);
          response.sendJSONResponse({ message: "try refresh token", handler: "onTryRefreshToken" });
        },
        onClearDuplicateSessionCookies: async (message, request, response, userContext) => {
          record("onClearDuplicateSessionCookies", { message });
          response.setStatusCode(200);
          response.sendJSONResponse({ message, handler: "onClearDuplicateSessionCookies" });
        },
      },
    }),
    // Fills the st-role / st-perm claims from the core at session creation.
    UserRoles.init(),
    UserMetadata.init(),
  ],
});

server.use((req, res, next) => {
  res.setHeader("Access-Control-Allow-Origin", websiteDomain);
  res.setHeader("Access-Control-Allow-Credentials", "true");
  res.setHeader("Access-Control-Allow-Headers", ["content-type", ...SuperTokens.getAllCORSHeaders()].join(", "));
  res.setHeader("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE");
  if (req.method === "OPTIONS") return res.sendStatus(204);
  next();
});
// Refresh calls as the browser makes them, so a test can count them.
const stats = { refreshAttempts: 0, refreshSuccesses: 0 };
server.use((req, res, next) => {
  if (req.method === "POST" && req.path === "/auth/session/refresh") {
    stats.refreshAttempts += 1;
    res.on("finish", () => {
      if (res.statusCode === 200) stats.refreshSuccesses += 1;
    });
  }
  next();
});
server.use(middleware());
server.use(express.json());

const isAdmin = {
  id: "is-admin",
  shouldRefetch: () => false,
  validate: async (payload) =>
    payload.role === "admin" ? { isValid: true } : { isValid: false, reason: { message: "wrong role", expected: "admin", actual: payload.role } },
};

server.post("/login", async (req, res) => {
  const session = await Session.createNewSession(req, res, "public", SuperTokens.convertToRecipeUserId(req.body.userId), {
    role: req.body.role ?? "member",
  }, { cart: 0 });
  res.json({ handle: session.getHandle(), userId: session.getUserId() });
});
server.get("/me", verifySession(), (req, res) => {
  res.json({ userId: req.session.getUserId(), handle: req.session.getHandle(), payload: req.session.getAccessTokenPayload() });
});
server.get("/me-db", verifySession({ checkDatabase: true }), (req, res) => {
  res.json({ userId: req.session.getUserId(), handle: req.session.getHandle() });
});
server.get("/admin", verifySession({ overrideGlobalClaimValidators: (globals) => [...globals, isAdmin] }), (req, res) => {
  res.json({ admin: req.session.getUserId() });
});
server.post("/roles/:userId", async (req, res) => {
  for (const [role, permissions] of Object.entries(req.body)) {
    await UserRoles.createNewRoleOrAddPermissions(role, permissions);
    const added = await UserRoles.addRoleToUser("public", req.params.userId, role);
    if (added.status !== "OK") return res.status(500).json(added);
  }
  res.json({ roles: (await UserRoles.getRolesForUser("public", req.params.userId)).roles });
});
server.get("/role-admin", verifySession({
  overrideGlobalClaimValidators: (globals) => [...globals, UserRoles.UserRoleClaim.validators.includes("admin")],
}), (req, res) => res.json({ roles: req.session.getAccessTokenPayload()["st-role"].v }));
server.get("/perm-write", verifySession({
  overrideGlobalClaimValidators: (globals) => [...globals, UserRoles.PermissionClaim.validators.includes("write")],
}), (req, res) => res.json({ permissions: req.session.getAccessTokenPayload()["st-perm"].v }));
server.post("/metadata/:userId", async (req, res) => {
  res.json(await UserMetadata.updateUserMetadata(req.params.userId, req.body));
});
server.get("/metadata/:userId", async (req, res) => {
  res.json(await UserMetadata.getUserMetadata(req.params.userId));
});
server.post("/claim", verifySession(), async (req, res) => {
  await req.session.mergeIntoAccessTokenPayload(req.body);
  res.json({ payload: req.session.getAccessTokenPayload() });
});
server.post("/data", verifySession(), async (req, res) => {
  await req.session.updateSessionDataInDatabase(req.body);
  res.json({ data: await req.session.getSessionDataFromDatabase() });
});
server.get("/info/:handle", async (req, res) => {
  const info = await Session.getSessionInformation(req.params.handle);
  res.json(info === undefined ? { missing: true } : { ...info, recipeUserId: info.recipeUserId.getAsString() });
});
server.post("/revoke/:userId", async (req, res) => {
  res.json({ revoked: await Session.revokeAllSessionsForUser(req.params.userId) });
});
server.get("/handles/:userId", async (req, res) => {
  res.json({ handles: await Session.getAllSessionHandlesForUser(req.params.userId) });
});
server.get("/handlers", (req, res) => res.json(handlersRun));
server.get("/stats", (req, res) => res.json(stats));
server.get("/", (req, res) => res.send("ok"));
server.use(errorHandler());
server.use((err, req, res, next) => {
  res.status(500).json({ message: String(err?.message ?? err) });
});

console.log(apiDomain);
