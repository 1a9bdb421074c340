#!/usr/bin/env bash
# Local Keycloak for keyward's end-to-end tests and demos: the server distribution from Maven
# Central, run in `start-dev` mode on loopback with its embedded (in-memory H2) database.
#
# Usage: scripts/keycloak.sh install|up|down|status|env|realm NAME [USER...]
#
#   install  fetch org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz through Maven into
#            ~/.cache/keyward/keycloak-$KC_VERSION and unpack it (no-op when there); check
#            that a JDK >= 21 is found
#   up       install, start the server on 127.0.0.1 (a free port), bootstrap the admin, set up
#            realm ${KEYWARD_KC_REALM:-corp} (see `realm`) with users alice and bob, and print
#            shell-eval-able KEYWARD_KC_* lines on stdout (also in $KEYWARD_KC_HOME/env):
#                eval "$(scripts/keycloak.sh up)"
#   down     stop the server recorded in $KEYWARD_KC_HOME/server.pid (idempotent)
#   status   exit 0 when the server answers
#   env      print $KEYWARD_KC_HOME/env of the running instance
#   realm    on the running instance: create realm NAME with
#              - a confidential client `keyward` whose service account holds only the
#                realm-management roles manage-users, view-users and query-users;
#              - a public client `login` (direct access grants and the browser flow);
#              - a public client `recovery-login` whose browser flow requires password AND a
#                recovery code (flow `recovery-browser`);
#              - a direct grant flow `otp-direct-grant` in which password AND OTP are
#                REQUIRED (the built-in one asks for OTP only when the user has one, so a
#                revoked OTP would not show in a login), bound as the realm's direct grant flow;
#              - USERs with password "<user>-password", e-mail <user>@acme.example and the
#                required action CONFIGURE_TOTP (they enrol TOTP at their first login);
#            and print KEYWARD_KC_REALM, KEYWARD_KC_CLIENT_ID, KEYWARD_KC_CLIENT_SECRET.
#
# Environment (all optional):
#   KEYWARD_KC_VERSION   Keycloak version        (default 26.7.4; Maven Central serves it)
#   KEYWARD_KC_SHA256    SHA-256 of that version's tar.gz (known for the default version)
#   KEYWARD_KC_CACHE     download/unpack cache   (default ~/.cache/keyward)
#   KEYWARD_KC_HOME      instance directory      (default <repo>/.cache/keycloak)
#   KEYWARD_KC_PORT      HTTP port               (default: a free port)
#   KEYWARD_KC_ADMIN / KEYWARD_KC_PASSWORD  bootstrap admin (default admin / keyward-admin);
#                        `realm` signs in with them, so give it what `up` was given
#   KEYWARD_KC_JAVA_HOME a JDK >= 21             (default: Temurin 25 if installed, else the
#                                                 first JDK >= 21 under /usr/lib/jvm, else
#                                                 `java` on PATH if it is >= 21)
#   KEYWARD_KC_REALM     the realm `up` sets up   (default corp)
#   KEYWARD_KC_NO_REALM  1: `up` sets up no realm (the tests make one per test)
#   KEYWARD_KC_START_TIMEOUT  seconds to wait for the server (default 240)
#   KEYWARD_KC_M2        Maven's local repository, for the download progress
#                        (default ~/.m2/repository)
#
# Start-up is measured: `up` prints KEYWARD_KC_STARTUP_SECONDS (13 s on an idle machine,
# up to ~55 s on a busy 2-core one; start-dev builds the server on every start).
#
# Only stdout of `up`/`env`/`realm` is machine-readable; progress goes to stderr.
set -euo pipefail

KC_VERSION=${KEYWARD_KC_VERSION:-26.7.4}
KC_SHA256=${KEYWARD_KC_SHA256:-}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE=${KEYWARD_KC_CACHE:-$HOME/.cache/keyward}
DIST=$CACHE/keycloak-$KC_VERSION
# Maven resolves a plugin named without a version to the newest release on Central: name it
# whole, so a new release of the plugin cannot change what a fresh machine runs.
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.11.0
# SHA-256 of keycloak-quarkus-dist-26.7.4.tar.gz as Maven Central served it when it was pinned:
# the download is checked against it, so what a fresh machine unpacks is what was tested. Another
# KEYWARD_KC_VERSION needs its own KEYWARD_KC_SHA256.
KC_DEFAULT_VERSION=26.7.4
KC_DEFAULT_SHA256=04823c336b797a7e18889a44262a7a64e6bf624cbbcc518c85e2622176ff2eee
KC_HOME=${KEYWARD_KC_HOME:-$REPO_ROOT/.cache/keycloak}
ADMIN=${KEYWARD_KC_ADMIN:-admin}
PASSWORD=${KEYWARD_KC_PASSWORD:-keyward-admin}
REALM=${KEYWARD_KC_REALM:-corp}
START_TIMEOUT=${KEYWARD_KC_START_TIMEOUT:-240}
# `up` refuses to wipe a non-empty directory without this marker.
MARKER=.keyward-keycloak-home

log() { printf '[keycloak] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The major version of the JDK whose home is $1 (empty when it has no working java).
java_major() {
    "$1/bin/java" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}

# Keycloak 26 needs Java 21 or later. The machine's default `java` may be older (OpenJDK 17):
# prefer Temurin 25, then any JDK >= 21 under /usr/lib/jvm, then `java` on PATH.
find_java_home() {
    local candidates=() c major
    [[ -n ${KEYWARD_KC_JAVA_HOME:-} ]] && candidates+=("$KEYWARD_KC_JAVA_HOME")
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME")
    candidates+=(/usr/lib/jvm/temurin-25-jdk-amd64)
    for c in /usr/lib/jvm/*; do candidates+=("$c"); done
    if command -v java >/dev/null; then
        candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
    fi
    for c in "${candidates[@]}"; do
        [[ -x $c/bin/java ]] || continue
        major=$(java_major "$c")
        if [[ -n $major && $major -ge 21 ]]; then
            printf '%s' "$c"
            return 0
        fi
    done
    return 1
}

cmd_install() {
    local java_home
    java_home=$(find_java_home) ||
        die "Keycloak $KC_VERSION needs a JDK >= 21; none found (set KEYWARD_KC_JAVA_HOME; \`java\` is $(java -version 2>&1 | head -1))"
    log "JDK: $java_home (Java $(java_major "$java_home"))"
    if [[ -x $DIST/bin/kc.sh && -f $DIST/version.txt ]]; then
        log "reusing $DIST ($(head -1 "$DIST/version.txt"))"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: Maven fetches the Keycloak distribution"
    if [[ -z $KC_SHA256 ]]; then
        [[ $KC_VERSION == "$KC_DEFAULT_VERSION" ]] ||
            die "KEYWARD_KC_VERSION=$KC_VERSION needs KEYWARD_KC_SHA256 (the tar.gz's SHA-256)"
        KC_SHA256=$KC_DEFAULT_SHA256
    fi
    local t0=$SECONDS download=$CACHE/download-$KC_VERSION
    mkdir -p "$download"
    log "fetching org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz from Maven Central (~170 MB, one-off)"
    # Maven's own progress is one line per 4 KB without -B and none with it: run it quietly and
    # report the download's size every few seconds instead (Maven writes into its local
    # repository first, then copies).
    local repo_dir=${KEYWARD_KC_M2:-$HOME/.m2/repository}/org/keycloak/keycloak-quarkus-dist/$KC_VERSION
    mvn -B -q -Dstyle.color=never "$DEPENDENCY_PLUGIN:copy" \
        "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz" \
        "-DoutputDirectory=$download" >&2 &
    local mvn_pid=$! size
    while alive "$mvn_pid"; do
        sleep 3
        # Before Maven creates it the directory does not exist: `du` fails, and under
        # `set -o pipefail` that failure must not end the install (as it did on a fresh HOME).
        size=$(du -cm "$repo_dir" 2>/dev/null | tail -1 | cut -f1) || size=0
        if alive "$mvn_pid"; then log "downloading… ${size:-0} MB of ~170 MB after $((SECONDS - t0)) s"; fi
    done
    wait "$mvn_pid" || die "mvn could not fetch keycloak-quarkus-dist $KC_VERSION from Maven Central"
    local tarball=$download/keycloak-quarkus-dist-$KC_VERSION.tar.gz got
    got=$(sha256sum "$tarball" | cut -d' ' -f1)
    if [[ $got != "$KC_SHA256" ]]; then
        rm -rf "$download"
        die "keycloak-quarkus-dist-$KC_VERSION.tar.gz has SHA-256 $got, expected $KC_SHA256"
    fi
    log "unpacking into $DIST"
    local staging=$CACHE/.unpack-$KC_VERSION
    rm -rf "$staging"
    mkdir -p "$staging"
    tar -xzf "$tarball" -C "$staging"
    rm -rf "$DIST"
    mv "$staging/keycloak-$KC_VERSION" "$DIST"
    rm -rf "$staging" "$download"
    log "installed Keycloak $KC_VERSION in $((SECONDS - t0)) s"
}

resolve_home() {
    [[ ${1:-} == create ]] && mkdir -p "$KC_HOME"
    if [[ -d $KC_HOME ]]; then KC_HOME=$(cd "$KC_HOME" && pwd -P); fi
}

alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $stat && $stat != Z* ]]
}

# PID is alive and is a Keycloak we started (guards against a recycled pid).
is_our_server() {
    local args
    alive "$1" || return 1
    args=$(ps -o args= -p "$1" 2>/dev/null) || return 1
    [[ $args == *kc.sh* || $args == *keycloak* ]]
}

cmd_down() {
    resolve_home
    local pidfile=$KC_HOME/server.pid pid
    if [[ ! -f $pidfile ]]; then
        log "not running (no $pidfile)"
        return 0
    fi
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && is_our_server "$pid"; then
        log "stopping server pid $pid"
        # setsid at start: the pid is its process group, which holds kc.sh and its java.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "server did not exit on TERM, sending KILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    else
        log "stale pid file (pid '$pid' is not a running Keycloak)"
    fi
    rm -f "$pidfile"
}

instance_url() {
    [[ -f $KC_HOME/env ]] && sed -n 's/^KEYWARD_KC_URL=//p' "$KC_HOME/env"
}

cmd_status() {
    resolve_home
    local url
    url=$(instance_url) || true
    [[ -n $url ]] || { log "no instance in $KC_HOME"; return 1; }
    if curl -sf -o /dev/null "$url/realms/master"; then log "running at $url"; else
        log "not answering at $url"
        return 1
    fi
}

cmd_env() {
    resolve_home
    [[ -f $KC_HOME/env ]] || die "no $KC_HOME/env (run up first)"
    cat "$KC_HOME/env"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wipe_home() {
    if [[ -n $(ls -A "$KC_HOME") && ! -e $KC_HOME/$MARKER ]]; then
        die "$KC_HOME is not empty and was not created by this script; refusing to wipe it"
    fi
    find "$KC_HOME" -mindepth 1 -delete
    touch "$KC_HOME/$MARKER"
}

# Waits until the realm endpoint answers, showing progress; fails when the server exits.
wait_ready() {
    local url=$1 pid=$2 t0=$SECONDS last=-1
    while ! curl -sf -o /dev/null "$url/realms/master"; do
        alive "$pid" || { log "server exited during start-up"; return 1; }
        ((SECONDS - t0 < START_TIMEOUT)) || { log "no answer within $START_TIMEOUT s"; return 1; }
        if ((SECONDS - t0 >= last + 10)); then
            last=$((SECONDS - t0))
            log "starting… ${last} s ($(tail -n 1 "$KC_HOME/server.log" | cut -c1-110))"
        fi
        sleep 0.5
    done
}

# The admin REST calls of `realm`, in Python's standard library (no jq needed).
setup_realm() {
    python3 - "$1" "$ADMIN" "$PASSWORD" "$2" "${@:3}" <<'PY'
import json, sys, urllib.error, urllib.parse, urllib.request
url, admin, password, realm, *users = sys.argv[1:]

def call(method, path, data=None, form=None, token=None):
    headers, body = {}, None
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url + path, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: HTTP {e.code} {e.read()[:300]!r}")

token = call("POST", "/realms/master/protocol/openid-connect/token",
             form={"grant_type": "password", "client_id": "admin-cli",
                   "username": admin, "password": password})["access_token"]
a = lambda method, path, data=None: call(method, "/admin/realms" + path, data, token=token)
r = "/" + urllib.parse.quote(realm, safe="")
a("POST", "", {"realm": realm, "enabled": True})
# password + OTP, both REQUIRED, for logins through the token endpoint
a("POST", r + "/authentication/flows",
  {"alias": "otp-direct-grant", "providerId": "basic-flow", "topLevel": True, "builtIn": False})
for provider in ("direct-grant-validate-username", "direct-grant-validate-password",
                 "direct-grant-validate-otp"):
    a("POST", r + "/authentication/flows/otp-direct-grant/executions/execution", {"provider": provider})
# new executions start DISABLED (but the first)
for e in a("GET", r + "/authentication/flows/otp-direct-grant/executions"):
    a("PUT", r + "/authentication/flows/otp-direct-grant/executions", {"id": e["id"], "requirement": "REQUIRED"})
# A code may be used twice within its period, so that a test may log in as often as it needs.
# Keycloak applies the OTP policy's fields only all together, when otpPolicyType is given.
a("PUT", r, {"directGrantFlow": "otp-direct-grant", "otpPolicyType": "totp", "otpPolicyAlgorithm": "HmacSHA1",
             "otpPolicyDigits": 6, "otpPolicyPeriod": 30, "otpPolicyLookAheadWindow": 1,
             "otpPolicyInitialCounter": 0, "otpPolicyCodeReusable": True})
a("POST", r + "/clients", {"clientId": "login", "publicClient": True, "directAccessGrantsEnabled": True,
                           "standardFlowEnabled": True, "redirectUris": ["http://127.0.0.1/callback"]})
# password + recovery code, both REQUIRED, for the browser logins of client `recovery-login`;
# a user without recovery codes is sent to set them up
a("POST", r + "/authentication/flows",
  {"alias": "recovery-browser", "providerId": "basic-flow", "topLevel": True, "builtIn": False})
for provider in ("auth-username-password-form", "auth-recovery-authn-code-form"):
    a("POST", r + "/authentication/flows/recovery-browser/executions/execution", {"provider": provider})
for e in a("GET", r + "/authentication/flows/recovery-browser/executions"):
    a("PUT", r + "/authentication/flows/recovery-browser/executions", {"id": e["id"], "requirement": "REQUIRED"})
flow = next(f["id"] for f in a("GET", r + "/authentication/flows") if f["alias"] == "recovery-browser")
a("POST", r + "/clients", {"clientId": "recovery-login", "publicClient": True, "standardFlowEnabled": True,
                           "redirectUris": ["http://127.0.0.1/callback"],
                           "authenticationFlowBindingOverrides": {"browser": flow}})
a("POST", r + "/clients", {"clientId": "keyward", "publicClient": False, "serviceAccountsEnabled": True,
                           "standardFlowEnabled": False, "directAccessGrantsEnabled": False})
client = a("GET", r + "/clients?clientId=keyward")[0]["id"]
secret = a("GET", r + f"/clients/{client}/client-secret")["value"]
account = a("GET", r + f"/clients/{client}/service-account-user")["id"]
management = a("GET", r + "/clients?clientId=realm-management")[0]["id"]
wanted = {"manage-users", "view-users", "query-users"}
roles = [{"id": x["id"], "name": x["name"]} for x in a("GET", r + f"/clients/{management}/roles")
         if x["name"] in wanted]
assert {x["name"] for x in roles} == wanted, roles
a("POST", r + f"/users/{account}/role-mappings/clients/{management}", roles)
for user in users:
    a("POST", r + "/users", {
        "username": user, "email": f"{user}@acme.example", "emailVerified": True, "enabled": True,
        "firstName": user.capitalize(), "lastName": "Example", "requiredActions": ["CONFIGURE_TOTP"],
        "credentials": [{"type": "password", "value": f"{user}-password", "temporary": False}]})
print(f"KEYWARD_KC_REALM={realm}")
print("KEYWARD_KC_CLIENT_ID=keyward")
print(f"KEYWARD_KC_CLIENT_SECRET={secret}")
PY
}

cmd_realm() {
    [[ $# -ge 1 ]] || die "usage: $0 realm NAME [USER...]"
    resolve_home
    local url
    url=$(instance_url) || true
    [[ -n $url ]] || die "no running instance in $KC_HOME (run up first)"
    setup_realm "$url" "$@"
}

cmd_up() {
    local t0=$SECONDS
    cmd_install
    local java_home
    java_home=$(find_java_home)
    resolve_home create
    cmd_down
    wipe_home
    local port=${KEYWARD_KC_PORT:-}
    [[ -n $port ]] || port=$(free_port)
    local management
    management=$(free_port)
    local url=http://127.0.0.1:$port
    log "starting Keycloak $KC_VERSION (start-dev, in-memory H2) on $url (log: $KC_HOME/server.log)"
    local t_start=$SECONDS
    # A bounded heap: the default (70% of RAM) is far more than a test realm needs.
    # setsid: own process group, so `down` stops kc.sh and its java together.
    JAVA_HOME=$java_home JAVA_OPTS_KC_HEAP="-Xms128m -Xmx768m" \
        KC_BOOTSTRAP_ADMIN_USERNAME=$ADMIN KC_BOOTSTRAP_ADMIN_PASSWORD=$PASSWORD \
        setsid nohup "$DIST/bin/kc.sh" start-dev \
        --db=dev-mem --http-host=127.0.0.1 --http-port="$port" --http-management-port="$management" \
        --hostname-strict=false \
        >"$KC_HOME/server.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$KC_HOME/server.pid"
    if ! wait_ready "$url" "$pid"; then
        log "last lines of $KC_HOME/server.log:"
        tail -n 40 "$KC_HOME/server.log" >&2 || true
        cmd_down
        exit 1
    fi
    local startup=$((SECONDS - t_start))
    log "answering after $startup s"
    printf '%s=%q\n' \
        KEYWARD_KC_URL "$url" \
        KEYWARD_KC_ADMIN "$ADMIN" \
        KEYWARD_KC_PASSWORD "$PASSWORD" \
        KEYWARD_KC_VERSION "$KC_VERSION" \
        KEYWARD_KC_JAVA_HOME "$java_home" \
        KEYWARD_KC_STARTUP_SECONDS "$startup" \
        KEYWARD_KC_HOME "$KC_HOME" >"$KC_HOME/env"
    if [[ ${KEYWARD_KC_NO_REALM:-} != 1 ]]; then
        setup_realm "$url" "$REALM" alice bob >>"$KC_HOME/env" || { cmd_down; die "realm setup failed"; }
    fi
    log "ready at $url (pid $pid) after $((SECONDS - t0)) s"
    cat "$KC_HOME/env"
}

case ${1:-} in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    realm) shift; cmd_realm "$@" ;;
    *)
        echo "usage: $0 install|up|down|status|env|realm NAME [USER...]" >&2
        exit 2
        ;;
esac
