# The service's own image. It drives the host's engine through the mounted socket:
#   docker build -t hoody-reconciler .
#   docker run -d --name hoody -p 8080:8080 \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v hoody-state:/state -v "$PWD/hoody.yaml:/etc/hoody/hoody.yaml:ro" \
#     hoody-reconciler
# In hoody.yaml set `state_dir: /state`, `server: {host: 0.0.0.0}` and
# `docker: {publish_host: <the host's address>}`.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY webhooks ./webhooks
COPY exporters ./exporters
RUN pip install --no-cache-dir .
ENV HOODY_CONFIG=/etc/hoody/hoody.yaml
EXPOSE 8080
VOLUME ["/state"]
ENTRYPOINT ["hoody"]
CMD ["serve"]
