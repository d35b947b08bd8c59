# syntax=docker/dockerfile:1
# dbx-gateway as a container: build with `docker build -t dbx-gateway .`
# Listens on 0.0.0.0:8080 inside the container; the gateway refuses to start there without
# inbound keys (DBX_GATEWAY_CONFIG with inboundKeys) unless --allow-unauthenticated-network is given.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
COPY scripts/write-help.mjs ./scripts/
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# tini reaps children (az, databricks) and forwards SIGTERM/SIGINT/SIGHUP to the gateway.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# Non-root, and nothing written outside /tmp (run with --read-only --tmpfs /tmp).
USER node
ENV NODE_ENV=production \
    HOME=/tmp \
    DBX_GATEWAY_HOST=0.0.0.0 \
    DBX_GATEWAY_PORT=8080 \
    DBX_GATEWAY_CONFIG=/config/dbx-gateway.yaml
EXPOSE 8080
# No curl in the image: Node itself probes /healthz.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.DBX_GATEWAY_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/dbx-gateway.cjs"]
CMD ["serve", "--no-profiles"]
