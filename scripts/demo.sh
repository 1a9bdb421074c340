#!/usr/bin/env bash
# keyward end to end on one machine, as users run it: a real local Kubernetes cluster with a
# real node (kube-apiserver, etcd, kubelet, containerd, runc … built from Go modules,
# scripts/kube.sh up --node), keyward's own image built here (scripts/image.sh, no registry)
# and installed with `helm install`; two replicas start and one holds the Lease. The example
# company of examples/acme is applied with kubectl against a real privacyIDEA (reached by the
# Pods over TLS at the host's address, through a CA of the demo's own), its people having
# enrolled their own tokens; an offboarding by `kubectl patch` is revoked by the leader Pod and
# proven with /validate/check. Then, with the Deployment scaled to zero, `keyward plan` and
# `keyward apply` from the same tree.
#
#   scripts/demo.sh     (KEYWARD_DEMO_KEEP=1 leaves privacyIDEA and the cluster running)
#
# Root is needed (the node makes a network namespace, mounts and cgroups). The first run builds
# keyward, the cluster's binaries (into ~/.cache/keyward) and privacyIDEA's venv; see the README
# for how long that takes on a fresh machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
STARTED=$SECONDS

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building keyward"
cargo build --locked --quiet
KEYWARD=$REPO/target/debug/keyward

say "Building the cluster's binaries (once; progress below)"
# An assignment, not `eval "$(…)"`: set -e stops at a failed assignment, but not at a failed
# command substitution inside eval's arguments (which went on to "unbound variable").
TOOLS_ENV=$(bash scripts/kube.sh env)
eval "$TOOLS_ENV"
export KEYWARD_KUBE_BIN PATH=$KEYWARD_KUBE_BIN:$PATH

say "Starting privacyIDEA 3.14 on loopback (installs into a venv on first use)"
export KEYWARD_PI_HOME=${KEYWARD_PI_HOME:-$REPO/.cache/demo-privacyidea}
PI_ENV=$(bash scripts/privacyidea.sh start)
eval "$PI_ENV"
export KEYWARD_PI_URL KEYWARD_PI_ADMIN KEYWARD_PI_PASSWORD KEYWARD_PI_REALM KEYWARD_PI_RESOLVER KEYWARD_PI_HOME
echo "privacyIDEA at $KEYWARD_PI_URL, admin $KEYWARD_PI_ADMIN, realm $KEYWARD_PI_REALM"

say "Starting a local Kubernetes cluster with a node: scripts/kube.sh up --node"
node_started=$SECONDS
KUBE_ENV=$(KEYWARD_KUBE_HOME=$(mktemp -d /tmp/keyward-demo-kube.XXXXXX) bash scripts/kube.sh up --node)
eval "$KUBE_ENV"
export KUBECONFIG KEYWARD_KUBE_HOME KEYWARD_CONTAINERD_ADDRESS
FRONT_PID=
cleanup() {
    if [[ -n $FRONT_PID ]]; then kill "$FRONT_PID" 2>/dev/null || true; fi
    if [[ ${KEYWARD_DEMO_KEEP:-0} != 1 ]]; then
        bash scripts/kube.sh down || true
        bash scripts/privacyidea.sh stop || true
    else
        echo "left running: KUBECONFIG=$KUBECONFIG (stop: KEYWARD_KUBE_HOME=$KEYWARD_KUBE_HOME scripts/kube.sh down)"
    fi
}
trap cleanup EXIT
kubectl get nodes -o wide
echo "node Ready $((SECONDS - node_started)) s after up began; Pods reach the host at $KEYWARD_NODE_IP"

say "privacyIDEA over TLS at $KEYWARD_NODE_IP, with a certificate from the demo's own CA"
# keyward sends credentials over plain http to loopback only; a Pod is not on the host's
# loopback, so the MfaProvider names https://$KEYWARD_NODE_IP:PORT and trusts this CA.
PKI=$KEYWARD_KUBE_HOME/demo-pki
mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=keyward demo CA" -keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$KEYWARD_NODE_IP" -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 1 -out "$PKI/server.pem" -extfile <(printf '%s\n' \
        "subjectAltName=IP:$KEYWARD_NODE_IP" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth") 2>/dev/null
cat "$PKI/server.pem" "$PKI/ca.pem" > "$PKI/chain.pem"
python3 scripts/tls_front.py --listen "$KEYWARD_NODE_IP" --upstream "${KEYWARD_PI_URL#http://}" \
    --cert "$PKI/chain.pem" --key "$PKI/server.key" > "$PKI/front.env" 2> "$PKI/front.log" &
FRONT_PID=$!
for _ in $(seq 50); do [[ -s $PKI/front.env ]] && break; sleep 0.1; done
FRONT=$(sed -n 's/^KEYWARD_TLS_FRONT=//p' "$PKI/front.env")
[[ -n $FRONT ]] || { echo "the TLS front did not start: $(cat "$PKI/front.log")" >&2; exit 1; }
PI_TLS_URL=https://$FRONT
curl -sS --cacert "$PKI/ca.pem" -o /dev/null -w "GET $PI_TLS_URL/ -> %{http_code}\n" "$PI_TLS_URL/"

say "keyward's image, built here: scripts/image.sh build, then load into the node's containerd"
# The debug build above, without its debug information; the release workflow runs the same
# recipe on a release build.
IMAGE_OUT=$(bash scripts/image.sh build --strip-debug --binaries target/debug \
    --tag keyward.local/keyward:demo --out "$KEYWARD_KUBE_HOME/image")
eval "$IMAGE_OUT"
echo "$KEYWARD_IMAGE"
bash scripts/image.sh load "$KEYWARD_IMAGE_TAR"

# The GitOps tree, pointed at privacyIDEA through the front (examples/acme says
# http://127.0.0.1:5001), trusting the demo's CA.
TREE=$(mktemp -d)
for f in examples/acme/*.yaml; do
    sed -e "s#url: http://127.0.0.1:5001#url: $PI_TLS_URL#" \
        -e "s#password: keyward-admin#password: $KEYWARD_PI_PASSWORD#" "$f" > "$TREE/$(basename "$f")"
done
python3 - "$TREE/10-provider.yaml" "$PKI/ca.pem" <<'PY'
import sys
path, ca = sys.argv[1], open(sys.argv[2]).read()
bundle = "".join(f"    {line}\n" for line in ca.splitlines())
text = open(path).read()
anchor = text.index("\n  userMapping: ") + 1
open(path, "w").write(text[:anchor] + "  caBundle: |\n" + bundle + text[anchor:])
PY

users() { python3 scripts/pi_users.py "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

say "The people of acme enrol their own tokens in privacyIDEA's self-service"
declare -A SERIAL KEY TYPE
enrol() { # user kind [admin-enrol]
    local out
    [[ ${3:-} == admin ]] || users user add "$1" > /dev/null
    out=$(users "${3:+admin-}enrol" "$1" --type "$2")
    SERIAL[$1-$2]=$(field serial <<< "$out")
    KEY[$1-$2]=$(field otpkey_hex <<< "$out")
    TYPE[$1-$2]=$2
    printf '  %-11s enrolled %-4s %s\n' "$1" "$2" "${SERIAL[$1-$2]}"
}
enrol alice totp; enrol alice hotp
enrol bob totp;   enrol bob hotp
enrol carol totp
enrol dave totp;  enrol dave hotp
enrol erin totp
enrol frank totp
enrol breakglass totp
users user add grace > /dev/null && echo "  grace       has not enrolled yet"
say "dave left: HR already removed him from the user store (his tokens remain in privacyIDEA)"
users user del dave > /dev/null

# Each check uses the next OTP (privacyIDEA refuses a replayed one).
declare -A COUNTER
check() { # user kind -> prints the login result
    local id=$1-$2 counter
    if [[ -z ${COUNTER[$id]:-} ]]; then
        if [[ $2 == totp ]]; then COUNTER[$id]=$(( $(date +%s) / 30 - 2 )); else COUNTER[$id]=0; fi
    fi
    counter=${COUNTER[$id]}; COUNTER[$id]=$((counter + 1))
    if [[ $(users check "$1" --otpkey "${KEY[$id]}" --type "$2" --serial "${SERIAL[$id]}" --counter "$counter" | field authenticated) == True ]]; then
        printf '  %-11s %-4s %s  login OK\n' "$1" "$2" "${SERIAL[$id]}"
    else
        printf '  %-11s %-4s %s  login REFUSED\n' "$1" "$2" "${SERIAL[$id]}"
    fi
}
ALL="alice-totp alice-hotp bob-totp bob-hotp carol-totp erin-totp frank-totp breakglass-totp"

say "Before keyward: every current user logs in with their token"
for id in $ALL; do check "${id%-*}" "${id##*-}"; done

say "helm install keyward charts/keyward: the chart's defaults, this image, this provider host"
# The team's namespace first: the chart grants keyward its Role there.
kubectl apply -f "$TREE/00-namespace.yaml"
helm install keyward charts/keyward --namespace keyward-system --create-namespace \
    --set image.repository=keyward.local/keyward --set image.tag=demo --set image.pullPolicy=Never \
    --set "providerHosts={$FRONT}" --set 'watch.namespaces={acme}'
kubectl -n keyward-system rollout status deployment/keyward --timeout=5m
kubectl -n keyward-system get deployment,pods -o wide
LEADER=
for _ in $(seq 100); do
    LEADER=$(kubectl -n keyward-system get lease keyward-leader -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
    [[ -n $LEADER ]] && break
    sleep 0.2
done
echo "the Lease keyward-system/keyward-leader is held by the Pod $LEADER"
kubectl -n keyward-system logs "$LEADER" | grep -m1 'starting keyward operator'

# The chart writes the audit trail to the Pod's stdout (one JSON record per line).
audit() { kubectl -n keyward-system logs "$LEADER" | grep '^{"' | grep '"event":' || true; }
outcomes_of() { audit | grep '"event":"outcome"' | grep -c "\"user\":\"$1\"" || true; }

say "kubectl apply -f examples/acme (the CRDs came with the chart)"
kubectl apply -f "$TREE"
kubectl -n acme wait --for=condition=Ready mfaprovider/corp-pi --timeout=120s
for _ in $(seq 300); do
    [[ $(outcomes_of frank) -ge 1 && $(outcomes_of dave) -ge 1 ]] && break
    sleep 0.2
done
kubectl -n acme get employees,mfaproviders,accessgrants

say "Audit records of the first sweep, from the leader Pod's log (an intent before each provider call, then its outcome)"
audit

say "Offboarding alice: kubectl patch employee alice state=Offboarded"
start=$(date +%s%N)
kubectl -n acme patch employee alice --type merge -p '{"spec":{"state":"Offboarded"}}'
for _ in $(seq 600); do
    [[ $(outcomes_of alice) -ge 2 ]] && break
    sleep 0.05
done
[[ $(outcomes_of alice) -ge 2 ]] || { echo "alice's tokens were not revoked" >&2; exit 1; }
echo "alice's two tokens revoked at privacyIDEA by the Pod $LEADER, $(( ($(date +%s%N) - start) / 1000000 )) ms after kubectl patch"
audit | grep '"user":"alice"'
kubectl -n acme get employee alice
kubectl -n acme get events --field-selector involvedObject.name=alice

say "After the operator: leavers and people without a grant are refused, everyone else logs in"
for id in $ALL; do check "${id%-*}" "${id##*-}"; done

say "The operator stops: kubectl scale deployment keyward --replicas=0"
kubectl -n keyward-system scale deployment keyward --replicas=0
kubectl -n keyward-system wait --for=delete pod -l app.kubernetes.io/instance=keyward --timeout=90s
say "An admin enrols an HOTP token for bob out of band (devs hold TOTP only)"
enrol bob hotp admin


say "The CLI on the same tree: keyward validate -f examples/acme"
"$KEYWARD" validate -f "$TREE"

say "keyward plan -f examples/acme"
set +e; "$KEYWARD" plan --allow-host "$FRONT" -f "$TREE"; code=$?; set -e
echo "(exit code $code: 2 = changes pending)"

say "keyward apply -f examples/acme"
CLI_AUDIT=$TREE/cli-audit.jsonl
"$KEYWARD" apply --allow-host "$FRONT" -f "$TREE" --audit-log "$CLI_AUDIT"

say "Audit records ($CLI_AUDIT)"
cat "$CLI_AUDIT"

say "After keyward apply: bob's out-of-band HOTP is refused, everyone else still logs in"
for id in $ALL; do check "${id%-*}" "${id##*-}"; done

say "keyward plan again: nothing left to revoke (grace still has to enrol)"
set +e; "$KEYWARD" plan --allow-host "$FRONT" -f "$TREE"; code=$?; set -e
echo "(exit code $code: 0 = nothing to do)"
[[ $code == 0 ]]
echo "demo finished in $((SECONDS - STARTED)) s"
