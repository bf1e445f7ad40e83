# The image of every service in docker-compose.yml: the API (`birthday serve`), Ray's head and its
# workers.

# Stage 1: the dependencies, in a virtual environment. hnswlib has no wheel on PyPI (0.8.0 is a
# source distribution only), so pip compiles it: this stage has g++ (python:3.11-slim ships
# Python's headers but no compiler); the final image gets the built environment and no compiler.
FROM python:3.11-slim AS deps
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
# hnswlib compiles with -march=native unless told not to: code for the build machine's CPU, which
# a GPU worker or another host pulling the image may lack (an illegal instruction at import).
ENV PATH=/opt/venv/bin:$PATH HNSWLIB_NO_NATIVE=1
# Only pyproject.toml comes in here, and the requirements are read from it (build system,
# dependencies, the postgres, ray and mnist extras): this layer, PyTorch and all (~6 GB), is
# rebuilt when the dependencies change, not when the code or the README does.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb')); \
extras = p['project']['optional-dependencies']; \
print('\n'.join(p['build-system']['requires'] + p['project']['dependencies'] \
+ extras['postgres'] + extras['ray'] + extras['mnist']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# Stage 2: the code on top, run as an unprivileged user.
FROM python:3.11-slim
# The user jobs and the API run as. Its uid should own whatever is bind-mounted at /models and
# /data: docker-compose.yml passes BIRTHDAY_UID (default 1000, the first user of most hosts).
ARG BIRTHDAY_UID=1000
RUN if [ "$BIRTHDAY_UID" = 0 ]; then \
        echo "BIRTHDAY_UID=0 would run everything as root: give ./models to another uid" >&2; \
        exit 1; \
    fi \
    && useradd --create-home --uid "$BIRTHDAY_UID" birthday \
    && mkdir -p /data /models \
    && chown birthday:birthday /data /models
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /srv/birthday
COPY pyproject.toml README.md alembic.ini ./
COPY alembic alembic
COPY templates templates
COPY static static
COPY app app
# Editable, as scripts/install.sh installs it: the app finds templates/, static/ and alembic/
# beside app/. The dependencies are in already (setuptools too), so this needs no network.
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
# The built-in generators, registered at start-up, so that a fresh install has something to
# audit; writable, since the digit classifier is trained into this directory on first use.
COPY --chown=birthday:birthday models/builtin /models/builtin
# The container binds every interface, so the settings say so: tokens are required (create the first
# with `birthday annotator add NAME --role admin`) and code uploads are off unless allowed.
ENV BIRTHDAY_DATA_DIR=/data BIRTHDAY_MODELS_DIR=/models BIRTHDAY_HOST=0.0.0.0 BIRTHDAY_PORT=8000
USER birthday
EXPOSE 8000
# The API's liveness (slim has no curl). Start-up imports PyTorch and migrates the store: allow
# for it. Ray's containers run `ray start` from this image instead: docker-compose.yml replaces
# the check for them.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BIRTHDAY_PORT', '8000'), timeout=8)"
CMD ["birthday", "serve"]
