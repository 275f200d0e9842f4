# The x2face Gradio app in a container. Build and run:
#
#   docker build -t x2face .
#   docker run --gpus all -p 7860:7860 x2face     # the networks run on the CUDA GPU (NVIDIA Container Toolkit)
#   docker run -p 7860:7860 x2face                # no GPU: the same image runs them on the CPU
#
# then open http://localhost:7860. The install steps are docker/install.sh, which CI also runs
# (tests/test_docker_recipe.py). A smaller CPU-only image:
#   docker build --build-arg TORCH_SPEC="torch==2.13.0" \
#                --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t x2face-cpu .
# Other weights: docker run ... x2face python app.py --host 0.0.0.0 --weights owner/repo
FROM python:3.11-slim

ARG TORCH_SPEC="torch>=2.4"
ARG TORCH_INDEX_URL=""
# OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning (much faster on a shared or busy
# CPU, docs/speed.md); `docker run -e OMP_WAIT_POLICY=...` overrides it
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    HF_HOME=/home/x2face/.cache/huggingface \
    OMP_WAIT_POLICY=PASSIVE

RUN useradd --create-home --uid 1000 x2face
WORKDIR /app

# dependencies first (a layer that code changes do not invalidate)
COPY docker/install.sh docker/install.sh
COPY requirements.txt ./
RUN X2FACE_SYSTEM_DEPS=1 TORCH_SPEC="$TORCH_SPEC" TORCH_INDEX_URL="$TORCH_INDEX_URL" bash docker/install.sh deps

# the package, the app, its examples and the bundled demo weights
COPY pyproject.toml README.md ./
COPY x2face x2face
RUN bash docker/install.sh package
COPY app.py ./
COPY assets assets

USER x2face
EXPOSE 7860
CMD ["python", "app.py", "--host", "0.0.0.0", "--port", "7860"]
