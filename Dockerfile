# One image for every role: the command picks worker, beat, flower or sandbox.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY audiencesync ./audiencesync
COPY producers ./producers
COPY tasks ./tasks
COPY workers ./workers
RUN pip install --no-cache-dir . && useradd --create-home audiencesync
USER audiencesync
ENTRYPOINT ["audiencesync"]
CMD ["--help"]
