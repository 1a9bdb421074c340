#!/usr/bin/env bash
# A real, local Kubernetes cluster for keyward's tests and demo, built from published Go
# modules: kube-apiserver, etcd, kubectl and helm (`up`: a control plane, no node; the operator
# runs as a local process), and with `up --node` a real node where Pods start: containerd, runc,
# the CNI plugins, kubelet, kube-proxy, kube-scheduler and kube-controller-manager.
#
# Usage: scripts/kube.sh install|up [--node]|down|apiserver-stop|apiserver-start|env|gomod
#
#   install   build once per version into ~/.cache/keyward (tools/versions.env pins them; every
#             module comes from the Go module proxy with -mod=readonly):
#               kube-$V/bin/{kube-apiserver,kubectl,kubelet,kube-proxy,kube-scheduler,
#                 kube-controller-manager}        from k8s.io/kubernetes (tools/kube)
#               etcd-$V/bin/etcd                    from go.etcd.io/etcd/server/v3 (tools/etcd)
#               helm-$V/bin/helm                    from helm.sh/helm/v4 (go install)
#               containerd-$V/bin/{containerd,ctr,containerd-shim-runc-v2}  (tools/containerd)
#               runc-$V-seccomp/bin/runc            cgo, libseccomp (tools/runc)
#               cni-plugins-$V/bin/{bridge,host-local,loopback,portmap}     (tools/cni)
#               crictl-$V/bin/crictl                (tools/crictl)
#               pause-3.10.1-k$V/pause.tar          Kubernetes' build/pause/linux/pause.c, gcc
#                                                   -static, an OCI archive (scripts/oci_image.py)
#             and the Debian packages the node needs (iptables, gcc, libc6-dev, libseccomp-dev,
#             pkg-config) with apt-get. A no-op when everything exists. Progress goes to stderr.
#             Measured on this project's machine (2 cores shared with other builds, load ~7):
#             a cold install (empty GOCACHE, module cache warm) took 1579 s, of which the node's
#             binaries 468 s: kubelet 132 s, kube-proxy 12 s, scheduler 7 s, controller-manager
#             44 s (after kube-apiserver, which took 739 s under that load and 264 s idle),
#             containerd 102 s, ctr 8 s, shim 3 s, runc 35 s, CNI plugins 15 s, crictl 108 s.
#             The first build here, with the node's modules still to download, took 591 s.
#   up        start etcd and kube-apiserver on free loopback ports in $KEYWARD_KUBE_HOME (default:
#             a new temporary directory), RBAC on, service-account signing keys, the apiserver's
#             own audit log (every request at Metadata level, $HOME/audit.log); wait for /readyz.
#             Prints KEY=VALUE lines on stdout: KUBECONFIG (admin, system:masters),
#             KEYWARD_KUBE_HOME, KEYWARD_KUBE_AUDIT_LOG, KEYWARD_KUBE_BIN (kubectl, helm, etcd,
#             kube-apiserver, and the node's commands: ctr, crictl, runc, containerd, kubelet,
#             kube-proxy, kube-scheduler, kube-controller-manager), KEYWARD_KUBE_SERVER,
#             KEYWARD_ETCD_URL.
#   up --node the same, plus a node named keyward-node that is Ready (and the ServiceAccount
#             default/default exists) when up returns; about 10 s here (3 s of it the node).
#             Also prints KEYWARD_NODE_IP (the host's address as Pods reach it: test servers
#             listen there), KEYWARD_NODE_NAME and KEYWARD_CONTAINERD_ADDRESS (the socket for
#             `ctr --address "$KEYWARD_CONTAINERD_ADDRESS" -n k8s.io images import IMAGE.tar`).
#             Network, all inside the machine, all in 198.18.0.0/15 (RFC 2544):
#               host  kw-host 198.18.0.1: kube-apiserver binds here (not 127.0.0.1), and Pods
#                     reach the host here;
#               node  netns keyward-node, kw-node 198.18.0.2 (the node IP): containerd, kubelet,
#                     kube-proxy (iptables mode), scheduler, controller-manager run in it; its only
#                     routes are its link and 198.18.0.0/15 via the host: no default route;
#               Pods  198.19.0.0/24 on bridge kwpods0 in the node netns (CNI bridge, host-local,
#                     ipMasq false, routes only to 198.18.0.0/15); the host routes them via the
#                     node; Services 198.18.16.0/24, `kubernetes` = 198.18.16.1:443.
#             In the node netns, chain KEYWARD-EGRESS, first in FORWARD, drops forwarding from
#             the Pod range to anything outside 198.18.0.0/15. Images: Pods use images imported
#             with ctr (imagePullPolicy Never or IfNotPresent); containerd's only registry host
#             for every registry is http://127.0.0.1:9 (closed), so an image that is not there is
#             ErrImageNeverPull or a pull error naming 127.0.0.1:9, never a download. The sandbox
#             image is keyward.local/pause:3.10.1, imported by up.
#             Fixed names (netns keyward-node, links kw-host/kw-node, /run/keyward-node for the
#             runtime's sockets, cgroup /keyward-node in every v1 hierarchy): one --node cluster
#             per machine at a time; up refuses to start a second one.
#             Settings that exist only because of this machine (root in a Firecracker VM,
#             cgroup v1, no systemd, no CAP_SYS_RESOURCE, shared with other work):
#               kubelet failCgroupV1: false, cgroupDriver: cgroupfs, cgroupRoot /keyward-node,
#               failSwapOn: false, oomScoreAdj: 0; kube-proxy oomScoreAdj: 0; containerd
#               restrict_oom_score_adj (a negative oom_score_adj cannot be set without
#               CAP_SYS_RESOURCE; the kubelet asks -998 for sandboxes); evictionHard at 1 %,
#               image GC at 100 % (never evict for the disk other work fills); kube-proxy leaves
#               the machine-wide conntrack sizes alone. The kubelet sets vm.overcommit_memory,
#               vm.panic_on_oom, kernel.panic, kernel.panic_on_oops and kernel.keys.root_max*
#               (protectKernelDefaults: false): up saves them, down restores them.
#   down      stop everything of $KEYWARD_KUBE_HOME (required) and remove it. With a node: every
#             Pod stopped through the CRI, the components, shims and containers (whatever is
#             left in the node's cgroups or names its configuration), mounts under the home and
#             /run/keyward-node, the node's cgroups, the netns (its iptables go with it), the
#             veth, the kernel settings, /var/lib/cni, /var/log/containers and /run/netns when
#             up made them. Safe after a half-started or killed up. About 9 s with a node.
#   apiserver-stop, apiserver-start
#             stop the kube-apiserver of $KEYWARD_KUBE_HOME, or start it again with the flags
#             and port `up` gave it (etcd keeps running, so every object stays).
#   env       print KEYWARD_KUBE_BIN=… (the directory of every command above; installs first).
#             The CNI plugins are not commands: they stay in cni-plugins-$V/bin.
#   gomod     regenerate tools/kube/go.mod and tools/etcd/go.mod from tools/versions.env, and
#             move tools/{containerd,runc,cni,crictl} to the versions it names.
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

# GO_CGO (default 0) and GO_TAGS (build tags) change one build: runc's nsenter is C.
go_build() {  # DIR OUT PACKAGE [LDFLAGS]
    local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
    local start=$SECONDS
    log "building $(basename "$out") ($pkg) ..."
    mkdir -p "$(dirname "$out")"
    # pipefail carries go's exit status through the progress filter. -mod=readonly: the module
    # graph is exactly tools/*/go.mod and go.sum; a build that needs anything else fails
    # instead of resolving it on this machine.
    (cd "$dir" && CGO_ENABLED=${GO_CGO:-0} GOFLAGS=-mod=readonly go build -v -trimpath -tags "${GO_TAGS:-}" \
        -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg" 2>&1) \
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
    local start=$SECONDS ldflags tool
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
    install_node
    mkdir -p "$ALL_BIN"
    ln -sf "$KUBE_BIN/kube-apiserver" "$KUBE_BIN/kubectl" "$ETCD_BIN/etcd" "$HELM_BIN/helm" "$ALL_BIN/"
    # The node's commands in the same directory (ctr imports images into its containerd).
    for tool in "${NODE_KUBE_TOOLS[@]}"; do ln -sf "$KUBE_BIN/$tool" "$ALL_BIN/"; done
    for tool in "${CONTAINERD_TOOLS[@]}"; do ln -sf "$CONTAINERD_BIN/$tool" "$ALL_BIN/"; done
    ln -sf "$RUNC_BIN/runc" "$CRICTL_BIN/crictl" "$ALL_BIN/"
    if (( SECONDS - start > 1 )); then log "control plane tools ready in $((SECONDS - start)) s: $ALL_BIN"; fi
}

# The node's binaries: kubelet and friends beside kube-apiserver (the same module and replace
# block, tools/kube), containerd, runc, the CNI plugins and crictl from modules of their own.
NODE_KUBE_TOOLS=(kubelet kube-proxy kube-scheduler kube-controller-manager)
CONTAINERD_BIN=$CACHE/containerd-$CONTAINERD_VERSION/bin
CONTAINERD_TOOLS=(containerd ctr containerd-shim-runc-v2)
# With seccomp (libseccomp, cgo): Pods ask for the RuntimeDefault profile, keyward's chart too.
RUNC_BIN=$CACHE/runc-$RUNC_VERSION-seccomp/bin
# CNI plugins are not commands: they stay in a directory of their own, which containerd's
# configuration names, and out of the bin directory on the tests' PATH.
CNI_BIN=$CACHE/cni-plugins-$CNI_PLUGINS_VERSION/bin
CNI_PLUGINS=(main/bridge ipam/host-local main/loopback meta/portmap)
CRICTL_BIN=$CACHE/crictl-$CRICTL_VERSION/bin
# The sandbox ("pause") image: Kubernetes' own build/pause/linux/pause.c, linked statically.
PAUSE_TAG=3.10.1
PAUSE_DIR=$CACHE/pause-$PAUSE_TAG-k$KUBE_VERSION
PAUSE_IMAGE=keyward.local/pause:$PAUSE_TAG
# Debian packages the node needs: iptables (kube-proxy, the CNI portmap plugin, the egress
# chain), libc6-dev (libc.a for the static pause), gcc (runc's cgo, pause), libseccomp-dev and
# pkg-config (runc's seccomp).
NODE_DEBS=(iptables libc6-dev gcc libseccomp-dev pkg-config)

install_debs() {
    local missing=() pkg
    for pkg in "${NODE_DEBS[@]}"; do
        dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing Debian packages ${missing[*]}"
    "${sudo[@]}" apt-get update -qq >&2 || log "apt-get update failed; trying the cached lists"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
}

# The pause program and its OCI image tarball (scripts/oci_image.py: no daemon, no registry).
build_pause() {
    [[ -f $PAUSE_DIR/pause.tar ]] && return 0
    local src
    src=$(cd "$REPO_ROOT/tools/kube" && GOFLAGS=-mod=readonly go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/build/pause/linux/pause.c
    [[ -f $src ]] || die "no $src in the module cache"
    mkdir -p "$PAUSE_DIR"
    # The flags of build/pause/Makefile.
    gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_TAG-keyward" -o "$PAUSE_DIR/pause" "$src"
    python3 "$REPO_ROOT/scripts/oci_image.py" --ref "$PAUSE_IMAGE" --entrypoint /pause --user 65535:65535 \
        --file "$PAUSE_DIR/pause:/pause" --out "$PAUSE_DIR/pause.tar.tmp"
    mv "$PAUSE_DIR/pause.tar.tmp" "$PAUSE_DIR/pause.tar"
    log "built $PAUSE_IMAGE: $PAUSE_DIR/pause.tar"
}

install_node() {
    local start=$SECONDS ldflags tool plugin
    install_debs
    for tool in "${NODE_KUBE_TOOLS[@]}"; do
        [[ -x $KUBE_BIN/$tool ]] && continue
        ldflags=${ldflags:-$(kube_ldflags)}
        go_build "$REPO_ROOT/tools/kube" "$KUBE_BIN/$tool" "k8s.io/kubernetes/cmd/$tool" "$ldflags"
    done
    # containerd's own Makefile: no cgo for the shim; btrfs, devmapper and zfs snapshotters
    # (cgo or kernel features this node does not use) left out.
    for tool in "${CONTAINERD_TOOLS[@]}"; do
        [[ -x $CONTAINERD_BIN/$tool ]] && continue
        local tags="urfave_cli_no_docs no_btrfs no_devmapper no_zfs"
        [[ $tool == containerd-shim-runc-v2 ]] && tags+=" no_grpc"
        GO_TAGS=$tags go_build "$REPO_ROOT/tools/containerd" "$CONTAINERD_BIN/$tool" \
            "github.com/containerd/containerd/v2/cmd/$tool" \
            "-X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION"
    done
    # runc's nsenter is C (cgo, the system gcc), and so is libseccomp (linked dynamically).
    [[ -x $RUNC_BIN/runc ]] || GO_CGO=1 GO_TAGS="seccomp urfave_cli_no_docs" go_build "$REPO_ROOT/tools/runc" "$RUNC_BIN/runc" \
        github.com/opencontainers/runc "-X main.version=$RUNC_VERSION"
    for plugin in "${CNI_PLUGINS[@]}"; do
        [[ -x $CNI_BIN/${plugin#*/} ]] && continue
        go_build "$REPO_ROOT/tools/cni" "$CNI_BIN/${plugin#*/}" "github.com/containernetworking/plugins/plugins/$plugin" \
            "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v$CNI_PLUGINS_VERSION"
    done
    [[ -x $CRICTL_BIN/crictl ]] || go_build "$REPO_ROOT/tools/crictl" "$CRICTL_BIN/crictl" sigs.k8s.io/cri-tools/cmd/crictl \
        "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION"
    build_pause
    if (( SECONDS - start > 1 )); then log "node tools ready in $((SECONDS - start)) s"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

make_certs() {  # DIR [EXTRA_SAN]
    local d=$1 extra_san=${2:-}
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=keyward-test-ca" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc%s\nextendedKeyUsage=serverAuth\n' "$extra_san" >"$d/san.ext"
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

up() {  # [--node]
    local with_node=0
    case ${1:-} in
        "") ;;
        --node) with_node=1 ;;
        *) die "up: unknown option $1 (only --node)" ;;
    esac
    install
    local home=${KEYWARD_KUBE_HOME:-}
    if [[ -z $home ]]; then home=$(mktemp -d /tmp/keyward-kube.XXXXXX); fi
    mkdir -p "$home"
    home=$(cd "$home" && pwd -P)
    [[ -e $home/apiserver.pid ]] && die "$home already has a control plane (scripts/kube.sh down first)"
    local start=$SECONDS
    # Without --node: loopback only, as envtest. With it: the addresses of node_network.
    local api_addr=127.0.0.1 service_cidr=10.0.0.0/24 extra_san=""
    local authz_flags="--authorization-mode RBAC" admission_flags="--disable-admission-plugins ServiceAccount"
    if [[ $with_node == 1 ]]; then
        command -v iptables >/dev/null || die "iptables not found (scripts/kube.sh install installs it)"
        node_preflight
        mkdir -p "$home/node"
        # From here on a failed up leaves nothing behind: down undoes whatever was done.
        # shellcheck disable=SC2064 # $home is expanded now, on purpose
        trap "KEYWARD_KUBE_HOME='$home' down" EXIT
        node_record_machine "$home/node"
        node_network "$home"
        api_addr=$HOST_IP service_cidr=$SERVICE_CIDR
        extra_san=",IP:$HOST_IP,IP:$KUBERNETES_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc.cluster.local"
        # Node authorizes the kubelet (system:node:NAME); the ServiceAccount admission plugin is
        # back, as Pods need their token; the apiserver reaches kubelets with a client
        # certificate (logs, exec).
        authz_flags="--authorization-mode Node,RBAC --kubelet-client-certificate $home/kubelet-client.crt"
        authz_flags+=" --kubelet-client-key $home/kubelet-client.key --kubelet-preferred-address-types InternalIP"
        admission_flags=""
    fi
    local etcd_port peer_port api_port token
    etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
    token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    make_certs "$home" "$extra_san"
    if [[ $with_node == 1 ]]; then node_certs "$home"; fi
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
    log "starting kube-apiserver v$KUBE_VERSION on $api_addr:$api_port"
    # The flags controller-runtime's envtest passes, plus RBAC, the audit log and token auth.
    # Kept as a script of its own, so that `apiserver-start` brings it back as it was.
    cat >"$home/apiserver.sh" <<APISERVER
exec "$KUBE_BIN/kube-apiserver" \\
    --etcd-servers "http://127.0.0.1:$etcd_port" \\
    --bind-address $api_addr --advertise-address $api_addr --secure-port "$api_port" \\
    --cert-dir "$home/certs" --tls-cert-file "$home/apiserver.crt" --tls-private-key-file "$home/apiserver.key" \\
    --client-ca-file "$home/ca.crt" --token-auth-file "$home/tokens.csv" \\
    $authz_flags \\
    --service-account-issuer https://kubernetes.default.svc.cluster.local \\
    --service-account-key-file "$home/sa.pub" --service-account-signing-key-file "$home/sa.key" \\
    --service-cluster-ip-range $service_cidr --allow-privileged=true \\
    $admission_flags \\
    --audit-policy-file "$home/audit-policy.yaml" --audit-log-path "$home/audit.log" \\
    --audit-log-format json --audit-log-mode blocking \\
    ${KEYWARD_KUBE_APISERVER_ARGS:-}
APISERVER
    echo "https://$api_addr:$api_port" >"$home/apiserver.url"
    echo "$token" >"$home/admin.token"
    # The node's components get their tokens before the apiserver reads tokens.csv.
    if [[ $with_node == 1 ]]; then node_configs "$home" "https://$api_addr:$api_port"; fi
    if ! apiserver_start "$home"; then
        tail -n 20 "$home/etcd.log" >&2 || true
        KEYWARD_KUBE_HOME=$home down
        die "kube-apiserver did not become ready (logs above)"
    fi
    local url="https://$api_addr:$api_port"
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
    if [[ $with_node == 1 ]] && ! node_up "$home"; then
        KEYWARD_KUBE_HOME=$home down
        die "the node did not become Ready (logs above; the node's logs were in $home/node/*.log)"
    fi
    log "ready in $((SECONDS - start)) s; kubeconfig: $home/kubeconfig"
    echo "KUBECONFIG=$home/kubeconfig"
    echo "KEYWARD_KUBE_HOME=$home"
    echo "KEYWARD_KUBE_AUDIT_LOG=$home/audit.log"
    echo "KEYWARD_KUBE_BIN=$ALL_BIN"
    echo "KEYWARD_KUBE_SERVER=$url"
    echo "KEYWARD_ETCD_URL=http://127.0.0.1:$etcd_port"
    if [[ $with_node == 1 ]]; then
        trap - EXIT
        echo "KEYWARD_NODE_IP=$HOST_IP"
        echo "KEYWARD_NODE_NAME=$NODE_NAME"
        echo "KEYWARD_CONTAINERD_ADDRESS=$NODE_RUN/containerd.sock"
    fi
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

# ---------------------------------------------------------------------------------------------
# The node (`up --node`). Fixed names: one --node cluster per machine at a time.
NODE_NAME=keyward-node
NODE_NETNS=keyward-node
# Runtime sockets need short paths (a unix socket path is at most 108 bytes, a shim socket
# directory at most 42), so containerd's state lives here and not under $KEYWARD_KUBE_HOME.
NODE_RUN=/run/keyward-node
# Every address comes from 198.18.0.0/15 (RFC 2544, never routed on the internet) and lives on
# interfaces up creates: a veth pair between the host (HOST_IP, where the apiserver listens and
# where Pods reach the host) and the node's network namespace (NODE_IP); the Pods' bridge is
# inside that namespace. Nothing has a route beyond these ranges.
CLUSTER_RANGE=198.18.0.0/15
HOST_IF=kw-host
NODE_IF=kw-node
HOST_IP=198.18.0.1
NODE_IP=198.18.0.2
LINK_PREFIX=24
POD_CIDR=198.19.0.0/24
POD_GATEWAY=198.19.0.1
POD_BRIDGE=kwpods0
SERVICE_CIDR=198.18.16.0/24
KUBERNETES_SERVICE_IP=198.18.16.1
EGRESS_CHAIN=KEYWARD-EGRESS
# Every v1 hierarchy gets a directory of this name: the kubelet's cgroupRoot.
NODE_CGROUP=keyward-node
# Kernel settings the kubelet sets for itself (protectKernelDefaults: false): saved by up,
# restored by down.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Paths the kubelet (device-plugins), libcni (its cache), `ip netns` and containerd's shim (its
# defaults for fifos, sockets and runc state, at times, whatever socket_dir and Root say) write
# to whatever their configuration says; down removes those that up found missing.
NODE_FIXED_DIRS=(/var/lib/kubelet /var/log/containers /var/lib/cni /run/netns /run/containerd)

in_node() { nsenter --net="/run/netns/$NODE_NETNS" "$@"; }

node_preflight() {
    if [[ -e /run/netns/$NODE_NETNS || -e $NODE_RUN ]]; then
        die "a --node cluster already runs here ($(cat "$NODE_RUN/owner" 2>/dev/null || echo "owner unknown")): scripts/kube.sh down it first"
    fi
    [[ -d /sys/fs/cgroup/memory ]] || die "no cgroup v1 memory hierarchy under /sys/fs/cgroup"
    mkdir -p "$NODE_RUN"
}

node_network() {  # HOME
    local home=$1
    echo "$home" >"$NODE_RUN/owner"
    ip netns add "$NODE_NETNS"
    ip link add "$HOST_IF" type veth peer name "$NODE_IF" netns "$NODE_NETNS"
    # No IPv6 on the node's links: not even link-local traffic.
    sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1" 2>/dev/null || true
    ip addr add "$HOST_IP/$LINK_PREFIX" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    in_node sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    in_node ip link set lo up
    in_node ip addr add "$NODE_IP/$LINK_PREFIX" dev "$NODE_IF"
    in_node ip link set "$NODE_IF" up
    # Replies to Pods go back through the node; this route goes away with the interface.
    ip route add "$POD_CIDR" via "$NODE_IP" dev "$HOST_IF"
    # The node's only route beyond its link: the cluster's own ranges (Services), via the host.
    in_node ip route add "$CLUSTER_RANGE" via "$HOST_IP" dev "$NODE_IF"
    # Pods reach the API server and the host through the node: it forwards (in its own
    # namespace; the host's ip_forward is untouched).
    in_node sysctl -qw net.ipv4.ip_forward=1
    # Forwarding from the Pods to anything outside the cluster's ranges is dropped, whatever
    # else a Service or a later rule says.
    in_node iptables -w -N "$EGRESS_CHAIN"
    in_node iptables -w -A "$EGRESS_CHAIN" -s "$POD_CIDR" -d "$CLUSTER_RANGE" -j RETURN
    in_node iptables -w -A "$EGRESS_CHAIN" -s "$POD_CIDR" -j DROP
    in_node iptables -w -I FORWARD 1 -j "$EGRESS_CHAIN"
}

node_certs() {  # HOME
    local d=$1
    # The apiserver's client certificate towards kubelets (system:masters may proxy to them).
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
        -keyout "$d/kubelet-client.key" -out "$d/kubelet-client.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
    openssl x509 -req -in "$d/kubelet-client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 30 -extfile "$d/client.ext" -out "$d/kubelet-client.crt" 2>/dev/null
}

# A kubeconfig for one of the node's components, with a token of its own in tokens.csv.
component_kubeconfig() {  # HOME URL NAME USER GROUP
    local home=$1 url=$2 name=$3 user=$4 group=$5 token
    token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s,%s,%s,"%s"\n' "$token" "$user" "$user" "$group" >>"$home/tokens.csv"
    cat >"$home/node/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$url", certificate-authority: "$home/ca.crt"}}]
users: [{name: $name, user: {token: "$token"}}]
contexts: [{name: local, context: {cluster: local, user: $name}}]
current-context: local
EOF
}

node_configs() {  # HOME URL
    local home=$1 url=$2 n=$1/node
    mkdir -p "$n/cni/net.d" "$n/cni/ipam" "$n/pod-logs" "$n/kubelet" "$NODE_RUN/certs.d/_default"
    component_kubeconfig "$home" "$url" kubelet "system:node:$NODE_NAME" system:nodes
    component_kubeconfig "$home" "$url" kube-proxy system:kube-proxy system:node-proxier
    # The controller manager runs every controller under its own name (no per-controller
    # ServiceAccounts), and a test control plane needs no finer split: both are masters.
    component_kubeconfig "$home" "$url" kube-controller-manager system:kube-controller-manager system:masters
    component_kubeconfig "$home" "$url" kube-scheduler system:kube-scheduler system:masters
    # Image pulls never leave the machine: every registry's only host is a closed loopback
    # port, so a missing image is a pull error ("connection refused"), never a download. The
    # node's namespace has no route out either.
    cat >"$NODE_RUN/certs.d/_default/hosts.toml" <<'EOF'
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
    node_containerd_config "$n"
    # ipMasq false: Pods' traffic keeps its source address; it never leaves the machine.
    cat >"$n/cni/net.d/10-keyward.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "keyward-pods", "plugins": [
  {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$n/cni/ipam",
            "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
            "routes": [{"dst": "$CLUSTER_RANGE"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
    node_kubelet_config "$home"
    cat >"$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $n/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables: {masqueradeAll: false, localhostNodePorts: false}
oomScoreAdj: 0
# Leave the (machine-wide) conntrack table size and timeouts alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

node_containerd_config() {  # NODE_DIR
    local n=$1
    cat >"$n/containerd.toml" <<EOF
version = 3
root = "$n/containerd"
state = "$NODE_RUN/containerd"
[grpc]
  address = "$NODE_RUN/containerd.sock"
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "$NODE_RUN/s"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$NODE_RUN/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # This machine: root without CAP_SYS_RESOURCE may not lower an oom_score_adj, and the
  # kubelet asks -998 for every sandbox; clamp to containerd's own (0).
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$n/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$RUNC_BIN/runc"
        SystemdCgroup = false
        Root = "$NODE_RUN/runc"
EOF
}

node_kubelet_config() {  # HOME
    local home=$1 n=$1/node
    cat >"$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$NODE_RUN/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $home/ca.crt}
authorization: {mode: Webhook}
podLogsDir: $n/pod-logs
# This machine: cgroup v1 (deprecated in 1.35), no systemd, the node's own cgroup root.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP
failSwapOn: false
# No CAP_SYS_RESOURCE here: a negative oom_score_adj cannot be set.
oomScoreAdj: 0
# No DNS servers of the host in Pods (they could not be reached anyway).
resolvConf: ""
# A shared test machine: evict nothing for the disk or memory other work uses.
evictionHard: {memory.available: 1Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
protectKernelDefaults: false
serializeImagePulls: false
EOF
}

node_cgroups() {
    local h
    for h in /sys/fs/cgroup/*/; do
        [[ $h == */unified/ ]] && continue
        mkdir -p "$h$NODE_CGROUP"
        # A new cpuset cgroup starts with no CPUs and no memory nodes.
        if [[ -f $h$NODE_CGROUP/cpuset.cpus ]]; then
            cat "${h}cpuset.cpus" >"$h$NODE_CGROUP/cpuset.cpus"
            cat "${h}cpuset.mems" >"$h$NODE_CGROUP/cpuset.mems"
        fi
    done
}

start_node_process() {  # HOME NAME COMMAND...
    local home=$1 name=$2; shift 2
    # nsenter and env exec: the pid is the component's own (a backgrounded function would
    # leave a subshell in between).
    nsenter --net="/run/netns/$NODE_NETNS" env PATH="$CONTAINERD_BIN:$RUNC_BIN:$PATH" "$@" >"$home/node/$name.log" 2>&1 &
    echo $! >"$home/node/$name.pid"
}

wait_for() {  # SECONDS WHAT COMMAND...
    local limit=$1 what=$2 deadline; shift 2
    deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        (( SECONDS < deadline )) || { log "timed out waiting for $what"; return 1; }
        sleep 0.5
    done
}

node_ready() {  # KUBECONFIG
    [[ $("$KUBE_BIN/kubectl" --kubeconfig "$1" get node "$NODE_NAME" \
        -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# What down restores: the kernel settings the kubelet changes, the fixed paths that did not
# exist, and whether /run/netns was a mount point (`ip netns add` makes it one).
node_record_machine() {  # NODE_DIR
    local n=$1 sysctl dir
    for sysctl in "${KUBELET_SYSCTLS[@]}"; do
        echo "$sysctl=$(sysctl -n "$sysctl")" >>"$n/sysctls.saved"
    done
    for dir in "${NODE_FIXED_DIRS[@]}"; do
        if [[ ! -e $dir ]]; then echo "$dir" >>"$n/created-dirs"; fi
    done
    if ! mountpoint -q /run/netns 2>/dev/null; then touch "$n/netns-mount-created"; fi
}

node_up() {  # HOME
    local home=$1 n=$1/node start=$SECONDS
    node_cgroups
    log "starting containerd v$CONTAINERD_VERSION, kubelet, kube-proxy, scheduler, controller-manager in netns $NODE_NETNS"
    start_node_process "$home" containerd "$CONTAINERD_BIN/containerd" --config "$n/containerd.toml"
    wait_for 30 containerd "$CONTAINERD_BIN/ctr" --address "$NODE_RUN/containerd.sock" version || return 1
    "$CONTAINERD_BIN/ctr" --address "$NODE_RUN/containerd.sock" -n k8s.io images import "$PAUSE_DIR/pause.tar" >&2 || return 1
    start_node_process "$home" kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
        --kubeconfig "$n/kube-controller-manager.kubeconfig" --bind-address 127.0.0.1 --leader-elect=false \
        --root-ca-file "$home/ca.crt" --service-account-private-key-file "$home/sa.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" --controllers '*,-cloud-node-lifecycle'
    start_node_process "$home" kube-scheduler "$KUBE_BIN/kube-scheduler" \
        --kubeconfig "$n/kube-scheduler.kubeconfig" --bind-address 127.0.0.1 --leader-elect=false
    start_node_process "$home" kubelet "$KUBE_BIN/kubelet" --config "$n/kubelet.yaml" \
        --kubeconfig "$n/kubelet.kubeconfig" --root-dir "$n/kubelet" --cert-dir "$n/kubelet/pki" \
        --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
    start_node_process "$home" kube-proxy "$KUBE_BIN/kube-proxy" --config "$n/kube-proxy.yaml"
    if ! wait_for 90 "node $NODE_NAME Ready" node_ready "$home/kubeconfig" \
        || ! wait_for 30 "ServiceAccount default/default" "$KUBE_BIN/kubectl" --kubeconfig "$home/kubeconfig" get serviceaccount default; then
        local f
        for f in "$n"/*.log; do log "--- $f"; tail -n 15 "$f" >&2; done
        return 1
    fi
    node_egress_first || return 1
    log "node $NODE_NAME Ready in $((SECONDS - start)) s"
}

# kube-proxy puts its FORWARD jumps in front of the egress chain on its first sync (they accept
# only marked and established traffic, which a Pod's new connection out is not); the chain goes
# back to the front once they are there, and kube-proxy does not reorder rules that exist.
node_egress_first() {
    wait_for 30 "kube-proxy's FORWARD rules" sh -c "nsenter --net=/run/netns/$NODE_NETNS iptables -w -S FORWARD | grep -q KUBE-FORWARD" || return 1
    in_node iptables -w -I FORWARD 1 -j "$EGRESS_CHAIN"
    local rules old
    rules=$(in_node iptables -w -S FORWARD | grep '^-A ')
    # The older copy, by its position (a rule spec would delete the first, the new one).
    old=$(grep -n -- "^-A FORWARD -j $EGRESS_CHAIN\$" <<<"$rules" | sed -n '2s/:.*//p')
    [[ -n $old ]] && in_node iptables -w -D FORWARD "$old"
}

# Stops what node_up started; every step tolerates a half-started up.
node_stop() {  # HOME
    local home=$1 n=$1/node
    # The kubelet first, or it would start the Pods again; containerd last.
    stop_pid "$n/kubelet.pid" "$n/kube-proxy.pid" "$n/kube-scheduler.pid" "$n/kube-controller-manager.pid"
    if [[ -S $NODE_RUN/containerd.sock && -f $n/containerd.pid ]]; then
        # Stopping every Pod through the CRI releases its address, netns and mounts.
        timeout 60 "$CRICTL_BIN/crictl" --runtime-endpoint "unix://$NODE_RUN/containerd.sock" rmp -fa >/dev/null 2>&1 || true
    fi
    stop_pid "$n/containerd.pid"
    node_kill_leftovers "$n"
}

# Undoes what up --node changed on the machine, once nothing of the node runs.
node_cleanup() {  # HOME
    local n=$1/node
    node_unmount "$n" "$NODE_RUN"
    node_remove_cgroups
    ip netns del "$NODE_NETNS" 2>/dev/null || true
    ip link del "$HOST_IF" 2>/dev/null || true
    if [[ -f $n/sysctls.saved ]]; then sysctl -qp "$n/sysctls.saved" >/dev/null || true; fi
    node_remove_fixed_paths "$n"
    rm -rf "$NODE_RUN"
}

# Whatever outlived its pid file: every process in the node's cgroups (containers), every
# process started with this node's containerd address (shims) or its configuration files.
node_kill_leftovers() {  # NODE_DIR
    local n=$1 pids=() pid procs i
    for i in 1 2 3; do
        pids=()
        for procs in /sys/fs/cgroup/*/"$NODE_CGROUP"; do
            [[ -d $procs ]] || continue
            while read -r pid; do pids+=("$pid"); done < <(find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null)
        done
        # One grep over every command line; "[/]" keeps grep from matching its own.
        while read -r pid; do
            pid=${pid#/proc/}; pids+=("${pid%/cmdline}")
        done < <(grep -lsa -e "${NODE_RUN}[/]containerd.sock" -e "${n}[/]" /proc/[0-9]*/cmdline || true)
        [[ ${#pids[@]} -eq 0 ]] && return 0
        log "killing ${#pids[@]} leftover node processes (try $i)"
        kill -9 "${pids[@]}" 2>/dev/null || true
        sleep 0.5
    done
}

node_unmount() {  # DIR...
    local dir mounts=() m
    for dir in "$@"; do
        # /proc/mounts escapes spaces as \040; none of these paths has one.
        while read -r m; do mounts+=("$m"); done < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r)
    done
    for m in "${mounts[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
}

node_remove_cgroups() {
    local root
    for root in /sys/fs/cgroup/*/"$NODE_CGROUP"; do
        [[ -d $root ]] || continue
        find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
        if [[ -d $root ]]; then log "could not remove cgroup $root"; fi
    done
}

node_remove_fixed_paths() {  # NODE_DIR
    local n=$1 link dir
    for link in /var/log/containers/*.log; do
        if [[ -L $link && $(readlink "$link") == "$n"/* ]]; then rm -f "$link"; fi
    done
    rm -f /var/lib/cni/results/keyward-pods-* /var/lib/cni/results/cni-loopback-* 2>/dev/null || true
    # Only when no other network namespace is left in it.
    if [[ -f $n/netns-mount-created ]] && [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then
        umount /run/netns 2>/dev/null || true
    fi
    if [[ -f $n/created-dirs ]]; then
        # /run/netns only when empty: another network namespace there is someone else's.
        while read -r dir; do
            if [[ $dir == /run/netns ]]; then rmdir "$dir" 2>/dev/null || true; else rm -rf "$dir"; fi
        done <"$n/created-dirs"
    fi
}

# Stops the processes of the pid files together (SIGTERM, up to 10 s, then SIGKILL).
stop_pid() {  # PIDFILE...
    local pidfile pids=() pid i alive
    for pidfile in "$@"; do
        if [[ -f $pidfile ]]; then pids+=("$(cat "$pidfile")"); fi
    done
    [[ ${#pids[@]} -eq 0 ]] && return 0
    kill "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive=0
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        (( alive )) || break
        sleep 0.1
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    rm -f "$@"
}

down() {
    local home=${KEYWARD_KUBE_HOME:-}
    [[ -n $home ]] || die "down needs KEYWARD_KUBE_HOME (printed by up)"
    [[ -d $home ]] || return 0
    # The node first: its components talk to the apiserver until they stop. Its network last:
    # the apiserver listens there, and talks to itself there while it shuts down.
    if [[ -d $home/node ]]; then node_stop "$home"; fi
    stop_pid "$home/apiserver.pid"
    stop_pid "$home/etcd.pid"
    if [[ -d $home/node ]]; then node_cleanup "$home"; fi
    rm -rf "$home"
    log "stopped and removed $home"
}

gomod() {
    local mod
    mod=$(cd "$REPO_ROOT" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    local staging="v0.${KUBE_VERSION#*.}"
    {
        echo "// Builds kube-apiserver, kubectl and the node's kubelet, kube-proxy, kube-scheduler and"
        echo "// kube-controller-manager of one pinned Kubernetes release for keyward's tests"
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
        printf '\tk8s.io/kubernetes/cmd/%s\n' kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubectl kubelet
        echo ")"
        echo
        echo "replace ("
        grep -E '^\s+k8s.io/[a-z-]+ v0\.0\.0$' "$mod" | awk -v v="$staging" '{printf "\t%s => %s %s\n",$1,$1,v}'
        echo ")"
    } >"$REPO_ROOT/tools/kube/go.mod"
    (cd "$REPO_ROOT/tools/kube" && go mod tidy)
    sed -i "s|^require go.etcd.io/etcd/server/v3 .*|require go.etcd.io/etcd/server/v3 v$ETCD_VERSION|" "$REPO_ROOT/tools/etcd/go.mod"
    (cd "$REPO_ROOT/tools/etcd" && go mod tidy)
    # The node's modules: one requirement each, moved with go get.
    local dir module
    for dir in containerd runc cni crictl; do
        case $dir in
            containerd) module=github.com/containerd/containerd/v2@v$CONTAINERD_VERSION ;;
            runc) module=github.com/opencontainers/runc@v$RUNC_VERSION ;;
            cni) module=github.com/containernetworking/plugins@v$CNI_PLUGINS_VERSION ;;
            crictl) module=sigs.k8s.io/cri-tools@v$CRICTL_VERSION ;;
        esac
        (cd "$REPO_ROOT/tools/$dir" && go get "$module" && go mod tidy)
    done
    log "regenerated tools/kube/go.mod and tools/etcd/go.mod; tools/{containerd,runc,cni,crictl} at tools/versions.env"
}

case ${1:-} in
    install) install ;;
    up) shift; up "$@" ;;
    down) down ;;
    # A restart of the API server alone (the reliability suite): etcd and its data stay.
    apiserver-stop) stop_pid "${KEYWARD_KUBE_HOME:?KEYWARD_KUBE_HOME is required}/apiserver.pid" ;;
    apiserver-start) apiserver_start "${KEYWARD_KUBE_HOME:?KEYWARD_KUBE_HOME is required}" || die "kube-apiserver did not come back" ;;
    env) install; echo "KEYWARD_KUBE_BIN=$ALL_BIN" ;;
    gomod) gomod ;;
    *) echo "usage: $0 install|up|down|apiserver-stop|apiserver-start|env|gomod" >&2; exit 2 ;;
esac
