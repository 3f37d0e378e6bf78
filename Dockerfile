# pgkeel image: PostgreSQL 15 from Debian's own packages + pgkeel, run as postgres (uid/gid 999).
# Not built in CI here (no Docker engine on our machines); see docs/kubernetes.md.
#
#   docker build -t ghcr.io/pgkeel/pgkeel:0.1.0 .
#
# The manifests from `pgkeel render k8s` run it with a read-only root filesystem: every path the
# agent or postgres writes is a volume (/var/lib/postgresql/data, /tmp, /var/run/postgresql).

ARG DEBIAN=bookworm-slim

FROM debian:${DEBIAN} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/pgkeel \
 && /opt/pgkeel/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && /opt/pgkeel/bin/python -m compileall -q /opt/pgkeel

# pgkeel_fence: the leader lease enforced inside postgres (ext/pgkeel_fence), built with PGXS
# against the same Debian PostgreSQL 15 headers as the runtime packages below.
FROM debian:${DEBIAN} AS fence
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-server-dev-15 libkrb5-dev make gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY ext/pgkeel_fence /src/pgkeel_fence
RUN make -C /src/pgkeel_fence PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config with_llvm=no \
 && make -C /src/pgkeel_fence PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config with_llvm=no install DESTDIR=/out

FROM debian:${DEBIAN}
# Debian's postgresql-common creates the postgres user with the next free system uid; create it
# first with 999 so the uid is fixed and matches runAsUser/fsGroup in the StatefulSet.
# No "main" cluster: the agent runs initdb (or pg_basebackup) into PGDATA itself.
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --no-create-home \
      --shell /usr/sbin/nologin postgres \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/pgkeel.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15 python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql \
 && test "$(id -u postgres):$(id -g postgres)" = "999:999"

COPY --from=build /opt/pgkeel /opt/pgkeel
COPY --from=fence /out/usr/lib/postgresql/15/lib/pgkeel_fence.so /usr/lib/postgresql/15/lib/
COPY --from=fence /out/usr/share/postgresql/15/extension/pgkeel_fence* /usr/share/postgresql/15/extension/

ENV PATH=/opt/pgkeel/bin:/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data/pgdata \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8

USER 999:999
WORKDIR /var/lib/postgresql
EXPOSE 5432 8008
ENTRYPOINT ["pgkeel", "agent", "--kubernetes"]
