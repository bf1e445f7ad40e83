FROM python:3.11-slim
WORKDIR /srv/birthday
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY alembic alembic
COPY templates templates
COPY static static
RUN pip install --no-cache-dir -e '.[postgres,ray]'
ENV BIRTHDAY_DATA_DIR=/data BIRTHDAY_MODELS_DIR=/models
EXPOSE 8000
CMD ["python", "-c", "from app.main import create_app; from app.serving import serve; serve(create_app(), '0.0.0.0', 8000)"]
