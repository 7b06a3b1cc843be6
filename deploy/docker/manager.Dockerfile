# syntax=docker/dockerfile:1
# Fleet manager: HTTP API, dashboard, /metrics, the queue and the dispatcher (port 3000).
# Build from the repository root:  docker build -f deploy/docker/manager.Dockerfile -t fleet-manager .
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
# tini reaps the children the manager may supervise and forwards SIGTERM so a drain can finish.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    FLEET_CONFIG=/app/deploy/docker/fleet.container.yaml \
    FLEET_HOST=0.0.0.0 \
    FLEET_PORT=3000 \
    FLEET_HEALTH_URL=http://127.0.0.1:3000/health
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node deploy/docker/fleet.container.yaml deploy/docker/healthcheck.mjs ./deploy/docker/
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/main.js"]
CMD ["manager"]
