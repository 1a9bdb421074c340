#!/usr/bin/env bash
# Local privacyIDEA 3.14 instance for keyward's integration tests and demos.
#
# Usage: scripts/privacyidea.sh install|lock|start|stop|status|env
#
#   install  create/reuse the venv ${KEYWARD_PI_VENV:-~/.cache/keyward/pi-venv} with
#            privacyidea==3.14 and exactly the packages of tools/privacyidea/requirements.lock
#            (pip --require-hashes, wheels only). The venv records the lock's SHA-256 and is
#            rebuilt from scratch when the lock changed or its resolvers do not import.
#   lock     regenerate tools/privacyidea/requirements.lock (pip-compile --generate-hashes,
#            with the interpreter below, pip-tools itself from tools/privacyidea/pip-tools.lock)
#            within the versions privacyIDEA 3.14's release pins in its own requirements.txt
#            (tools/privacyidea/constraints.txt)
#   start    install, wipe and set up ${KEYWARD_PI_HOME:-<repo>/.cache/privacyidea},
#            start the server on 127.0.0.1 and print shell-eval-able
#            KEYWARD_PI_* lines on stdout (also written to $KEYWARD_PI_HOME/env):
#                eval "$(scripts/privacyidea.sh start)"
#   stop     stop the server recorded in $KEYWARD_PI_HOME/server.pid (idempotent)
#   status   exit 0 when the server answers GET /healthz/
#   env      print $KEYWARD_PI_HOME/env of the running instance
#
# Environment (all optional):
#   KEYWARD_PI_VENV      venv location            (default ~/.cache/keyward/pi-venv)
#   KEYWARD_PI_HOME      instance directory       (default <repo>/.cache/privacyidea)
#   KEYWARD_PI_PORT      port                     (default: a free port)
#   KEYWARD_PI_ADMIN     local admin name         (default admin)
#   KEYWARD_PI_PASSWORD  local admin password     (default keyward-admin)
#   KEYWARD_PI_REALM     default realm            (default corp)
#   KEYWARD_PI_RESOLVER  its internal SQL resolver (default corp-users)
#   KEYWARD_PI_PYTHON    interpreter for the venv (default python3; the lock is compiled for
#                        CPython 3.11, another version gets a warning: a dependency it would
#                        need beyond the lock fails the install, it is never resolved)
#
# Only stdout of `start`/`env` is machine-readable; all progress goes to stderr.
# Users, tokens and extra realms are managed with scripts/pi_users.py.
set -euo pipefail

PI_VERSION=3.14
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=${KEYWARD_PI_VENV:-$HOME/.cache/keyward/pi-venv}
PI_HOME=${KEYWARD_PI_HOME:-$REPO_ROOT/.cache/privacyidea}
ADMIN=${KEYWARD_PI_ADMIN:-admin}
PASSWORD=${KEYWARD_PI_PASSWORD:-keyward-admin}
REALM=${KEYWARD_PI_REALM:-corp}
RESOLVER=${KEYWARD_PI_RESOLVER:-corp-users}
SYS_PYTHON=${KEYWARD_PI_PYTHON:-python3}
START_TIMEOUT=60
# `start` refuses to wipe a non-empty directory that does not carry this marker,
# so a mistyped KEYWARD_PI_HOME cannot delete unrelated data.
MARKER=.keyward-privacyidea-home

log() { printf '[privacyidea] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

LOCK_DIR=$REPO_ROOT/tools/privacyidea
LOCK=$LOCK_DIR/requirements.lock
# The Python minor version requirements.lock was compiled for (its environment markers).
LOCK_PYTHON=3.11
# Written into the venv after a complete install: the lock's SHA-256.
STAMP=.keyward-lock-sha256

lock_sha() { sha256sum "$LOCK" | cut -d' ' -f1; }

# The venv is usable when it was installed from this very lock and privacyIDEA's user
# resolvers import: a resolver that fails to import is silently left out of privacyIDEA's
# resolver types (as with passlib 1.9.5, which broke the SQL and passwd resolvers), and
# `pi-manage config resolver create_internal` fails much later with a puzzling message.
venv_ok() {
    [[ -x $VENV/bin/pi-manage && -x $VENV/bin/python && -f $VENV/$STAMP ]] || return 1
    [[ $(<"$VENV/$STAMP") == "$(lock_sha)" ]] || return 1
    venv_imports 2>/dev/null
}

venv_imports() {
    "$VENV/bin/python" - "$PI_VERSION" <<'PY'
import importlib, sys
from importlib.metadata import version
if version("privacyidea") != sys.argv[1]:
    sys.exit(f"privacyidea {version('privacyidea')} installed, {sys.argv[1]} expected")
for module in ("SQLIdResolver", "PasswdIdResolver", "LDAPIdResolver"):
    try:
        importlib.import_module("privacyidea.lib.resolvers." + module)
    except Exception as e:
        sys.exit(f"privacyIDEA's {module} does not import: {e!r}")
PY
}

python_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

cmd_install() {
    [[ -f $LOCK ]] || die "no lock file $LOCK"
    if venv_ok; then
        log "reusing venv $VENV (privacyidea $PI_VERSION, lock $(lock_sha | cut -c1-12))"
        return 0
    fi
    local minor
    minor=$(python_minor "$SYS_PYTHON") || die "$SYS_PYTHON does not run (set KEYWARD_PI_PYTHON)"
    if [[ $minor != "$LOCK_PYTHON" ]]; then
        log "warning: $SYS_PYTHON is Python $minor; $LOCK is compiled for $LOCK_PYTHON"
    fi
    # From scratch, every time: a venv from an older lock (or a half-finished install) may hold
    # packages the lock no longer lists, and pip never removes those.
    if [[ -e $VENV ]]; then
        [[ -f $VENV/pyvenv.cfg ]] || die "$VENV exists but is not a venv; refusing to delete it"
        log "rebuilding venv $VENV: it was not installed from the current lock"
        rm -rf "$VENV"
    fi
    log "installing privacyidea==$PI_VERSION into $VENV from $LOCK (one-off, about a minute)"
    mkdir -p "$(dirname "$VENV")"
    "$SYS_PYTHON" -m venv "$VENV" >&2
    # --require-hashes: every package must be in the lock with a matching hash, so nothing is
    # ever resolved on this machine. --no-deps: the lock already is the whole closure.
    # --only-binary: an sdist would be built with whatever setuptools is newest on PyPI.
    # --isolated: the machine's pip configuration and PIP_* variables (extra indexes,
    # find-links) play no part. -q keeps pip silent but for warnings and errors; stdout is
    # redirected because `start` must print nothing but the env lines there.
    "$VENV/bin/python" -m pip --isolated install -q --disable-pip-version-check \
        --require-hashes --no-deps --only-binary :all: -r "$LOCK" >&2 ||
        die "pip could not install $LOCK into $VENV"
    local broken
    broken=$("$VENV/bin/python" -m pip --isolated check) ||
        die "the packages of $LOCK do not satisfy each other's requirements: $broken"
    venv_imports >&2 || die "privacyIDEA $PI_VERSION from $LOCK is not usable in $VENV"
    lock_sha >"$VENV/$STAMP"
    log "installed privacyidea $PI_VERSION"
}

# Regenerate the lock: privacyIDEA's own pins from its source distribution as constraints, then
# pip-compile with the hashes of every file of every pinned release (so that the lock installs
# on any platform those releases have wheels for).
cmd_lock() {
    LOCK_WORK=$(mktemp -d)
    trap 'rm -rf "$LOCK_WORK"' EXIT
    local work=$LOCK_WORK
    log "pip-tools (tools/privacyidea/pip-tools.lock) into $work/tools"
    "$SYS_PYTHON" -m venv "$work/tools" >&2
    "$work/tools/bin/python" -m pip --isolated install -q --disable-pip-version-check \
        --require-hashes --no-deps --only-binary :all: -r "$LOCK_DIR/pip-tools.lock" >&2
    log "privacyIDEA $PI_VERSION's own requirements.txt from its source distribution"
    "$work/tools/bin/python" -m pip --isolated download -q --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$work/sdist" "privacyidea==$PI_VERSION" >&2
    tar -xzf "$work/sdist/privacyidea-$PI_VERSION.tar.gz" -C "$work" "privacyidea-$PI_VERSION/requirements.txt"
    {
        echo "# Taken by \`scripts/privacyidea.sh lock\` from requirements.txt in privacyIDEA $PI_VERSION's source"
        echo "# distribution on PyPI (privacyidea-$PI_VERSION.tar.gz): the versions that release was tested with."
        echo "# Extras are dropped: pip does not take them in a constraints file."
        grep -E '^[A-Za-z]' "$work/privacyidea-$PI_VERSION/requirements.txt" | sed 's/ *\\$//; s/\[[a-z,]*\]//'
    } >"$LOCK_DIR/constraints.txt"
    log "compiling $LOCK for Python $(python_minor "$SYS_PYTHON")"
    (cd "$LOCK_DIR" && PIP_FIND_LINKS= CUSTOM_COMPILE_COMMAND="scripts/privacyidea.sh lock" \
        "$work/tools/bin/pip-compile" --quiet --allow-unsafe --generate-hashes --strip-extras \
        --no-emit-find-links --no-emit-index-url --rebuild \
        --constraint constraints.txt --output-file requirements.lock requirements.in) >&2 ||
        die "pip-compile failed"
    log "wrote $LOCK ($(grep -c '^[a-z]' "$LOCK") packages)"
}

# Make PI_HOME absolute; `resolve_home create` also creates it.
resolve_home() {
    [[ ${1:-} == create ]] && mkdir -p "$PI_HOME"
    if [[ -d $PI_HOME ]]; then
        PI_HOME=$(cd "$PI_HOME" && pwd -P)
    fi
}

# URL of the running instance: from $PI_HOME/env, else $KEYWARD_PI_URL.
instance_url() {
    local url=""
    if [[ -f $PI_HOME/env ]]; then
        url=$(sed -n 's/^KEYWARD_PI_URL=//p' "$PI_HOME/env")
    fi
    printf '%s' "${url:-${KEYWARD_PI_URL:-}}"
}

healthy() {  # healthy URL -> exit 0 if GET /healthz/ answers with status true
    "$SYS_PYTHON" - "$1" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/healthz/", timeout=3) as r:
        sys.exit(0 if json.load(r)["result"]["status"] else 1)
except Exception:
    sys.exit(1)
PY
}

# True while PID runs. A zombie counts as gone: the server is reparented to
# PID 1 after `start` exits, and some container inits reap only after a while.
alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $stat && $stat != Z* ]]
}

# True when PID is alive and is a privacyIDEA server we started (guards
# against a recycled pid after a reboot/crash).
is_our_server() {
    local pid=$1 args
    alive "$pid" || return 1
    args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
    [[ $args == *pi-manage* ]]
}

cmd_stop() {
    resolve_home
    local pidfile=$PI_HOME/server.pid pid
    if [[ ! -f $pidfile ]]; then
        log "not running (no $pidfile)"
        return 0
    fi
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && is_our_server "$pid"; then
        log "stopping server pid $pid"
        # The server was started with setsid, so its pid is also its process
        # group id: signal the whole group to take any children with it.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "server did not exit on TERM, sending KILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    else
        log "stale pid file (pid '$pid' is not a running privacyIDEA server)"
    fi
    rm -f "$pidfile"
}

cmd_status() {
    resolve_home
    local url
    url=$(instance_url)
    [[ -n $url ]] || { log "no instance configured in $PI_HOME"; return 1; }
    if healthy "$url"; then
        log "running at $url"
    else
        log "not answering at $url"
        return 1
    fi
}

cmd_env() {
    resolve_home
    [[ -f $PI_HOME/env ]] || die "no $PI_HOME/env (run start first)"
    cat "$PI_HOME/env"
}

free_port() {
    "$SYS_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wipe PI_HOME, refusing directories that do not look like ours.
wipe_home() {
    if [[ -n $(ls -A "$PI_HOME") && ! -e $PI_HOME/$MARKER ]]; then
        die "$PI_HOME is not empty and was not created by this script; refusing to wipe it"
    fi
    find "$PI_HOME" -mindepth 1 -delete
    touch "$PI_HOME/$MARKER"
}

write_config() {
    # pi.cfg is Python source: generate it with repr() so that any path quotes safely.
    "$VENV/bin/python" - "$PI_HOME" <<'PY'
import os, secrets, sys
home = sys.argv[1]
j = lambda name: os.path.join(home, name)
cfg = {
    "SQLALCHEMY_DATABASE_URI": "sqlite:///" + j("data.sqlite"),
    # Random per instance: SECRET_KEY signs the JWTs (>= 32 bytes keeps pyjwt quiet),
    # PI_PEPPER salts the admin password hashes.
    "SECRET_KEY": secrets.token_hex(32),
    "PI_PEPPER": secrets.token_hex(16),
    "PI_ENCFILE": j("enckey"),
    "PI_AUDIT_KEY_PRIVATE": j("private.pem"),
    "PI_AUDIT_KEY_PUBLIC": j("public.pem"),
    "PI_AUDIT_SQL_TRUNCATE": True,
    # No realm grants the admin role; only the local admin is an admin.
    "SUPERUSER_REALM": [],
    "PI_LOGFILE": j("privacyidea.log"),
    "PI_LOGLEVEL": 30,  # WARNING: INFO/DEBUG logging costs noticeable time per request
    # --- speed settings, all safe for a throw-away test instance ---
    # Responses are not RSA-signed (keyward does not verify the signature).
    "PI_NO_RESPONSE_SIGN": True,
    # Audit entries are still signed, but the costly (~100 ms) validation of the
    # private key on every load is skipped (same as privacyIDEA's TestingConfig).
    "PI_AUDIT_NO_PRIVATE_KEY_CHECK": True,
    "PI_RESPONSE_NO_PRIVATE_KEY_CHECK": True,
    # Cheap argon2 for admin passwords and token PINs (production parameters cost
    # ~200 ms per POST /auth); again copied from privacyIDEA's TestingConfig.
    "PI_HASH_ALGO_PARAMS": {"argon2__rounds": 1, "argon2__memory_cost": 8,
                            "argon2__parallelism": 1},
}
with open(j("pi.cfg"), "w") as f:
    f.write("# generated by keyward scripts/privacyidea.sh -- throw-away test instance\n")
    for key, value in cfg.items():
        f.write(f"{key} = {value!r}\n")
PY
}

# Run the pi-manage setup commands in ONE Python process: every separate
# `pi-manage` invocation spends ~2 s importing privacyIDEA, this takes ~3 s total.
run_setup() {
    "$VENV/bin/python" - "$PI_HOME" "$ADMIN" "$PASSWORD" "$RESOLVER" "$REALM" <<'PY' >&2
import os, sqlite3, sys
home, admin, password, resolver, realm = sys.argv[1:]
from privacyidea.cli.pimanage.main import cli

def pi_manage(*args):
    print("+ pi-manage " + " ".join(a if a != password else "***" for a in args), flush=True)
    # standalone_mode=False: return the exit code instead of calling sys.exit()
    rc = cli.main(args=list(args), prog_name="pi-manage", standalone_mode=False)
    if rc not in (None, 0):
        sys.exit(f"pi-manage {args[0]} {args[1]} failed with exit code {rc}")

pi_manage("setup", "create_enckey")
pi_manage("setup", "create_audit_keys")
pi_manage("setup", "create_tables")
# WAL is a persistent property of the SQLite file; it lets the threaded server
# read while another request writes (fewer "database is locked" errors).
with sqlite3.connect(os.path.join(home, "data.sqlite")) as db:
    db.execute("PRAGMA journal_mode=WAL")
pi_manage("admin", "add", admin, "-p", password)
# Internal editable sqlresolver: table users_<resolver> in the token DB, so
# users can be created/deleted over REST (POST /user/, DELETE /user/...).
pi_manage("config", "resolver", "create_internal", resolver)
# create_internal makes `id INTEGER PRIMARY KEY` without AUTOINCREMENT, so SQLite
# hands the id of a deleted highest-id user to the next new user -- and since
# privacyIDEA stores token owners as (resolver, user id), the newcomer would
# "inherit" the leaver's orphaned tokens (observed on 3.14). Recreate the still
# empty table with the same columns plus AUTOINCREMENT.
table = '"users_%s"' % resolver.replace('"', '""')
with sqlite3.connect(os.path.join(home, "data.sqlite")) as db:
    db.execute(f"DROP TABLE {table}")
    db.execute(f"""CREATE TABLE {table} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username VARCHAR(40) UNIQUE,
        email VARCHAR(80),
        password VARCHAR(255),
        phone VARCHAR(40),
        mobile VARCHAR(40),
        surname VARCHAR(40),
        givenname VARCHAR(40),
        description VARCHAR(255))""")
pi_manage("config", "realm", "create", realm, resolver)
# (set_default only prints on failure; the REST check after start catches it)
pi_manage("config", "realm", "set_default", realm)
PY
}

# Wait for /healthz/, then check the setup over REST (admin login, realm is
# default, resolver attached). Exit 0 when ready.
wait_ready() {
    "$SYS_PYTHON" - "$1" "$2" "$START_TIMEOUT" "$ADMIN" "$PASSWORD" "$REALM" "$RESOLVER" <<'PY'
import json, subprocess, sys, time, urllib.error, urllib.request
url, pid, timeout, admin, password, realm, resolver = sys.argv[1:]
deadline = time.monotonic() + float(timeout)
UA = {"User-Agent": "keyward-tests/0.1"}

def call(method, path, data=None, token=None, timeout=10):
    headers = dict(UA)
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["PI-Authorization"] = token
    req = urllib.request.Request(url + path, data=body, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)["result"]["value"]

while True:
    # (a crashed server stays a zombie child of this script: ask ps, not kill -0)
    stat = subprocess.run(["ps", "-o", "stat=", "-p", pid],
                          capture_output=True, text=True).stdout.strip()
    if not stat or stat.startswith("Z"):
        sys.exit("server process exited during startup")
    try:
        if call("GET", "/healthz/", timeout=1)["status"] == "ready":
            break
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if time.monotonic() > deadline:
        sys.exit(f"server did not answer GET /healthz/ within {timeout} s")
    time.sleep(0.2)

try:
    jwt = call("POST", "/auth", {"username": admin, "password": password})["token"]
    realms = call("GET", "/realm/", token=jwt)
except urllib.error.HTTPError as e:
    sys.exit(f"setup check failed: {e} {e.read()[:500]!r}")
r = realms.get(realm) or sys.exit(f"realm {realm!r} missing: {sorted(realms)}")
if not r.get("default"):
    sys.exit(f"realm {realm!r} is not the default realm")
if resolver not in [x["name"] for x in r.get("resolver", [])]:
    sys.exit(f"resolver {resolver!r} not in realm {realm!r}")
PY
}

cmd_start() {
    local t0=$SECONDS
    cmd_install
    resolve_home create
    cmd_stop
    wipe_home
    log "setting up instance in $PI_HOME"
    write_config
    export PRIVACYIDEA_CONFIGFILE=$PI_HOME/pi.cfg
    run_setup

    local port=${KEYWARD_PI_PORT:-}
    [[ -n $port ]] || port=$(free_port)
    local url=http://127.0.0.1:$port

    log "starting server on $url (log: $PI_HOME/server.log)"
    # `pi-manage run` is Flask's run command (werkzeug dev server). pi-manage
    # builds the app from the "production" config (DEBUG off); also force
    # threads on and reloader/debugger off, whatever FLASK_DEBUG says.
    # setsid: own process group, so `stop` can signal the server and any children.
    FLASK_DEBUG=0 setsid nohup "$VENV/bin/pi-manage" run \
        --host 127.0.0.1 --port "$port" \
        --with-threads --no-reload --no-debugger \
        >"$PI_HOME/server.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PI_HOME/server.pid"

    if ! wait_ready "$url" "$pid" >&2; then
        log "server failed to start; last lines of $PI_HOME/server.log:"
        tail -n 40 "$PI_HOME/server.log" >&2 || true
        cmd_stop
        exit 1
    fi

    # %q quotes values only when needed, so plain values print as NAME=value.
    printf '%s=%q\n' \
        KEYWARD_PI_URL "$url" \
        KEYWARD_PI_ADMIN "$ADMIN" \
        KEYWARD_PI_PASSWORD "$PASSWORD" \
        KEYWARD_PI_REALM "$REALM" \
        KEYWARD_PI_RESOLVER "$RESOLVER" \
        KEYWARD_PI_HOME "$PI_HOME" >"$PI_HOME/env"
    log "ready at $url (pid $pid) after $((SECONDS - t0)) s"
    cat "$PI_HOME/env"
}

case ${1:-} in
    install) cmd_install ;;
    lock) cmd_lock ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 install|lock|start|stop|status|env" >&2
        exit 2
        ;;
esac
