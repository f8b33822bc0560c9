#!/usr/bin/env bash
# Installs what the browser end-to-end tests need, quietly and idempotently:
#   - Debian's chromium (/usr/bin/chromium) when it is missing; playwright never downloads a browser;
#   - the pinned npm packages (supertokens-web-js, supertokens-node, playwright-core) from package-lock.json;
#   - the pinned PyPI packages of the Python SuperTokens backend (supertokens-apps/requirements.txt) in .venv.
# Run it from anywhere: bash e2e/setup.sh
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e/setup.sh: installing Debian chromium"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# npm ci wipes node_modules; skip it when the installed tree already matches the lock file.
stamp="node_modules/.e2e-setup-stamp"
if [ -f package-lock.json ]; then
  want="$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "e2e/setup.sh: npm ci"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$want" > "$stamp"
  fi
else
  echo "e2e/setup.sh: npm install (no package-lock.json yet)"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi

want="$(sha256sum supertokens-apps/requirements.txt | cut -d' ' -f1)"
if [ ! -f .venv/.e2e-setup-stamp ] || [ "$(cat .venv/.e2e-setup-stamp)" != "$want" ]; then
  echo "e2e/setup.sh: pip install -r supertokens-apps/requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r supertokens-apps/requirements.txt
  echo "$want" > .venv/.e2e-setup-stamp
fi
