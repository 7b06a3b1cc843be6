# syntax=docker/dockerfile:1
# figma-mcp worker: Figma REST client behind the task protocol (/ws) and MCP (POST /mcp), port 3002.
# Build from the repository root:  docker build -f deploy/docker/figma-mcp.Dockerfile -t fleet-figma-mcp .
# The token comes at run time (FIGMA_API_TOKEN, FIGMA_TEAM_ID), never at build time.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    FLEET_CONFIG=/app/deploy/docker/fleet.container.yaml \
    WORKER_FIGMA_PORT=3002 \
    FLEET_HEALTH_URL=http://127.0.0.1:3002/health
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node deploy/docker/fleet.container.yaml deploy/docker/healthcheck.mjs ./deploy/docker/
USER node
EXPOSE 3002
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/main.js"]
CMD ["worker", "figma-mcp"]
