# syntax=docker/dockerfile:1
# One image for every role: `api`, `migrate`, `worker`, `ray-head`, `ray-worker` (see
# docker/entrypoint.sh and the README's Deployment section).
#
#   docker build -t alto-tune .                                  # CPU torch
#   docker build --build-arg TORCH_VARIANT=cu126 -t alto-tune .  # CUDA torch for GPU nodes

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

# A wheel index under https://download.pytorch.org/whl/: cpu, or a CUDA build that PyTorch
# publishes for the torch version in constraints.txt (cu126, cu128, ...).
ARG TORCH_VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# torch first, from PyTorch's index for the variant, at the version constraints.txt pins;
# PyPI's Linux wheel would be a CUDA build whatever the variant. --no-deps leaves its
# dependencies (and a CUDA build's nvidia-* wheels) to the install below, which takes them
# from PyPI. constraints.txt need not be edited: its torch==X matches X+cu126 as well,
# since a pin without a local label ignores the candidate's label.
COPY constraints.txt ./
RUN torch_version="$(sed -n 's/^torch==//p' constraints.txt)" \
    && test -n "$torch_version" \
    && pip install --no-deps --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        "torch==${torch_version}"

COPY pyproject.toml README.md ./
COPY alto_core ./alto_core
COPY workers ./workers
COPY service ./service
COPY migrations ./migrations
RUN pip install -c constraints.txt . \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"


FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

# A fixed uid, so a volume prepared on the host (or by a Kubernetes securityContext)
# can be given to it.
RUN groupadd --system --gid 10001 alto \
    && useradd --system --uid 10001 --gid alto --create-home --home-dir /home/alto \
        --shell /usr/sbin/nologin alto \
    && mkdir -p /data \
    && chown alto:alto /data

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/alto-entrypoint
COPY --chmod=0644 docker/healthcheck.py /usr/local/bin/alto-healthcheck

# /data (mount a volume there) holds the default SQLite database, data sets, Ray Tune's
# results and checkpoints; all Ray nodes need it at the same path, since trials read the
# data set path the dispatcher gives them. With ALTO_HOST=0.0.0.0, `alto serve` refuses
# to start until an API token exists (README: Deployment).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ALTO_DATA_DIR=/data \
    ALTO_HOST=0.0.0.0 \
    ALTO_PORT=8000 \
    ALTO_RUN_DIR=/tmp/alto \
    RAY_USAGE_STATS_ENABLED=0

USER alto
WORKDIR /home/alto
EXPOSE 8000 6379

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/opt/venv/bin/python", "/usr/local/bin/alto-healthcheck"]
ENTRYPOINT ["/usr/local/bin/alto-entrypoint"]
CMD ["api"]
