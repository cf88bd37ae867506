# syntax=docker/dockerfile:1.7
# One image per service: docker build --build-arg SERVICE=dedup -t cdp/dedup .
# Debian slim in every stage, so native modules (classic-level) match the runtime libc.
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS base
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH
RUN npm install -g pnpm@10.34.9

# Dependencies first, from the lockfile only, so source edits do not refetch them.
FROM base AS deps
WORKDIR /src
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
RUN --mount=type=cache,id=pnpm,target=/pnpm/store pnpm fetch --frozen-lockfile

FROM deps AS build
ARG SERVICE
COPY . .
RUN --mount=type=cache,id=pnpm,target=/pnpm/store pnpm install --offline --frozen-lockfile
# The production build config: no tests, src/testing, src/bench or src/fixtures in dist/ (the dev
# `tsc -b` builds those too; tests and benches run them). scripts/check-prod-build.sh checks it.
RUN pnpm exec tsc -b services/${SERVICE}/tsconfig.build.json
# A self-contained folder: the service, its workspace libs (their dist/) and prod deps only.
RUN pnpm --filter @cdp/${SERVICE} deploy --prod --legacy /out

FROM ${NODE_IMAGE} AS runtime
ARG SERVICE
ENV NODE_ENV=production
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build --chown=1000:1000 /out /app
USER 1000
EXPOSE 8080 9090
# tini reaps children and forwards SIGTERM; node runs directly (not through npm/pnpm, which
# would swallow the signal) so graceful shutdown works.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "dist/main.js"]
