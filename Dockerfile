# syntax=docker/dockerfile:1
# One image for the four services (setup, master, optimizer, vms), the migrations and the edge
# agent: `edgectl serve NAME`, `edgectl migrate`, `edgectl agent ...`.
#   docker build -t edge-platform .                  # services + agent (no edge extra)
#   docker build --target edge -t edge-platform-edge .  # + torch/ultralytics for the YOLO worker
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed non-root uid, so that Kubernetes' runAsNonRoot can check it and volumes can be
# prepared for it (fsGroup 10001). Named volumes mounted on /var/lib/edge/* start owned by it.
RUN groupadd --system --gid 10001 edge \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/edge edge \
 && mkdir -p /var/lib/edge/master /var/lib/edge/agent \
 && chown -R edge:edge /var/lib/edge
WORKDIR /opt/edge-platform
# The whole build context (trimmed by .dockerignore) is installed as a regular, non-editable
# package, so migrations and package data come from site-packages like in any deployment.
COPY . /tmp/src
# detools (binary deltas) is published as source only: its C and C++ extension needs compilers,
# which the slim image lacks; they are installed for this step and removed after it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
 && pip install /tmp/src \
 && apt-get purge -y --auto-remove gcc g++ libc6-dev \
 && rm -rf /tmp/src /var/lib/apt/lists/*
USER 10001:10001
WORKDIR /var/lib/edge
EXPOSE 8001 8002 8003 6432 8004
ENTRYPOINT ["edgectl"]
CMD ["--help"]

# The edge programs with the heavy `edge` extra (torch, ultralytics, OpenCV). Pass
# --build-arg PIP_EXTRA_INDEX_URL=<a CPU wheel index> to avoid the CUDA build of torch.
FROM base AS edge
ARG PIP_EXTRA_INDEX_URL=""
USER root
# OpenCV (pulled in by ultralytics) needs these shared libraries even when headless.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
COPY . /tmp/src
RUN PIP_EXTRA_INDEX_URL="${PIP_EXTRA_INDEX_URL}" pip install "/tmp/src[edge]" && rm -rf /tmp/src
USER 10001:10001
