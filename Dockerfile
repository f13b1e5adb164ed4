# The hotline service: `hotline serve` (AMI bridge, voice menu, AudioSocket server,
# web console) and the `hotline asterisk-secrets` init job of docker-compose.yml.

# --- the Mandarin speech model, fetched once at build time and verified -----------
# Never downloaded at run time. The checksums are the project's copy
# (asr/engine/checksums/), so a changed or truncated download fails the build.
# VOSK_MODEL_URL may point at a local mirror.
FROM debian:bookworm-slim AS speech-model
ARG VOSK_MODEL=vosk-model-small-cn-0.22
ARG VOSK_MODEL_URL=https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       ca-certificates curl unzip \
    && rm -rf /var/lib/apt/lists/*
COPY asr/engine/checksums/${VOSK_MODEL}.sha256 /tmp/model.sha256
RUN curl -fsSL --retry 3 -o /tmp/model.zip "${VOSK_MODEL_URL}" \
    && mkdir -p /opt/models \
    && unzip -q /tmp/model.zip -d /opt/models \
    && cd /opt/models/${VOSK_MODEL} \
    && sha256sum -c /tmp/model.sha256 \
    && rm /tmp/model.zip

# --- the service ------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# espeak-ng speaks the prompts that have no recording (and knowledge-base answers);
# sox resamples them to the 8 kHz of the phone line and renders the hold music.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*

# Installed into site-packages, the package cannot find config/ next to itself:
# HOTLINE_CONFIG, HOTLINE_KNOWLEDGE_DIR and HOTLINE_ROUTING_MODEL point at the copy
# in /app (docker-compose.yml mounts the live settings file).
ARG VOSK_MODEL=vosk-model-small-cn-0.22
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOTLINE_CONFIG=/app/config/hotline.toml \
    HOTLINE_KNOWLEDGE_DIR=/app/config/knowledge \
    HOTLINE_ROUTING_MODEL=/app/config/routing/model.json.gz \
    HOTLINE_ASR_MODEL_PATH=/opt/models/${VOSK_MODEL}

COPY --from=speech-model /opt/models /opt/models
WORKDIR /app
# .dockerignore keeps out the venv, tests, caches and config/asterisk/secrets.
COPY . .
# The spill folder ([calls] spill_dir) exists in the image, owned by the service's
# user, so the named volume compose mounts there starts with that ownership.
RUN pip install . \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin hotline \
    && mkdir -p /var/tmp/hotline-spill && chown hotline:hotline /var/tmp/hotline-spill

# The sounds Asterisk plays, made offline from the settings at build time (README,
# "Prompts and hold music"): the keypad menu's prompts, app_queue's position and wait
# announcements and its Mandarin number words, spoken by espeak-ng, and the hold music,
# composed with sox; recordings in config/prompts/ win. docker-compose.yml's
# hotline-sounds job puts them into Asterisk's volumes, mounted at /srv/asterisk-data,
# which belongs to the service's user so the volumes start with that ownership.
RUN hotline prompts build --out /opt/hotline/asterisk-data \
    && mkdir -p /srv/asterisk-data/sounds /srv/asterisk-data/moh \
    && chown -R hotline:hotline /srv/asterisk-data

USER hotline
ENTRYPOINT ["hotline"]
CMD ["serve"]
