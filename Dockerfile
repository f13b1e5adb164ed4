# The hotline service: `hotline serve` (AMI bridge, voice menu, AudioSocket server,
# web console) and the `hotline asterisk-secrets` init job of docker-compose.yml.
FROM python:3.11-slim-bookworm

# Installed into site-packages, the package cannot find config/ next to itself:
# HOTLINE_CONFIG points at the copy in /app (docker-compose.yml mounts the live file).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOTLINE_CONFIG=/app/config/hotline.toml \
    HOTLINE_KNOWLEDGE_DIR=/app/config/knowledge

WORKDIR /app
# .dockerignore keeps out the venv, tests, caches and config/asterisk/secrets.
COPY . .
RUN pip install . \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin hotline

USER hotline
ENTRYPOINT ["hotline"]
CMD ["serve"]
