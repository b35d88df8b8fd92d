# teal's services (producer + consumer + control API) for docker-compose.yml.
# TypeScript runs through tsx, so the image carries the sources and no build output.
# The major .ci/run tests on (infra/tools/node.mjs): Node 26, the active LTS line.
FROM node:26-slim

WORKDIR /app
ENV TEAL_API_HOST=0.0.0.0 \
    TEAL_API_PORT=8080

# Only what teal runs from; the checkout's node_modules and .teal/ stay out.
COPY package.json package-lock.json tsconfig.json ./
COPY bin/ bin/
COPY packages/ packages/
COPY services/ services/
# Dev dependencies included: tsx runs teal at run time.
RUN rm -rf packages/*/node_modules services/*/node_modules \
 && npm ci --include=dev --no-audit --no-fund \
 && npm cache clean --force

USER node
EXPOSE 8080
CMD ["npx", "teal", "run"]
