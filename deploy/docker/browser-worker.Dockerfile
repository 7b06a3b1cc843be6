# syntax=docker/dockerfile:1
# browser-worker: a pool of Debian Chromium processes driven by playwright-core, port 3003.
# Build from the repository root:  docker build -f deploy/docker/browser-worker.Dockerfile -t fleet-browser-worker .
#
# Rendering: the spec's CPU-only Chromium flags, for the usual Linux server without a GPU. The worker's
# defaults (browser_config.software_rendering + cpu_optimized) resolve to that list, and CHROME_FLAGS
# carries it too, as in the spec's Dockerfile. For a GPU host, build with the EGL/Mesa drivers and the
# spec's GPU flags:
#   docker build -f deploy/docker/browser-worker.Dockerfile --build-arg GPU_DRIVERS=true \
#     --build-arg CHROME_FLAGS="--use-gl=angle --use-angle=gl-egl --enable-gpu-rasterization --ignore-gpu-blocklist" .
# and run it with browser_config.performance_mode: gpu (deploy/fleet.browser-gpu.yaml) and the GPU
# device: deploy/compose.gpu.yaml, deploy/k8s/overlays/gpu.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
ARG GPU_DRIVERS=false
# Debian's chromium (a distribution package with security updates; no vendor apt repository), with its
# headless shell, which the worker launches by default (faster to start, half the memory; point
# BROWSER_EXECUTABLE_PATH at /usr/bin/chromium for the full browser), and fonts for Latin, CJK and
# emoji pages, so screenshots and PDFs do not show empty boxes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        tini ca-certificates chromium chromium-headless-shell \
        fonts-liberation fonts-dejavu-core fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji \
    && if [ "$GPU_DRIVERS" = "true" ]; then \
        apt-get install -y --no-install-recommends libegl1 libgles2 libgl1-mesa-dri mesa-vulkan-drivers; \
    fi \
    && rm -rf /var/lib/apt/lists/*
ARG CHROME_FLAGS="--disable-gpu --disable-software-rasterizer --disable-dev-shm-usage --no-sandbox --disable-setuid-sandbox --disable-accelerated-2d-canvas --disable-accelerated-jpeg-decoding --disable-accelerated-mjpeg-decode --disable-accelerated-video-decode --memory-pressure-off --disable-background-timer-throttling --disable-renderer-backgrounding --disable-backgrounding-occluded-windows"
WORKDIR /app
ENV NODE_ENV=production \
    CHROME_FLAGS=${CHROME_FLAGS} \
    BROWSER_EXECUTABLE_PATH=/usr/lib/chromium/chromium-headless-shell \
    BROWSER_POOL_SIZE=3 \
    BROWSER_MEMORY_LIMIT=512 \
    BROWSER_AUTO_RESTART=true \
    BROWSER_SOFTWARE_RENDERING=true \
    BROWSER_CPU_OPTIMIZED=true \
    FLEET_CONFIG=/app/deploy/docker/fleet.container.yaml \
    WORKER_BROWSER_PORT=3003 \
    FLEET_HEALTH_URL=http://127.0.0.1:3003/health
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node deploy/docker/fleet.container.yaml deploy/docker/healthcheck.mjs ./deploy/docker/
USER node
EXPOSE 3003
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/main.js"]
CMD ["worker", "browser-worker"]
