#!/usr/bin/env bash
# Installs what Fleet needs and is missing, then builds. Safe to run again: each step is skipped when done.
#   scripts/setup.sh run    what `fleet up` needs
#   scripts/setup.sh test   that, plus what the test suite needs (Chromium for the dashboard, redis-server)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

say() { printf 'fleet setup: %s\n' "$*" >&2; }

node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.stdout.write(String(a>20||(a===20&&b>=19)))' 2>/dev/null || echo false)
if [ "$node_ok" != "true" ]; then
  say "Node.js 20.19 or newer is required (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi

# Debian packages: the sandbox (bubblewrap, Debian's Python with numpy/matplotlib/pyflakes), Chromium for the
# browser worker, util-linux for setpriv; the tests also need full Chromium, a redis-server binary, and iproute2 +
# mount for the browser worker's network-namespace attack test (ip link/addr, mount --bind).
apt_packages=(bubblewrap python3 python3-numpy python3-matplotlib python3-pyflakes python3-pip util-linux chromium-headless-shell fonts-liberation procps)
if [ "$mode" = "test" ]; then apt_packages+=(chromium redis-server iproute2 mount python3-setuptools); fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    say "missing system packages (${missing[*]}) and no apt-get to install them; install them by hand"
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else say "need root (or sudo) to install: ${missing[*]}"; exit 1; fi
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, exactly as locked.
# `npm install` rather than `npm ci`: npm 11's ci refuses the lock file because vite names an optional,
# Windows-only package that the registry does not have; install still takes every version from the lock.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (versions from package-lock.json)"
  npm install --no-audit --no-fund --loglevel=error
fi

# Build when any source is newer than the last build.
if [ ! -f dist/.built ] || [ -n "$(find src tsconfig.json tsconfig.build.json package-lock.json -newer dist/.built -print -quit 2>/dev/null)" ]; then
  say "building"
  npm run -s build
  touch dist/.built
fi
