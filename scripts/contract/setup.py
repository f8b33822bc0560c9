"""Sets up a fresh Portcullis for the contract test and prints the credentials as shell exports.

Over the server's own APIs: a second organization for the admin operations to change, an organization (whitelist, a registered OAuth redirect URI), an API key, a
client secret, a session, a connector account, and two logins through the hosted pages by email code (one
through the CentralAuth face, one through the standard OAuth face) for real access tokens.

Usage: python3 setup.py BASE_URL ADMIN_TOKEN
"""

import base64
import hashlib
import http.client
import json
import re
import secrets
import sys
import urllib.parse

BASE, ADMIN_TOKEN = sys.argv[1], sys.argv[2]
HOST = urllib.parse.urlsplit(BASE)
APP = "https://app.example.com"


def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=30)
    conn.request(method, path, body, headers or {})
    response = conn.getresponse()
    data = response.read()
    return response, data


def api(method, path, token, payload=None):
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    response, data = call(method, path, json.dumps(payload) if payload is not None else None, headers)
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data!r}")
    return json.loads(data) if data else None


def form(fields):
    return urllib.parse.urlencode(fields), {"content-type": "application/x-www-form-urlencoded"}


def log_in(start_path, query, email):
    """Runs the hosted login by email code; returns the callback's `code`."""
    started, _ = call("GET", f"{start_path}?{urllib.parse.urlencode(query)}")
    assert started.status == 303, started.status
    flow = started.getheader("location").split("?")[0]
    cookie = started.getheader("set-cookie").split(";")[0]
    body, headers = form({"email": email})
    sent, data = call("POST", f"{flow}/email", body, {**headers, "cookie": cookie})
    assert sent.status == 303, (sent.status, data)
    _, outbox = call("GET", "/dev/outbox")
    message = next(m for m in json.loads(outbox)["messages"] if m["to"] == email)
    code = re.search(r"\b\d{6,10}\b", message["body"]).group(0)
    body, headers = form({"code": code})
    done, data = call("POST", f"{flow}/code", body, {**headers, "cookie": cookie})
    assert done.status == 303, (done.status, data)
    callback = urllib.parse.urlsplit(done.getheader("location"))
    return urllib.parse.parse_qs(callback.query)["code"][0]


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


org = api("POST", "/admin/v1/organizations", ADMIN_TOKEN, {"name": "Contract"})["id"]
# The organization the admin operations on `{id}` fuzz (they replace its secret and whitelist), so the
# credentials of `org` stay valid for the whole run.
scratch = api("POST", "/admin/v1/organizations", ADMIN_TOKEN, {"name": "Scratch"})["id"]
settings = {"allowLocalhost": True, "redirectUris": [f"{APP}/oauth/callback"]}
api("PUT", f"/admin/v1/organizations/{org}/login", ADMIN_TOKEN, {"whitelist": [APP], "settings": settings})
api_key = api("POST", f"/admin/v1/organizations/{org}/api-keys", ADMIN_TOKEN)["key"]
secret = api("POST", f"/admin/v1/organizations/{org}/secret", ADMIN_TOKEN)["secret"]
session = api("POST", "/api/v1/sessions", api_key, {"userId": "contract-user"})
account = {"id": "contract-account", "connector": "upstream", "authValue": "upstream-key"}
api("POST", f"/admin/v1/organizations/{org}/connector-accounts", ADMIN_TOKEN, account)
basic = "Basic " + base64.b64encode(f"{org}:{secret}".encode()).decode()

def centralauth_login(email):
    """A CentralAuth access token, by the hosted login and `/api/v1/verify`."""
    verifier, challenge = pkce()
    callback = f"{APP}/callback"
    query = {"client_id": org, "redirect_uri": callback, "response_type": "code", "state": secrets.token_hex(8),
             "code_challenge": challenge, "code_challenge_method": "S256"}
    code = log_in("/login", query, email)
    body, headers = form({"code": code, "redirect_uri": callback, "code_verifier": verifier})
    answer, data = call("POST", "/api/v1/verify", body, {**headers, "authorization": basic})
    assert answer.status == 200, (answer.status, data)
    return json.loads(data)["access_token"]


# Two sessions: the logout tests end theirs, the userinfo tests keep theirs.
userinfo_token = centralauth_login("userinfo@example.com")
logout_token = centralauth_login("logout@example.com")

verifier, challenge = pkce()
redirect = f"{APP}/oauth/callback"
query = {"client_id": org, "redirect_uri": redirect, "response_type": "code", "scope": "openid email",
         "state": secrets.token_hex(8), "code_challenge": challenge, "code_challenge_method": "S256"}
code = log_in("/oauth2/authorize", query, "oauth@example.com")
body, headers = form({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                      "code_verifier": verifier})
answer, data = call("POST", "/oauth2/token", body, {**headers, "authorization": basic})
assert answer.status == 200, (answer.status, data)
oauth_token = json.loads(data)["access_token"]

exports = {
    "CONTRACT_ORG": org,
    "CONTRACT_SCRATCH_ORG": scratch,
    "CONTRACT_API_KEY": api_key,
    "CONTRACT_CLIENT_SECRET": secret,
    "CONTRACT_SESSION": session["session"]["handle"],
    "CONTRACT_ACCESS_TOKEN": oauth_token,
    "CONTRACT_USERINFO_TOKEN": userinfo_token,
    "CONTRACT_LOGOUT_TOKEN": logout_token,
}
for name, value in exports.items():
    print(f"export {name}='{value}'")
