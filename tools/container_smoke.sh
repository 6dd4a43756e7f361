#!/usr/bin/env bash
# Container smoke test without a Docker engine or a registry.
#
#   sudo bash tools/container_smoke.sh [--work DIR] [--keep] [--rebuild-base]
#
# 1. Build a local base image: debootstrap a minimal Debian (this machine's release,
#    from the mirror its apt is configured with) plus python3, python3-venv and
#    libsodium23 (the Dockerfile installs it only where it is missing), and
#    `podman import` it. The rootfs tarball is cached in the work dir, so a rerun skips
#    debootstrap (--rebuild-base forces it).
# 2. Build the real Dockerfile on that base with `podman build --isolation=chroot`.
#    pip inside the build gets no network configuration, so the wheels are built on
#    this host first (with its pip configuration) and bind-mounted into the build, which
#    installs with --no-index. The Dockerfile's default path stays a plain PyPI build.
# 3. Check the image config (non-root user, /data volume, exposed port, healthcheck).
# 4. Export the image's filesystem and run its entrypoint in a chroot as the image's
#    user, as a runtime would (read-only root, tmpfs /tmp, a fresh volume on /data):
#    wait for GET /healthz, run the image's HEALTHCHECK command, `status` and (when the
#    tree has it) `backup` + `restore` through the entrypoint, stop it with SIGTERM
#    (exit 0 expected) and check the owners and modes of what it wrote to /data.
#
# Needs root (debootstrap, chroot, mount); installs podman and debootstrap with apt if
# missing. Work dir: artifacts/container/ (git-ignored). Podman runs on a private
# store inside the work dir (vfs driver): nothing is left in the host's image store.
# Environment: WATAN_SMOKE_TIMEOUT (seconds to wait for /healthz, default 90).
set -euo pipefail

readonly IMAGE_UID=10001
readonly CONTAINER_PORT=8470

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$repo/artifacts/container"
keep=0
rebuild_base=0
health_timeout=${WATAN_SMOKE_TIMEOUT:-90}

usage() { sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        --work) work=$2; shift 2 ;;
        --work=*) work=${1#--work=}; shift ;;
        --keep) keep=1; shift ;;
        --rebuild-base) rebuild_base=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "container_smoke: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

t_start=$SECONDS
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - t_start))" "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf '\ncontainer_smoke: FAILED: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, chroot and mount need it)"

# ---- state the cleanup trap undoes -----------------------------------------------
run_dir=""       # per-run scratch (podman store, wheels, exported rootfs)
node_pid=""      # the node running in the chroot
mounts=()        # mount points, unmounted in reverse order

pm() {
    podman --root "$run_dir/store" --runroot "$run_dir/runroot" --storage-driver vfs \
        --events-backend file --log-level error "$@"
}

# Unmount whatever is still mounted under DIR (deepest first), e.g. what an interrupted
# debootstrap left; then delete DIR, never crossing into another file system.
remove_tree() {
    local dir=$1 target
    [[ -n $dir && -d $dir ]] || return 0
    awk -v prefix="$dir/" 'index($2, prefix) == 1 { print $2 }' /proc/self/mounts \
        | sort -r | while read -r target; do
            umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null
        done
    if grep -qF " $dir/" /proc/self/mounts; then
        echo "container_smoke: something is still mounted under $dir; not deleting it" >&2
        return 1
    fi
    rm -rf --one-file-system "$dir"
}

cleanup() {
    local status=$?
    set +e
    if [[ -n $node_pid ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill -KILL "$node_pid" 2>/dev/null
        wait "$node_pid" 2>/dev/null
    fi
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null
    done
    if [[ -n $run_dir && -d $run_dir ]]; then
        if ((keep)); then
            echo "container_smoke: kept $run_dir (podman --root $run_dir/store" \
                "--runroot $run_dir/runroot --storage-driver vfs ...)" >&2
        else
            pm rm --all --force >/dev/null 2>&1
            remove_tree "$run_dir"
        fi
    fi
    remove_tree "${base_tmp:-}"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 0. tools ------------------------------------------------------------------------
step "tools"
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    note "installing ${missing[*]} with apt"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
note "$(podman --version), debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"

# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $codename ]] || die "no VERSION_CODENAME in /etc/os-release"
arch=$(dpkg --print-architecture)

mkdir -p "$work"
work=$(cd "$work" && pwd)
run_dir=$(mktemp -d "$work/run.XXXXXX")

# ---- 1. base image -------------------------------------------------------------------
# The apt source this machine uses for its release: the first enabled `deb` entry whose
# suite is exactly the codename, from deb822 *.sources or one-line *.list files.
# Prints "URI<TAB>KEYRING" (KEYRING may be empty).
apt_source() {
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    local f
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    awk -v suite="$codename" '
        function has(list, word,   n, i, parts) {
            n = split(list, parts, /[ \t]+/)
            for (i = 1; i <= n; i++) if (parts[i] == word) return 1
            return 0
        }
        function flush() {
            if (!found && has(types, "deb") && has(suites, suite) && uris != "" \
                && tolower(enabled) != "no") {
                split(uris, u, /[ \t]+/)
                printf "%s\t%s\n", u[1], signed
                found = 1
            }
            types = suites = uris = signed = enabled = ""
        }
        FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
        /^[ \t]*#/ { next }
        deb822 {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            line = $0
            key = tolower(line); sub(/:.*/, "", key)
            val = line; sub(/^[^:]*:[ \t]*/, "", val)
            if (key == "types") types = val
            else if (key == "suites") suites = val
            else if (key == "uris") uris = val
            else if (key == "signed-by") signed = val
            else if (key == "enabled") enabled = val
            next
        }
        $1 == "deb" {
            # deb [ opt=val ... ] URI SUITE COMPONENTS...
            i = 2; opts = ""
            if ($2 ~ /^\[/) {
                while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ }
                opts = opts " " $i; i++
            }
            if (!found && $(i + 1) == suite) {
                signed = ""
                if (match(opts, /signed-by=[^] ]+/))
                    signed = substr(opts, RSTART + 10, RLENGTH - 10)
                printf "%s\t%s\n", $i, signed
                found = 1
            }
        }
        END { flush() }
    ' "${files[@]}"
}

# -2: the base carries libsodium23 (the image needs it; a build here has no network)
base_tar="$work/base-$codename-$arch-2.tar"
base_meta="$base_tar.python"   # "X.Y" of the base's python3
base_image="localhost/watan-smoke-base:$codename"
base_seconds="cached"

if ((rebuild_base)) || [[ ! -s $base_tar || ! -s $base_meta ]]; then
    step "debootstrap a minimal Debian $codename ($arch) with python3"
    source_line=$(apt_source) || true
    [[ -n $source_line ]] \
        || die "no enabled 'deb' source for suite $codename in /etc/apt/sources.list{,.d/}"
    mirror=${source_line%%$'\t'*}
    keyring=${source_line#*$'\t'}
    note "mirror (from this machine's apt configuration): $mirror"
    keyring_args=()
    if [[ -n $keyring && -f $keyring ]]; then
        keyring_args=(--keyring="$keyring")
        note "keyring: $keyring"
    fi
    t_base=$SECONDS
    base_tmp=$(mktemp -d "$work/base.XXXXXX")
    rootfs="$base_tmp/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,libsodium23 \
        "${keyring_args[@]}" "$codename" "$rootfs" "$mirror" >"$base_tmp/debootstrap.log" 2>&1 \
        || { tail -n 30 "$base_tmp/debootstrap.log" >&2; die "debootstrap failed"; }
    # Trim what an image does not need (apt lists and caches, docs, man pages, message
    # catalogs); keep dpkg's database, so the image stays a Debian that apt can extend.
    rm -rf "${rootfs:?}"/var/cache/apt/* "${rootfs:?}"/var/lib/apt/lists/* \
        "${rootfs:?}"/usr/share/doc/* "${rootfs:?}"/usr/share/man/* \
        "${rootfs:?}"/usr/share/info/* "${rootfs:?}"/usr/share/locale/* \
        "${rootfs:?}"/var/log/*.log \
        "${rootfs:?}"/var/cache/debconf/*-old "${rootfs:?}"/dev/* "${rootfs:?}"/proc/* \
        "${rootfs:?}"/sys/* "${rootfs:?}"/run/* "${rootfs:?}"/tmp/*
    pyver=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
        || die "python3 does not run in the debootstrapped rootfs"
    tar --numeric-owner --xattrs -C "$rootfs" -cf "$base_tmp/base.tar" .
    mv "$base_tmp/base.tar" "$base_tar"
    echo "$pyver" >"$base_meta"
    remove_tree "$base_tmp"
    base_tmp=""
    base_seconds="$((SECONDS - t_base))s"
    note "base rootfs: $(du -h "$base_tar" | cut -f1) tarball, python $pyver, ${base_seconds}"
else
    step "base rootfs cached: $base_tar"
fi
pyver=$(<"$base_meta")

step "podman import $base_image"
pm import --quiet --change 'CMD ["/bin/bash"]' "$base_tar" "$base_image" >/dev/null \
    || die "podman import failed"

# ---- 2. wheels on the host, then the real Dockerfile -------------------------------
step "build wheels on the host for python $pyver"
host_python=$(command -v "python$pyver" || true)
[[ -n $host_python ]] \
    || die "the base has python $pyver but this host has no python$pyver to build wheels"
wheels="$run_dir/wheels"
mkdir -p "$wheels"
# The Dockerfile's `pip install /src` builds the project, so the build backend's
# wheels (setuptools, wheel) go into the directory too.
pip_log="$run_dir/pip.log"
# From a copy of the sources: setuptools writes build/ and *.egg-info where it builds.
mkdir "$run_dir/src"
tar -C "$repo" --exclude=__pycache__ -cf - pyproject.toml README.md protocol node admin_ui \
    | tar -C "$run_dir/src" -xf - || die "cannot copy the sources for pip wheel"
"$host_python" -m pip wheel --wheel-dir "$wheels" "$run_dir/src" >"$pip_log" 2>&1 \
    || { tail -n 30 "$pip_log" >&2; die "pip wheel of the project failed (log above)"; }
"$host_python" -m pip download --only-binary=:all: --dest "$wheels" \
    'setuptools>=69' wheel >>"$pip_log" 2>&1 \
    || { tail -n 30 "$pip_log" >&2; die "pip download of setuptools/wheel failed (log above)"; }
note "$(find "$wheels" -name '*.whl' | wc -l) wheels"

image="localhost/watan-smoke:$(date +%Y%m%d%H%M%S)"
step "podman build $image (base $base_image)"
t_build=$SECONDS
# --format docker: OCI image configs have no HEALTHCHECK; the Docker format keeps it.
# --layers=false: one layer per stage (the vfs driver copies the whole tree per layer).
pm build --isolation=chroot --format docker --pull=never --layers=false \
    --build-arg "BASE_IMAGE=$base_image" \
    --build-arg "PIP_INSTALL_ARGS=--no-index --find-links=/wheels" \
    --volume "$wheels:/wheels:ro" \
    --file "$repo/Dockerfile" --tag "$image" "$repo" >"$run_dir/build.log" 2>&1 \
    || { tail -n 40 "$run_dir/build.log" >&2; die "podman build failed (log above)"; }
build_seconds=$((SECONDS - t_build))
image_size=$(pm image ls --format '{{.Size}}' "$image")
note "built in ${build_seconds}s; size (podman image ls): $image_size"

# ---- 3. image configuration -----------------------------------------------------------
step "image configuration"
pm image inspect "$image" >"$run_dir/inspect.json"
# Prints the values the chroot run needs, one per line, after checking the config:
"$host_python" - "$run_dir/inspect.json" "$IMAGE_UID" "$CONTAINER_PORT" >"$run_dir/config.txt" <<'PY' \
    || die "image configuration check failed"
import json
import sys

[image] = json.load(open(sys.argv[1]))
uid, port = sys.argv[2], sys.argv[3]
config = image.get("Config") or {}
errors = []

user = config.get("User") or ""
if user.split(":")[0] in ("", "0", "root"):
    errors.append(f"User is {user!r}: the image would run as root")
elif user.split(":")[0] != uid:
    errors.append(f"User is {user!r}, expected uid {uid}")
if "/data" not in (config.get("Volumes") or {}):
    errors.append(f"/data is not a volume: {config.get('Volumes')}")
if f"{port}/tcp" not in (config.get("ExposedPorts") or {}):
    errors.append(f"port {port}/tcp is not exposed: {config.get('ExposedPorts')}")
# podman 4 reports it at the top level, Docker (and newer podman) in Config.
health = image.get("Healthcheck") or image.get("HealthCheck") or config.get("Healthcheck") or {}
test = health.get("Test") or []
if not test or test[0] == "NONE" or not any("/healthz" in word for word in test):
    errors.append(f"no HEALTHCHECK on /healthz: {health}")
entrypoint = config.get("Entrypoint") or []
if not entrypoint:
    errors.append("no ENTRYPOINT")
if errors:
    for error in errors:
        print("    image config: " + error, file=sys.stderr)
    sys.exit(1)
print(f"    User {user}, Volumes {sorted(config['Volumes'])}, "
      f"ExposedPorts {sorted(config['ExposedPorts'])}", file=sys.stderr)
print(f"    Healthcheck {test} every {health.get('Interval', 0) // 10**9}s", file=sys.stderr)
print(f"    Entrypoint {entrypoint}, Cmd {config.get('Cmd')}", file=sys.stderr)
# For the shell, one line each, words separated by US (0x1f): entrypoint, healthcheck
# command, environment.
out, sep = sys.stdout, "\x1f"
out.write(sep.join(entrypoint) + "\n")
out.write(sep.join(test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", *test[1:]]) + "\n")
out.write(sep.join(config.get("Env") or []) + "\n")
PY
{
    IFS=$'\x1f' read -r -a entrypoint
    IFS=$'\x1f' read -r -a healthcheck
    IFS=$'\x1f' read -r -a image_env
} <"$run_dir/config.txt"
((${#entrypoint[@]})) || die "could not read the image's ENTRYPOINT"

# ---- 4. run the entrypoint from the exported filesystem -------------------------------
step "export the image's filesystem"
rootfs="$run_dir/rootfs"
mkdir -p "$rootfs"
cid=$(pm create "$image") || die "podman create failed"
pm export "$cid" | tar -x --numeric-owner -C "$rootfs" || die "podman export failed"
# (podman 4.3 complains here that it has no systemd to drop the healthcheck timer.)
pm rm --force "$cid" >/dev/null 2>&1 || die "podman rm failed"
[[ ! -e $rootfs/src ]] || die "the final image contains the build stage's /src"
[[ ! -e $rootfs/opt/watan/bin/pip ]] || die "the final image's venv still has pip"
[[ $(stat -c '%u:%g %a' "$rootfs/data") == "$IMAGE_UID:$IMAGE_UID 700" ]] \
    || die "/data in the image is $(stat -c '%u:%g %a' "$rootfs/data"), expected $IMAGE_UID:$IMAGE_UID 700"
note "rootfs $(du -sh "$rootfs" | cut -f1), venv $(du -sh "$rootfs/opt/watan" | cut -f1)"

# As a container runtime would run it (docs/compose.yaml: read_only, tmpfs /tmp): the
# image's filesystem read-only, /proc, a minimal /dev, a tmpfs /tmp, and a fresh named
# volume on /data, which Docker initialises with the image's /data (owner, mode).
# Nothing from the project or the host's filesystem is bound in.
volume="$run_dir/volume"
mkdir "$volume"
chown --reference="$rootfs/data" "$volume"
chmod --reference="$rootfs/data" "$volume"
mount_at() { # mount_at TARGET MOUNT-ARGS...: mount and remember it for the cleanup
    local target=$1
    shift
    mount "$@" "$target" || die "mount $* $target failed"
    mounts+=("$target")
}
mount_at "$rootfs" --bind "$rootfs"
mount -o remount,bind,ro "$rootfs" || die "cannot make the image's filesystem read-only"
mount_at "$rootfs/proc" -t proc proc
mount_at "$rootfs/dev" -t tmpfs -o mode=0755,nosuid,size=1m devtmp
mount_at "$rootfs/tmp" -t tmpfs -o mode=1777,nosuid,nodev,size=64m tmptmp
mount_at "$rootfs/data" --bind "$volume"
for dev in null:1:3 zero:1:5 random:1:8 urandom:1:9; do
    IFS=: read -r name major minor <<<"$dev"
    mknod -m 0666 "$rootfs/dev/$name" c "$major" "$minor"
done
ln -s /proc/self/fd "$rootfs/dev/fd"
for fd in stdin:0 stdout:1 stderr:2; do
    ln -s "/proc/self/fd/${fd#*:}" "$rootfs/dev/${fd%:*}"
done

port_free() {
    "$host_python" -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}
# The default port when it is free here, so the image's own HEALTHCHECK command can run
# unchanged; any free port otherwise.
if port_free "$CONTAINER_PORT"; then
    port=$CONTAINER_PORT
else
    port=$("$host_python" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

# Prefix that runs a command in the image's filesystem with the image's user and
# environment. env execs chroot, which execs the command: one process, one pid.
in_image=(env -i "${image_env[@]}" HOME=/data
    "$(command -v chroot)" --userspec="$IMAGE_UID:$IMAGE_UID" --groups="$IMAGE_UID" "$rootfs")

step "run ${entrypoint[*]} up --data /data --host 127.0.0.1 --port $port (chroot, uid $IMAGE_UID)"
"${in_image[@]}" "${entrypoint[@]}" up --data /data --host 127.0.0.1 --port "$port" \
    >"$run_dir/node.log" 2>&1 &
node_pid=$!

# Prints the body of a 200 answer; fails otherwise.
http_get() {
    "$host_python" - "$1" <<'PY'
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as answer:
        sys.stdout.write(answer.read().decode())
except Exception:
    sys.exit(1)
PY
}

url="http://127.0.0.1:$port/healthz"
deadline=$((SECONDS + health_timeout))
until body=$(http_get "$url"); do
    if ! kill -0 "$node_pid" 2>/dev/null; then
        rc=0
        wait "$node_pid" || rc=$?
        node_pid=""
        sed 's/^/    node: /' "$run_dir/node.log" >&2
        die "the node exited with status $rc before answering $url"
    fi
    ((SECONDS < deadline)) || {
        sed 's/^/    node: /' "$run_dir/node.log" >&2
        die "no 200 from $url within ${health_timeout}s"
    }
    sleep 0.5
done
note "GET /healthz: $body"
node_id=$("$host_python" -c 'import json, sys
body = json.loads(sys.argv[1])
assert body.get("status") == "ok", body
print(body["node_id"])' "$body") || die "/healthz answered 200 but not {\"status\": \"ok\", \"node_id\": ...}"

if [[ $port == "$CONTAINER_PORT" ]]; then
    "${in_image[@]}" "${healthcheck[@]}" || die "the image's HEALTHCHECK command failed: ${healthcheck[*]}"
    note "HEALTHCHECK command exits 0"
else
    note "port $CONTAINER_PORT is busy here: HEALTHCHECK command not run"
fi

status_json=$("${in_image[@]}" "${entrypoint[@]}" status --data /data --json) \
    || die "'${entrypoint[*]} status --data /data --json' failed"
grep -q "\"node_id\": \"$node_id\"" <<<"$status_json" \
    || die "'status --json' does not name node $node_id: $status_json"
note "arguments pass through the entrypoint: 'status --data /data --json' names the node"

# The backup recipe of docs/deploy.md, while the node runs: a passphrase file the
# image's user can read (docs: a mounted file), the archive into a writable directory
# (docs: a mounted host directory; here the volume); then its restore into /tmp.
if "${in_image[@]}" "${entrypoint[@]}" backup --help >/dev/null 2>&1; then
    install -o "$IMAGE_UID" -g "$IMAGE_UID" -m 0400 /dev/null "$rootfs/tmp/passphrase"
    echo "smoke test passphrase, not a secret" >"$rootfs/tmp/passphrase"
    "${in_image[@]}" "${entrypoint[@]}" backup --data /data --out /data/smoke.watan-backup \
        --passphrase-file /tmp/passphrase >"$run_dir/backup.log" 2>&1 \
        || { cat "$run_dir/backup.log" >&2; die "'backup --data /data' failed in the image"; }
    note "$(head -n 1 "$run_dir/backup.log")"
    "${in_image[@]}" "${entrypoint[@]}" restore --in /data/smoke.watan-backup \
        --data /tmp/restored --passphrase-file /tmp/passphrase >"$run_dir/restore.log" 2>&1 \
        || { cat "$run_dir/restore.log" >&2; die "'restore' of that backup failed in the image"; }
    grep -q "restored node $node_id" "$run_dir/restore.log" \
        || { cat "$run_dir/restore.log" >&2; die "the restore does not name node $node_id"; }
    note "restore into /tmp/restored: node $node_id"
else
    note "no 'watan backup' in this tree yet: backup not checked"
fi

step "SIGTERM"
kill -TERM "$node_pid"
deadline=$((SECONDS + 30))
while kill -0 "$node_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
kill -0 "$node_pid" 2>/dev/null && die "the node did not stop within 30s of SIGTERM"
rc=0
wait "$node_pid" || rc=$?
node_pid=""
((rc == 0)) || { sed 's/^/    node: /' "$run_dir/node.log" >&2; die "the node exited $rc on SIGTERM, expected 0"; }
note "exit status 0"
if grep -q Traceback "$run_dir/node.log"; then
    sed 's/^/    node: /' "$run_dir/node.log" >&2
    die "traceback in the node's log"
fi

step "/data after the first run"
data="$volume"
[[ -f $data/node.json ]] || die "no /data/node.json after the first run"
[[ $(stat -c '%u:%g %a' "$data") == "$IMAGE_UID:$IMAGE_UID 700" ]] \
    || die "/data is $(stat -c '%u:%g %a' "$data") after the run"
foreign=$(find "$data" ! -uid "$IMAGE_UID" -printf '%P ')
[[ -z $foreign ]] || die "files in /data not owned by $IMAGE_UID: $foreign"
if [[ -d $data/keys ]]; then
    open_keys=$(find "$data/keys" -type f ! -perm 0600 -printf '%P(%m) ')
    [[ -z $open_keys ]] || die "key files not 0600: $open_keys"
fi
password_file="$data/first-admin-password.txt"
if [[ -e $password_file ]]; then
    [[ $(stat -c '%u %a' "$password_file") == "$IMAGE_UID 600" ]] \
        || die "first-admin-password.txt is $(stat -c 'uid %u mode %a' "$password_file")"
    note "first-admin-password.txt: uid $IMAGE_UID, 0600"
else
    note "no first-admin-password.txt (not implemented in this tree yet)"
fi
find "$data" -printf '    %M %u:%g %P\n' | sort -k3

total=$((SECONDS - t_start))
cat <<SUMMARY

container_smoke: OK
  image        $image (deleted on exit$( ((keep)) && echo "; kept: --keep"))
  image size   $image_size (podman image ls; base $base_image, Debian $codename + python$pyver)
  base build   $base_seconds (debootstrap + trim + tar; cached in $base_tar)
  image build  ${build_seconds}s
  total        ${total}s (before the cleanup)
SUMMARY
