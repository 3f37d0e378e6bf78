#!/usr/bin/env bash
# Builds the pgkeel image (Dockerfile) with podman and no registry: installs podman/buildah/debootstrap
# when missing, makes the base image docker.io/library/debian:bookworm-slim from debootstrap once, then
# builds pgkeel:dev and pgkeel:src-<hash>, where <hash> digests every build input — so a second run
# with the same inputs builds nothing. Prints each step, the build time and the image size.
#
#   scripts/build_image.sh               build (or reuse) the image
#   scripts/build_image.sh --print-tag   print pgkeel:src-<hash> for the inputs as they are now
#
# BUILD_CA=FILE (default: /etc/ssl/certs/ca-certificates.crt when present) is the CA bundle that pip
# and apt trust during the build: a TLS-inspecting or corporate proxy needs it. It goes in as the build
# secret `build-ca`, mounted for the RUN steps only, so no layer holds it; BUILD_CA= builds without it.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=docker.io/library/debian:bookworm-slim
NAME=${PGKEEL_IMAGE_NAME:-pgkeel}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The build inputs, exactly what the Dockerfile COPYs (bytecode and build leftovers excluded).
inputs_hash() {
  find Dockerfile .dockerignore pyproject.toml requirements.lock README.md src ext -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' ! -name '*.o' ! -name '*.so' \
      -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12
}
TAG="$NAME:src-$(inputs_hash)"
if [ "${1:-}" = "--print-tag" ]; then
  echo "$TAG"
  exit 0
fi

step() { echo "build_image: $*"; }

missing=()
for pkg in podman buildah debootstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  step "installing ${missing[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if podman image exists "$TAG"; then
  step "$TAG exists (same Dockerfile, src, ext, pyproject.toml, requirements.lock): nothing to build"
  podman tag "$TAG" "$NAME:dev"
  step "$NAME:dev = $TAG, size $(podman image inspect --format '{{.Size}}' "$TAG" | numfmt --to=iec) "
  exit 0
fi

start=$(date +%s)
if podman image exists "$BASE"; then
  step "base image $BASE present"
else
  # No registry here: Debian's own minbase, tagged as the image the Dockerfile names.
  root=$(mktemp -d /tmp/pgkeel-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  step "base image $BASE missing: debootstrap --variant=minbase bookworm ($MIRROR) …"
  nice debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
  rm -f "$root.log"
  # Security and point-release updates, as the official image has them.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  step "importing the root filesystem as $BASE"
  tar -C "$root" -c . | podman import -q - "$BASE" >/dev/null
  rm -rf "$root"
  trap - EXIT
  step "base image ready after $(($(date +%s) - start)) s"
fi

CA=${BUILD_CA-/etc/ssl/certs/ca-certificates.crt}
ca_args=()
if [ -n "$CA" ] && [ -f "$CA" ]; then
  ca_args=(--secret "id=build-ca,src=$(readlink -f "$CA")")
  step "build CA: $CA (build secret build-ca: mounted for the RUN steps only)"
fi

build_start=$(date +%s)
step "podman build $TAG (Dockerfile, --isolation=chroot, no registry) …"
nice podman build --pull=never --isolation=chroot --layers "${ca_args[@]}" -t "$TAG" -t "$NAME:dev" . \
  | sed -u 's/^/  /'
end=$(date +%s)
# Older src-<hash> tags are images of sources that no longer exist: untag them (shared layers stay).
old=$(podman images --format '{{.Repository}}:{{.Tag}}' | grep -E "^(localhost/)?$NAME:src-[0-9a-f]+\$" \
  | grep -vxF -e "localhost/$TAG" -e "$TAG" || true)
if [ -n "$old" ]; then
  step "removing older tags: $(echo $old | tr '\n' ' ')"
  podman rmi $old >/dev/null
fi
size=$(podman image inspect --format '{{.Size}}' "$TAG")
step "built $TAG and $NAME:dev in $((end - build_start)) s (total with base $((end - start)) s), size $(numfmt --to=iec "$size") ($size bytes)"
