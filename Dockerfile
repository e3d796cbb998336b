# dreambot: the Discord bot, the console and the CLI in one image.
#   docker build -t dreambot .
#   docker run --env-file .env -v dreambot-data:/data dreambot            # the Discord bot
#   docker run -it -v dreambot-data:/data dreambot dreambot console       # the local chat
# Extra weights (e.g. GoogLeNet) can be baked in: put googlenet-1378be20.pth in ./weights/
# before building; it is copied into the torch cache the image uses.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TORCH_HOME=/opt/torch \
    DATABASE_URL=sqlite+aiosqlite:////data/dreambot.db \
    RESULTS_DIR=/data/results

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY core ./core
COPY bot ./bot
COPY migrations ./migrations
# A plain install, as from a wheel: the migrations, templates and data files ship inside the
# package, so nothing is read from the source folder, which is removed. The postgres extra
# (asyncpg) lets DATABASE_URL point at PostgreSQL instead of the SQLite file.
RUN pip install '.[postgres]' && cd / && rm -rf /src && mkdir -p /data "$TORCH_HOME/hub/checkpoints"
WORKDIR /data
COPY weights/ /opt/torch/hub/checkpoints/

RUN useradd --create-home dreambot && chown -R dreambot /data
USER dreambot
VOLUME /data
CMD ["dreambot", "run"]
