# syntax=docker/dockerfile:1
#
# The Parley image: every service and the migration CLI, production dependencies only.
#
#   docker build -t parley:0.1.0 .
#   docker run --rm parley:0.1.0 node services/edge/dist/bundle/main.js   # one service per container
#   docker run --rm parley:0.1.0 node packages/db/dist/cli.js migrate  # schema migrations
#
# The service is chosen by the command, as the Helm chart does. `--build-arg SERVICES=edge`
# builds an image holding only the named services (plus the migration CLI).
# `--target dev` is the image Tilt uses: the whole workspace with dev tools, for live update.

ARG NODE_VERSION=24.19.0

# ---- build: install the workspace from the lockfile, compile it and bundle each service -------
FROM node:${NODE_VERSION}-bookworm-slim AS build
ARG PNPM_VERSION=10.34.9
RUN npm install --global --no-fund --no-audit "pnpm@${PNPM_VERSION}"
# A fixed store location, so the dev stage can hand it to the unprivileged user.
ENV CI=true npm_config_store_dir=/pnpm-store
WORKDIR /src
# Only the lockfile decides what is fetched, so this layer stays cached until it changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch
COPY . .
RUN pnpm install --frozen-lockfile --offline && pnpm run build

# ---- deploy: one self-contained folder per service with its production dependencies ---------
FROM build AS deploy
ARG SERVICES="edge identity secrets tenant-data audit lifecycle voice-orchestrator integrations"
# EMBEDDED_TTS=false leaves out the GPL-3.0 eSpeak NG package (see THIRD_PARTY_NOTICES.md): such an
# image must run voice-orchestrator with PARLEY_TTS_EMBEDDED_WORKERS=0, or it refuses to start.
ARG EMBEDDED_TTS=true
# `pnpm deploy` copies a package with its production dependencies (workspace packages included)
# into a folder of its own; the layout mirrors the repository, so `node services/<name>/dist/bundle/main.js`
# (the bundle `pnpm run build` made, which tests and `npm start` run too) and the migration CLI's
# search for services/*/package.json work from /app as they do from the repo. The node_modules stay:
# the bundle loads a few packages from there (scripts/bundle-services.mjs says which).
# Then only compiled JavaScript stays: no TypeScript sources, source maps or build bookkeeping.
RUN set -eu; \
    for service in ${SERVICES}; do \
      pnpm --filter "@parley/${service}" deploy --legacy --prod --offline "/app/services/${service}"; \
    done; \
    pnpm --filter @parley/db deploy --legacy --prod --offline /app/packages/db; \
    case "$(printf %s "${EMBEDDED_TTS}" | tr '[:upper:]' '[:lower:]')" in \
      true|1|yes|on) ;; \
      false|0|no|off) rm -rf /app/services/voice-orchestrator/node_modules/@echogarden \
        /app/services/voice-orchestrator/node_modules/.pnpm/@echogarden+espeak-ng-emscripten@* ;; \
      *) echo "EMBEDDED_TTS must be true or false, got ${EMBEDDED_TTS}" >&2; exit 1 ;; \
    esac; \
    find /app -depth \( \( -name '*.map' -not -path '*/dist/bundle/*' \) -o -name '*.tsbuildinfo' -o -name 'tsconfig*.json' \) -delete; \
    find /app -path '*/node_modules' -prune -o -type d -name src -prune -exec rm -rf {} +; \
    find /app -path '*/node_modules/@parley/*/src' -prune -exec rm -rf {} +

# ---- dev: the whole workspace, for Tilt's live update (never for production) ----------------
FROM build AS dev
# Tilt syncs sources in and runs `pnpm install` / `pnpm run build` as the runtime user.
RUN chown -R node:node /src /pnpm-store
USER 1000:1000
ENV NODE_ENV=development
CMD ["node", "-e", "console.error('choose a service: node services/<name>/dist/bundle/main.js'); process.exit(64)"]

# ---- runtime: Node and the deployed folders, nothing else -----------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# No package managers at run time: nothing in the container can fetch or build code.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
# The build's version (release tag or commit), reported as service.version in traces, metrics
# and logs: `docker build --build-arg PARLEY_BUILD_VERSION=$(git describe --always) .`
ARG PARLEY_BUILD_VERSION=""
ENV PARLEY_BUILD_VERSION=${PARLEY_BUILD_VERSION}
WORKDIR /app
# Owned by root and read-only for the service user: a compromised process cannot alter its code.
COPY --from=deploy --chown=root:root /app /app
# The image's unprivileged "node" user, numeric so the kubelet can verify runAsNonRoot.
USER 1000:1000
EXPOSE 8443 8081 8080
# No entrypoint wrapper: node is PID 1 and receives SIGTERM itself, which the services handle
# by draining calls in flight (PARLEY_SHUTDOWN_GRACE_MS).
CMD ["node", "-e", "console.error('choose a service: node services/<name>/dist/bundle/main.js'); process.exit(64)"]
