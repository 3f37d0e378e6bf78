# pgkeel image: PostgreSQL 15 from Debian's own packages + pgkeel, run as postgres (uid/gid 999).
# Build it with `make image` (scripts/build_image.sh: podman, no registry needed); with docker:
#
#   docker build -t REGISTRY/pgkeel:TAG .          # then docker push, and render k8s --image
#
# Optional build input: a CA bundle for a TLS-inspecting or corporate proxy, as the build secret
# `build-ca` (podman/docker build --secret id=build-ca,src=/etc/ssl/certs/ca-certificates.crt .).
# It is mounted at /run/build-ca.crt for the RUN steps only; pip and apt trust it; no layer holds it.
#
# The manifests from `pgkeel render k8s` run it with a read-only root filesystem: every path the
# agent or postgres writes is a volume (/var/lib/postgresql/data, /tmp, /var/run/postgresql).

ARG DEBIAN=bookworm-slim

FROM debian:${DEBIAN} AS build
RUN --mount=type=secret,id=build-ca,target=/run/build-ca.crt \
    if [ -s /run/build-ca.crt ]; then echo 'Acquire::https::CAInfo "/run/build-ca.crt";' > /etc/apt/apt.conf.d/99build-ca; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/99build-ca
WORKDIR /src
# Dependencies first (their layer survives a change of src/): the runtime requirements of
# pyproject.toml, every package of their tree pinned by requirements.lock (which also pins the test
# tools; those stay out of the image).
COPY pyproject.toml requirements.lock ./
RUN --mount=type=secret,id=build-ca,target=/run/build-ca.crt \
    if [ -s /run/build-ca.crt ]; then export PIP_CERT=/run/build-ca.crt; fi \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > runtime.txt \
 && python3 -m venv /opt/pgkeel \
 && /opt/pgkeel/bin/pip install --no-cache-dir --disable-pip-version-check -c requirements.lock -r runtime.txt
COPY README.md ./
COPY src ./src
RUN --mount=type=secret,id=build-ca,target=/run/build-ca.crt \
    if [ -s /run/build-ca.crt ]; then export PIP_CERT=/run/build-ca.crt; fi \
 && /opt/pgkeel/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps . \
 && /opt/pgkeel/bin/pip check \
 && /opt/pgkeel/bin/python -c 'import re, sys, importlib.metadata as md; \
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower(); \
lock = {norm(n): v.strip() for n, _, v in (l.partition("==") for l in open("requirements.lock")) if v}; \
bad = [f"{d.name}=={d.version}" for d in md.distributions() \
       if norm(d.name) not in ("pgkeel", "pip", "setuptools") and lock.get(norm(d.name)) != d.version]; \
sys.exit("not as pinned in requirements.lock: " + " ".join(bad) if bad else 0)' \
 && /opt/pgkeel/bin/pip uninstall -q -y pip setuptools \
 && /opt/pgkeel/bin/python -m compileall -q /opt/pgkeel

# pgkeel_fence: the leader lease enforced inside postgres (ext/pgkeel_fence), built with PGXS
# against the same Debian PostgreSQL 15 headers as the runtime packages below.
FROM debian:${DEBIAN} AS fence
RUN --mount=type=secret,id=build-ca,target=/run/build-ca.crt \
    if [ -s /run/build-ca.crt ]; then echo 'Acquire::https::CAInfo "/run/build-ca.crt";' > /etc/apt/apt.conf.d/99build-ca; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-server-dev-15 libkrb5-dev make gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/99build-ca
COPY ext/pgkeel_fence /src/pgkeel_fence
RUN make -C /src/pgkeel_fence PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config with_llvm=no \
 && make -C /src/pgkeel_fence PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config with_llvm=no install DESTDIR=/out

FROM debian:${DEBIAN}
# Debian's postgresql-common creates the postgres user with the next free system uid; create it
# first with 999 so the uid is fixed and matches runAsUser/fsGroup in the StatefulSet.
# No "main" cluster: the agent runs initdb (or pg_basebackup) into PGDATA itself.
# dpkg skips docs, man pages and translations (as the official slim image does), and the JIT:
# llvmjit.so, its bitcode and LLVM are 155 MB of the image; without llvmjit.so PostgreSQL runs
# with JIT unavailable (jit = on then does nothing), which short OLTP queries never miss.
RUN --mount=type=secret,id=build-ca,target=/run/build-ca.crt \
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
      'path-include /usr/share/locale/locale.alias' 'path-exclude /usr/share/lintian/*' \
      'path-exclude /usr/lib/postgresql/*/lib/llvmjit*' 'path-exclude /usr/lib/postgresql/*/lib/bitcode/*' \
      'path-exclude /usr/lib/x86_64-linux-gnu/libLLVM*' 'path-exclude /usr/lib/x86_64-linux-gnu/libz3.so*' \
      'path-exclude /usr/lib/aarch64-linux-gnu/libLLVM*' 'path-exclude /usr/lib/aarch64-linux-gnu/libz3.so*' \
      > /etc/dpkg/dpkg.cfg.d/01-pgkeel-slim \
 && groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --no-create-home \
      --shell /usr/sbin/nologin postgres \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/pgkeel.conf \
 && if [ -s /run/build-ca.crt ]; then echo 'Acquire::https::CAInfo "/run/build-ca.crt";' > /etc/apt/apt.conf.d/99build-ca; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15 pgbackrest python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
      /etc/apt/apt.conf.d/99build-ca /usr/share/man/* /usr/share/info/* \
 && find /usr/share/doc -type f ! -name copyright -delete \
 && find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + \
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
