# The service's own image. It drives the engine it runs next to through the mounted socket
# (README, "Running the service in Docker"; tests/test_image.py runs exactly that):
#   docker build -t hoody-reconciler .                                  # FROM python:3.12-slim
#   docker build --build-arg BASE=hoody-base:bookworm -t hoody-reconciler .  # no registry:
#                                       # the Debian base of scripts/setup-base-image
# With a Debian base that has no Python, the interpreter comes from Debian's packages.
ARG BASE=python:3.12-slim

# What runs: Python (the base's own, else Debian's python3), git for the mirrors, Caddy
# for `proxy:` with `admin: null` (hoody starts it), tini as PID 1 (forwards SIGTERM to
# hoody and reaps what it spawns), a non-root user.
FROM ${BASE} AS runtime
RUN set -eux; \
    pkgs="git tini caddy"; \
    command -v python3 >/dev/null || pkgs="$pkgs python3"; \
    apt-get update; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 hoody; \
    useradd --system --uid 10001 --gid hoody --create-home --home-dir /home/hoody \
      --shell /usr/sbin/nologin hoody; \
    mkdir -p /state /etc/hoody; \
    chown hoody:hoody /state

# The virtual environment is made here and copied: no build tools in the image.
FROM runtime AS build
RUN set -eux; \
    if ! python3 -c 'import ensurepip' 2>/dev/null; then \
      apt-get update; apt-get install -y --no-install-recommends python3-venv; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/hoody
# Dependencies first, from pyproject.toml alone: this layer is reused until it changes.
COPY pyproject.toml /src/
RUN python3 -c 'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["postgres"]))' >/src/deps.txt \
 && /opt/hoody/bin/pip install --no-cache-dir --disable-pip-version-check -r /src/deps.txt
COPY README.md /src/
COPY reconciler /src/reconciler
COPY webhooks /src/webhooks
COPY exporters /src/exporters
RUN /opt/hoody/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src \
 && /opt/hoody/bin/pip uninstall -y -q pip \
 && /opt/hoody/bin/hoody --version

FROM runtime
COPY --from=build /opt/hoody /opt/hoody
COPY scripts/docker-entrypoint /usr/local/bin/hoody-entrypoint
ENV PATH=/opt/hoody/bin:$PATH \
    HOODY_CONFIG=/etc/hoody/hoody.yaml \
    PYTHONUNBUFFERED=1
# Socket access is root-equivalent: whoever can use the engine's socket can start a
# privileged container. Running as `hoody` only keeps a bug in hoody itself from being
# root in this container; give it the socket's group: --group-add "$(stat -c %g
# /var/run/docker.sock)".
USER hoody
WORKDIR /state
VOLUME ["/state"]
EXPOSE 8080
# `docker stop` sends SIGTERM: hoody stops accepting requests and firing jobs, gives running
# jobs scheduler.shutdown_grace (30 s) to finish, records the rest interrupted and exits 0;
# environments keep running. Give it longer than that: docker stop -t 45.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["hoody", "healthcheck"]
ENTRYPOINT ["tini", "--", "hoody-entrypoint"]
CMD ["serve"]
