# syntax=docker/dockerfile:1
# python-sandbox worker: runs untrusted Python under bubblewrap, port 3001.
# Build from the repository root:  docker build -f deploy/docker/python-sandbox.Dockerfile -t fleet-python-sandbox .
#
# Runs as the unprivileged user "node" (uid 1000): the sandbox then uses its "namespaces" isolation level
# (bubblewrap + rlimits + seccomp). Debian's bubblewrap is not setuid; it isolates by creating an
# unprivileged user namespace, so the container needs no added capability (run it with cap_drop ALL),
# but the runtime must let it create namespaces and mount a fresh /proc: a seccomp profile that allows
# unshare/clone/mount (Docker's default blocks them), an AppArmor profile that allows userns and mount,
# /proc not masked, and a kernel with unprivileged user namespaces on. /health reports the isolation
# level in force; docs/deploy.md ("The Python image's capabilities") has the options.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
# The sandbox runs Debian's /usr/bin/python3 with /usr bound read-only, so the packages code may import
# come from Debian (built and signed there, no compiler in the image); pyflakes serves code-analysis.
# Extend the list at build time with --build-arg PYTHON_DEBIAN_PACKAGES="...". Packages a task installs
# with pip go to the worker's own package directory under the workspace, not into /usr.
# util-linux (prlimit, setpriv) is already in the base image as an essential package.
ARG PYTHON_DEBIAN_PACKAGES="python3-numpy python3-pandas python3-matplotlib python3-pyflakes"
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        tini ca-certificates bubblewrap \
        python3 python3-pip \
        ${PYTHON_DEBIAN_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /workspace \
    && chown node:node /workspace
WORKDIR /app
ENV NODE_ENV=production \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLEET_CONFIG=/app/deploy/docker/fleet.container.yaml \
    WORKER_PYTHON_PORT=3001 \
    FLEET_HEALTH_URL=http://127.0.0.1:3001/health
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node deploy/docker/fleet.container.yaml deploy/docker/healthcheck.mjs ./deploy/docker/
USER node
VOLUME ["/workspace"]
EXPOSE 3001
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/main.js"]
CMD ["worker", "python-sandbox"]
