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
RUN apt-get update && apt-get install -y --no-install-recommends tini libjemalloc2 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(find /usr/lib -name libjemalloc.so.2 | head -n 1)" /usr/local/lib/libjemalloc.so.2
# jemalloc instead of glibc's malloc: LevelDB compactions (dedup's stores) leave glibc's heap
# fragmented, ~40 MB of RSS per million keys written that is never given back; jemalloc returns
# it (dirty pages purged after 1 s by its background thread). bench:dedup reads MALLOC_CONF here.
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0
WORKDIR /app
COPY --from=build --chown=1000:1000 /out /app
USER 1000
EXPOSE 8080 9090
# tini reaps children and forwards SIGTERM; node runs directly (not through npm/pnpm, which
# would swallow the signal) so graceful shutdown works.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "dist/main.js"]
