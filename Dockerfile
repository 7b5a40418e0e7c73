# Production image: `sortace-cds serve` as a non-root user. Build: docker build -t sortace-cds .
# Run with a config file (production profile): docker run -v $PWD/sortace.toml:/config/sortace.toml:ro \
#   -e SORTACE_CONFIG=/config/sortace.toml -p 8080:8080 sortace-cds
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cds ./cds
COPY cards ./cards
# Only the runtime dependencies: no test tools in the image.
RUN python -m pip install --no-cache-dir --prefix=/install .

FROM ${BASE}
RUN groupadd --system --gid 10001 sortace \
    && useradd --system --uid 10001 --gid sortace --home-dir /data --no-create-home --shell /usr/sbin/nologin sortace \
    && mkdir -p /data \
    && chown sortace:sortace /data
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1 \
    SORTACE_PROFILE=production \
    HOME=/data \
    SORTACE_DATA_DIR=/data \
    SORTACE_SERVER__HOST=0.0.0.0 \
    SORTACE_SERVER__PORT=8080
USER 10001:10001
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["sortace-cds"]
CMD ["serve"]
