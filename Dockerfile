# teal runs as TypeScript through tsx (no build step), so the image is the checkout plus
# its dependencies. tsx is needed at run time, hence a full `npm ci`.
FROM node:20-slim
ENV NODE_ENV=production \
    TEAL_API_HOST=0.0.0.0 \
    TEAL_API_PORT=8080
WORKDIR /app
COPY . .
RUN npm ci --no-audit --no-fund --include=dev && npm cache clean --force
USER node
EXPOSE 8080
CMD ["node", "bin/teal.mjs", "run"]
