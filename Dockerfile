FROM python:3.11-slim
WORKDIR /srv/birthday
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY alembic alembic
COPY templates templates
COPY static static
RUN pip install --no-cache-dir -e '.[postgres,ray,mnist]'
# The container binds every interface, so the settings say so: tokens are required (create the first
# with `birthday annotator add NAME --role admin`) and code uploads are off unless allowed.
ENV BIRTHDAY_DATA_DIR=/data BIRTHDAY_MODELS_DIR=/models BIRTHDAY_HOST=0.0.0.0 BIRTHDAY_PORT=8000
EXPOSE 8000
CMD ["birthday", "serve"]
