# Meterline: one image for every role (web, worker, beat, the one-shot migrate job).
# Runtime dependencies only: requirements.in, pinned by requirements.lock (dev tools are left out).

# Build stage: the compiled OTLP span reader (native/spanwire, a C extension) as a wheel, so the
# compiler stays out of the image that runs.
FROM python:3.11.15-slim-trixie AS spanwire
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY native/spanwire /src/spanwire
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels /src/spanwire

FROM python:3.11.15-slim-trixie

# METERLINE_VAR_DIR: STATIC_ROOT lives under it, so collectstatic (build) and whitenoise (run) must
# agree on it. WEB_CONCURRENCY: gunicorn's worker count when --workers is not given.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DJANGO_SETTINGS_MODULE=config.settings \
    METERLINE_VAR_DIR=/app/var \
    WEB_CONCURRENCY=2

# A home directory so gunicorn can place its control socket (~/.gunicorn) as a non-root user.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin meterline

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change.
COPY requirements.in requirements.lock ./
RUN pip install -r requirements.in -c requirements.lock
COPY --from=spanwire /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && python -c "import meterline_spanwire"

# The code stays owned by root (the app cannot rewrite itself); only var/ is the app's to write.
COPY . .
RUN mkdir -p /app/var && chown meterline:meterline /app/var

USER meterline

# The key is a placeholder for this step only; settings never read the DB or ClickHouse here.
RUN SECRET_KEY=collectstatic-build-only python manage.py collectstatic --noinput -v0

# gunicorn is not meant to face clients: a worker thread reads its request itself, so a few slow
# clients (slowloris) hold every thread. docker-compose.yml publishes nginx instead
# (ops/nginx/nginx.conf.template), which buffers whole requests; port 8000 stays on the compose
# network. gunicorn does not trust forwarded headers from nginx's address (--forwarded-allow-ips
# is left at 127.0.0.1); Django reads X-Forwarded-Proto when METERLINE_TRUST_X_FORWARDED_PROTO is set.
EXPOSE 8000

CMD ["gunicorn", "config.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--threads", "4", \
     "--timeout", "60", \
     "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-"]
