// better-auth on SQLite (better-sqlite3, WAL, synchronous=NORMAL) with the email-OTP plugin and the
// cookie cache on, served by node:http, as its documentation sets it up. Rate limiting is off, as it is
// on the Portcullis side. Mailed codes are kept in memory and served at GET /dev/otp?email=…, the
// counterpart of Portcullis's dev outbox.
//   DB_FILE=/tmp/ba.db node better-auth.mjs   → prints http://127.0.0.1:<port>
import http from "node:http";
import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { emailOTP } from "better-auth/plugins";
import { toNodeHandler } from "better-auth/node";
import { getMigrations } from "better-auth/db/migration";

const origin = "http://127.0.0.1";
const db = new Database(process.env.DB_FILE ?? "better-auth.db");
db.pragma("journal_mode = WAL");
db.pragma("synchronous = NORMAL");

const codes = new Map();
const auth = betterAuth({
  database: db,
  secret: "bench-secret-bench-secret-bench-secret-0123",
  baseURL: origin,
  trustedOrigins: [origin],
  emailAndPassword: { enabled: true },
  rateLimit: { enabled: false },
  session: { cookieCache: { enabled: true, maxAge: 300 } },
  telemetry: { enabled: false },
  plugins: [
    emailOTP({
      async sendVerificationOTP({ email, otp }) {
        codes.set(email, otp);
      },
    }),
  ],
});
const { runMigrations } = await getMigrations(auth.options);
await runMigrations();

const handler = toNodeHandler(auth);
const server = http.createServer((req, res) => {
  if (req.url.startsWith("/dev/otp?")) {
    const email = new URL(req.url, origin).searchParams.get("email");
    const otp = codes.get(email);
    codes.delete(email);
    res.writeHead(otp ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify({ otp: otp ?? null }));
    return;
  }
  handler(req, res);
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${server.address().port}`);
});
