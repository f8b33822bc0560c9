// oidc-provider with its in-memory adapter: one client_secret_post client and the client_credentials
// grant, issuing EdDSA-signed JWT access tokens for one resource (the algorithm Portcullis signs with).
// Nothing is persisted, so its figures are an upper bound.
//   node oidc-provider.mjs   → prints http://127.0.0.1:<port>
import http from "node:http";
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const resource = "https://api.example.com";
const jwk = (type, options) => ({ ...generateKeyPairSync(type, options).privateKey.export({ format: "jwk" }) });
const provider = new Provider("http://127.0.0.1", {
  clients: [
    {
      client_id: "bench",
      client_secret: "bench-secret-bench-secret-bench-secret-0123",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_post",
    },
  ],
  ttl: { ClientCredentials: 600 },
  jwks: { keys: [jwk("rsa", { modulusLength: 2048 }), { ...jwk("ed25519"), alg: "EdDSA" }] },
  enabledJWA: { authorizationSigningAlgValues: ["RS256", "EdDSA"] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "api",
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "EdDSA" } },
      }),
    },
  },
});
const server = http.createServer(provider.callback());
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${server.address().port}`);
});
