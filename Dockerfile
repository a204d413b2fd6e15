# Propylon with the `distributed` extra (PostgreSQL, Redis, procrastinate), for compose.yaml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[distributed]'
# the data dir (a volume shared by every process in compose.yaml): writable by the user
RUN mkdir -p /var/lib/propylon && chown nobody /var/lib/propylon
USER nobody
ENTRYPOINT ["propylon"]
