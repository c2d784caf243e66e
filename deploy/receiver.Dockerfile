# The Express example receiver (examples/receivers/express.js) for
# deploy/docker-compose.yml. Build from the repository root.
FROM node:20-bookworm-slim
WORKDIR /app
COPY examples/receivers/package.json examples/receivers/package-lock.json ./
RUN npm ci --omit=dev
COPY examples/receivers/express.js ./
USER node
STOPSIGNAL SIGTERM
CMD ["node", "express.js"]
