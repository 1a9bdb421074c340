#!/usr/bin/env bash
# A real, local Kubernetes control plane for keyward's tests and demo: kube-apiserver, etcd,
# kubectl and helm built from published Go modules (no container runtime, no kubelet, no
# controller-manager: Pods never start, the operator runs as a local process).
#
# Usage: scripts/kube.sh install|up|down|apiserver-stop|apiserver-start|env|gomod
#
#   install   build once per version into ~/.cache/keyward (tools/versions.env pins them):
#               kube-$V/bin/{kube-apiserver,kubectl}  from k8s.io/kubernetes   (tools/kube)
#               etcd-$V/bin/etcd                      from go.etcd.io/etcd/server/v3 (tools/etcd)
#               helm-$V/bin/helm                      from helm.sh/helm/v4 (go install)
#             A no-op when all four exist. Progress goes to stderr.
#   up        start etcd and kube-apiserver on free loopback ports in $KEYWARD_KUBE_HOME (default:
#             a new temporary directory), RBAC on, service-account signing keys, the apiserver's
#             own audit log (every request at Metadata level, $HOME/audit.log); wait for /readyz.
#             Prints KEY=VALUE lines on stdout: KUBECONFIG (admin, system:masters),
#             KEYWARD_KUBE_HOME, KEYWARD_KUBE_AUDIT_LOG, KEYWARD_KUBE_BIN (kubectl, helm, etcd,
#             kube-apiserver), KEYWARD_KUBE_SERVER, KEYWARD_ETCD_URL.
#   down      stop both and remove $KEYWARD_KUBE_HOME (required).
#   apiserver-stop, apiserver-start
#             stop the kube-apiserver of $KEYWARD_KUBE_HOME, or start it again with the flags
#             and port `up` gave it (etcd keeps running, so every object stays).
#   env       print KEYWARD_KUBE_BIN=… (the directory of all four binaries; installs first).
#   gomod     regenerate tools/kube/go.mod and tools/etcd/go.mod from tools/versions.env.
#
# Environment (all optional):
#   KEYWARD_KUBE_HOME            state directory for up/down
#   KEYWARD_KUBE_CACHE           build cache root (default ~/.cache/keyward)
#   KEYWARD_KUBE_APISERVER_ARGS  extra kube-apiserver flags for up (e.g. --watch-cache=false)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=../tools/versions.env
source "$REPO_ROOT/tools/versions.env"
CACHE=${KEYWARD_KUBE_CACHE:-$HOME/.cache/keyward}
KUBE_BIN=$CACHE/kube-$KUBE_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin
HELM_BIN=$CACHE/helm-$HELM_VERSION/bin
# One directory with all four, so that tests and the demo put a single entry on PATH.
ALL_BIN=$CACHE/control-plane-k$KUBE_VERSION-e$ETCD_VERSION-h$HELM_VERSION/bin

log() { printf '[kube] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# `go build -v` names each package as it compiles it: turn that into a progress line every
# 100 packages, so a cold build (many minutes on 2 cores) visibly moves.
progress() {
    local what=$1 n=0 downloads=0 line
    while IFS= read -r line; do
        if [[ $line == "go: downloading "* ]]; then
            downloads=$((downloads + 1))
            if (( downloads % 50 == 1 )); then log "$what: downloading modules ($downloads so far)"; fi
            continue
        fi
        # A package path is one word of path characters; anything else is go telling us
        # something (an error, a download) and is shown as it is.
        if [[ $line =~ ^[A-Za-z0-9._~/-]+$ ]]; then
            n=$((n + 1))
            if (( n % 100 == 0 )); then log "$what: $n packages compiled"; fi
        else
            printf '%s\n' "$line" >&2
        fi
    done
    log "$what: $n packages compiled"
}

go_build() {  # DIR OUT PACKAGE [LDFLAGS]
    local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
    local start=$SECONDS
    log "building $(basename "$out") ($pkg) ..."
    mkdir -p "$(dirname "$out")"
    # pipefail carries go's exit status through the progress filter. -mod=readonly: the module
    # graph is exactly tools/*/go.mod and go.sum; a build that needs anything else fails
    # instead of resolving it on this machine.
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -v -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg" 2>&1) \
        | progress "$(basename "$out")"
    mv "$out.tmp" "$out"
    log "built $out in $((SECONDS - start)) s"
}

kube_ldflags() {
    local major=${KUBE_VERSION%%.*} minor rest
    rest=${KUBE_VERSION#*.}; minor=${rest%%.*}
    local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local flags=() pkg
    # As upstream's hack/lib/version.sh: both packages carry the version, or the server reports
    # v0.0.0-master and helm's kubeVersion checks fail.
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        flags+=("-X $pkg.gitVersion=v$KUBE_VERSION" "-X $pkg.gitMajor=$major" "-X $pkg.gitMinor=$minor"
                "-X $pkg.gitTreeState=clean" "-X $pkg.buildDate=$date")
    done
    echo "${flags[*]}"
}

install() {
    local start=$SECONDS ldflags
    if [[ ! -x $KUBE_BIN/kube-apiserver || ! -x $KUBE_BIN/kubectl || ! -x $ETCD_BIN/etcd || ! -x $HELM_BIN/helm ]]; then
        command -v go >/dev/null || die "go not found (Go 1.25 or newer is needed to build the control plane)"
    fi
    if [[ ! -x $KUBE_BIN/kube-apiserver || ! -x $KUBE_BIN/kubectl ]]; then
        log "first build of Kubernetes v$KUBE_VERSION: about 5-10 minutes on 2 cores, once"
        ldflags=$(kube_ldflags)
        [[ -x $KUBE_BIN/kube-apiserver ]] || go_build "$REPO_ROOT/tools/kube" "$KUBE_BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
        [[ -x $KUBE_BIN/kubectl ]] || go_build "$REPO_ROOT/tools/kube" "$KUBE_BIN/kubectl" k8s.io/kubernetes/cmd/kubectl "$ldflags"
    fi
    [[ -x $ETCD_BIN/etcd ]] || go_build "$REPO_ROOT/tools/etcd" "$ETCD_BIN/etcd" go.etcd.io/etcd/server/v3
    if [[ ! -x $HELM_BIN/helm ]]; then
        log "building helm v$HELM_VERSION (go install helm.sh/helm/v4/cmd/helm) ..."
        local hstart=$SECONDS
        mkdir -p "$HELM_BIN"
        (cd "$REPO_ROOT" && CGO_ENABLED=0 GOBIN=$HELM_BIN go install -v -trimpath \
            -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
            "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION" 2>&1) | progress helm
        log "built $HELM_BIN/helm in $((SECONDS - hstart)) s"
    fi
    mkdir -p "$ALL_BIN"
    ln -sf "$KUBE_BIN/kube-apiserver" "$KUBE_BIN/kubectl" "$ETCD_BIN/etcd" "$HELM_BIN/helm" "$ALL_BIN/"
    if (( SECONDS - start > 1 )); then log "control plane tools ready in $((SECONDS - start)) s: $ALL_BIN"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

make_certs() {  # DIR
    local d=$1
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=keyward-test-ca" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$d/san.ext"
    openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 30 -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
    # Service-account tokens (TokenRequest) are signed with this key pair.
    openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
    openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

wait_ready() {  # URL TOKEN CA SECONDS PIDFILE...
    local url=$1 token=$2 ca=$3 limit=$4; shift 4
    local deadline=$((SECONDS + limit)) pidfile
    while (( SECONDS < deadline )); do
        if curl -sf --cacert "$ca" -H "Authorization: Bearer $token" "$url/readyz" >/dev/null 2>&1; then
            return 0
        fi
        for pidfile in "$@"; do
            kill -0 "$(cat "$pidfile")" 2>/dev/null || return 1
        done
        sleep 0.2
    done
    return 1
}

up() {
    install
    local home=${KEYWARD_KUBE_HOME:-}
    if [[ -z $home ]]; then home=$(mktemp -d /tmp/keyward-kube.XXXXXX); fi
    mkdir -p "$home"
    home=$(cd "$home" && pwd -P)
    [[ -e $home/apiserver.pid ]] && die "$home already has a control plane (scripts/kube.sh down first)"
    local start=$SECONDS
    local etcd_port peer_port api_port token
    etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
    token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    make_certs "$home"
    printf '%s,keyward-admin,keyward-admin,"system:masters"\n' "$token" >"$home/tokens.csv"
    cat >"$home/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
EOF
    log "starting etcd v$ETCD_VERSION on 127.0.0.1:$etcd_port"
    "$ETCD_BIN/etcd" --name keyward-test --data-dir "$home/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "keyward-test=http://127.0.0.1:$peer_port" \
        --unsafe-no-fsync --watch-progress-notify-interval=5s --log-level=warn \
        >"$home/etcd.log" 2>&1 &
    echo $! >"$home/etcd.pid"
    log "starting kube-apiserver v$KUBE_VERSION on 127.0.0.1:$api_port"
    # The flags controller-runtime's envtest passes, plus RBAC, the audit log and token auth.
    # Kept as a script of its own, so that `apiserver-start` brings it back as it was.
    cat >"$home/apiserver.sh" <<APISERVER
exec "$KUBE_BIN/kube-apiserver" \\
    --etcd-servers "http://127.0.0.1:$etcd_port" \\
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \\
    --cert-dir "$home/certs" --tls-cert-file "$home/apiserver.crt" --tls-private-key-file "$home/apiserver.key" \\
    --client-ca-file "$home/ca.crt" --token-auth-file "$home/tokens.csv" \\
    --authorization-mode RBAC \\
    --service-account-issuer https://kubernetes.default.svc.cluster.local \\
    --service-account-key-file "$home/sa.pub" --service-account-signing-key-file "$home/sa.key" \\
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \\
    --disable-admission-plugins ServiceAccount \\
    --audit-policy-file "$home/audit-policy.yaml" --audit-log-path "$home/audit.log" \\
    --audit-log-format json --audit-log-mode blocking \\
    ${KEYWARD_KUBE_APISERVER_ARGS:-}
APISERVER
    echo "https://127.0.0.1:$api_port" >"$home/apiserver.url"
    echo "$token" >"$home/admin.token"
    if ! apiserver_start "$home"; then
        tail -n 20 "$home/etcd.log" >&2 || true
        KEYWARD_KUBE_HOME=$home down
        die "kube-apiserver did not become ready (logs above)"
    fi
    local url="https://127.0.0.1:$api_port"
    cat >"$home/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: keyward-local
    cluster:
      server: $url
      certificate-authority-data: $(base64 -w0 "$home/ca.crt")
users:
  - name: keyward-admin
    user:
      token: $token
contexts:
  - name: keyward-local
    context: {cluster: keyward-local, user: keyward-admin}
current-context: keyward-local
EOF
    log "ready in $((SECONDS - start)) s; kubeconfig: $home/kubeconfig"
    echo "KUBECONFIG=$home/kubeconfig"
    echo "KEYWARD_KUBE_HOME=$home"
    echo "KEYWARD_KUBE_AUDIT_LOG=$home/audit.log"
    echo "KEYWARD_KUBE_BIN=$ALL_BIN"
    echo "KEYWARD_KUBE_SERVER=$url"
    echo "KEYWARD_ETCD_URL=http://127.0.0.1:$etcd_port"
}

# Starts the apiserver of HOME (as `up` configured it) and waits for /readyz; logs appended.
apiserver_start() {  # HOME
    local home=$1
    [[ -e $home/apiserver.pid ]] && kill -0 "$(cat "$home/apiserver.pid")" 2>/dev/null && return 0
    bash "$home/apiserver.sh" >>"$home/apiserver.log" 2>&1 &
    echo $! >"$home/apiserver.pid"
    if ! wait_ready "$(cat "$home/apiserver.url")" "$(cat "$home/admin.token")" "$home/ca.crt" 120 \
        "$home/etcd.pid" "$home/apiserver.pid"; then
        tail -n 20 "$home/apiserver.log" >&2 || true
        return 1
    fi
}

stop_pid() {  # PIDFILE
    local pidfile=$1 pid i
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

down() {
    local home=${KEYWARD_KUBE_HOME:-}
    [[ -n $home ]] || die "down needs KEYWARD_KUBE_HOME (printed by up)"
    [[ -d $home ]] || return 0
    stop_pid "$home/apiserver.pid"
    stop_pid "$home/etcd.pid"
    rm -rf "$home"
    log "stopped and removed $home"
}

gomod() {
    local mod
    mod=$(cd "$REPO_ROOT" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    local staging="v0.${KUBE_VERSION#*.}"
    {
        echo "// Builds kube-apiserver and kubectl of one pinned Kubernetes release for keyward's tests"
        echo "// (scripts/kube.sh install). Generated by \`scripts/kube.sh gomod\` from the release's own"
        echo "// go.mod: a dependent module does not inherit its replace lines, and the v0.0.0 it requires"
        echo "// of every staging module is not served, so each is replaced with the release's v0.X.Y."
        echo "module keyward.dev/tools/kube"
        echo
        echo "go 1.25.0"
        echo
        echo "require k8s.io/kubernetes v$KUBE_VERSION"
        echo
        echo "tool ("
        echo "	k8s.io/kubernetes/cmd/kube-apiserver"
        echo "	k8s.io/kubernetes/cmd/kubectl"
        echo ")"
        echo
        echo "replace ("
        grep -E '^\s+k8s.io/[a-z-]+ v0\.0\.0$' "$mod" | awk -v v="$staging" '{printf "\t%s => %s %s\n",$1,$1,v}'
        echo ")"
    } >"$REPO_ROOT/tools/kube/go.mod"
    (cd "$REPO_ROOT/tools/kube" && go mod tidy)
    sed -i "s|^require go.etcd.io/etcd/server/v3 .*|require go.etcd.io/etcd/server/v3 v$ETCD_VERSION|" "$REPO_ROOT/tools/etcd/go.mod"
    (cd "$REPO_ROOT/tools/etcd" && go mod tidy)
    log "regenerated tools/kube/go.mod and tools/etcd/go.mod"
}

case ${1:-} in
    install) install ;;
    up) up ;;
    down) down ;;
    # A restart of the API server alone (the reliability suite): etcd and its data stay.
    apiserver-stop) stop_pid "${KEYWARD_KUBE_HOME:?KEYWARD_KUBE_HOME is required}/apiserver.pid" ;;
    apiserver-start) apiserver_start "${KEYWARD_KUBE_HOME:?KEYWARD_KUBE_HOME is required}" || die "kube-apiserver did not come back" ;;
    env) install; echo "KEYWARD_KUBE_BIN=$ALL_BIN" ;;
    gomod) gomod ;;
    *) echo "usage: $0 install|up|down|apiserver-stop|apiserver-start|env|gomod" >&2; exit 2 ;;
esac
