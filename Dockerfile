# One image for every service of the pipeline; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
WORKDIR /app

# torch first, from the CPU index: the default index would pull several GB of CUDA.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The pipeline's code only: bench/ and research/ run from a checkout, never in the image.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY ops ./ops
RUN pip install --no-cache-dir .
# The classifier's ONNX graphs, exported and quantised from the packaged model at build time: a
# worker starts without building them, and the image never needs a writable cache.
ENV MODEL_CACHE_DIR=/opt/review-intelligence/onnx
RUN python -m services.classifier.onnx_build

RUN useradd --create-home --uid 10001 reviews \
    && mkdir -p /var/cache/review-api && chown reviews /var/cache/review-api
USER reviews
