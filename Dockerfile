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
# No ONNX graph is prebuilt: the default backend (auto: torch-bf16, else torch-fp32) runs the model in
# PyTorch. CLASSIFIER_BACKEND=onnx-int8 or onnx-fp32 builds its graph at first use, into MODEL_CACHE_DIR or the
# reviews user's ~/.cache, from the same packaged model.
RUN pip install --no-cache-dir .

RUN useradd --create-home --uid 10001 reviews \
    && mkdir -p /var/cache/review-api && chown reviews /var/cache/review-api
USER reviews
