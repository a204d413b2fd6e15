# Propylon with the `distributed` extra (PostgreSQL, Redis, procrastinate), for compose.yaml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[distributed]'
USER nobody
ENTRYPOINT ["propylon"]
