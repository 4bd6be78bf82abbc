# Yunkan (云勘): one image for every node. CJK fonts for watermarks and PDFs; non-root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    YUNKAN_DATA_DIR=/data YUNKAN_HOST=0.0.0.0 YUNKAN_PORT=8080

RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk fontconfig curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY server ./server
COPY signaling ./signaling
COPY recordings ./recordings
COPY web ./web
RUN pip install -c constraints.txt . \
 && useradd --system --uid 10001 --home /data yunkan \
 && mkdir -p /data && chown yunkan /data

USER yunkan
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["yunkan", "serve"]
