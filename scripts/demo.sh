#!/usr/bin/env bash
# keyward end to end on one machine: the operator on a real local Kubernetes control plane
# (kube-apiserver + etcd built from Go modules, scripts/kube.sh) against a real privacyIDEA,
# the example company of examples/acme applied with kubectl and its people enrolling their own
# tokens; an offboarding by `kubectl patch` proven with /validate/check; then `keyward plan` and
# `keyward apply` from the same tree.
#
#   scripts/demo.sh     (KEYWARD_DEMO_KEEP=1 leaves privacyIDEA and the control plane running)
#
# The first run builds kube-apiserver, kubectl, etcd and helm into ~/.cache/keyward (many
# minutes on 2 cores, once) and privacyIDEA into a venv (about a minute).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building keyward"
cargo build --locked --quiet
KEYWARD=$REPO/target/debug/keyward

say "Building the control plane tools (once; progress below)"
# An assignment, not `eval "$(…)"`: set -e stops at a failed assignment, but not at a failed
# command substitution inside eval's arguments (which went on to "unbound variable").
TOOLS_ENV=$(bash scripts/kube.sh env)
eval "$TOOLS_ENV"
export PATH=$KEYWARD_KUBE_BIN:$PATH

say "Starting privacyIDEA 3.14 on loopback (installs into a venv on first use)"
export KEYWARD_PI_HOME=${KEYWARD_PI_HOME:-$REPO/.cache/demo-privacyidea}
PI_ENV=$(bash scripts/privacyidea.sh start)
eval "$PI_ENV"
export KEYWARD_PI_URL KEYWARD_PI_ADMIN KEYWARD_PI_PASSWORD KEYWARD_PI_REALM KEYWARD_PI_RESOLVER KEYWARD_PI_HOME
echo "privacyIDEA at $KEYWARD_PI_URL, admin $KEYWARD_PI_ADMIN, realm $KEYWARD_PI_REALM"

say "Starting a local Kubernetes control plane: etcd and kube-apiserver $(kube-apiserver --version | cut -d' ' -f2)"
KUBE_ENV=$(KEYWARD_KUBE_HOME=$(mktemp -d /tmp/keyward-demo-kube.XXXXXX) bash scripts/kube.sh up)
eval "$KUBE_ENV"
export KUBECONFIG KEYWARD_KUBE_HOME
OPERATOR_PID=
cleanup() {
    if [[ -n $OPERATOR_PID ]]; then kill "$OPERATOR_PID" 2>/dev/null || true; wait "$OPERATOR_PID" 2>/dev/null || true; fi
    if [[ ${KEYWARD_DEMO_KEEP:-0} != 1 ]]; then
        bash scripts/kube.sh down || true
        bash scripts/privacyidea.sh stop || true
    else
        echo "left running: KUBECONFIG=$KUBECONFIG (stop: KEYWARD_KUBE_HOME=$KEYWARD_KUBE_HOME scripts/kube.sh down)"
    fi
}
trap cleanup EXIT
kubectl version

# The GitOps tree, pointed at this privacyIDEA (examples/acme says http://127.0.0.1:5001).
TREE=$(mktemp -d)
for f in examples/acme/*.yaml; do
    sed -e "s#url: http://127.0.0.1:5001#url: $KEYWARD_PI_URL#" \
        -e "s#password: keyward-admin#password: $KEYWARD_PI_PASSWORD#" "$f" > "$TREE/$(basename "$f")"
done

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

say "kubectl apply: keyward's CRDs, then examples/acme"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd/employees.keyward.dev crd/accessgrants.keyward.dev crd/mfaproviders.keyward.dev
kubectl apply -f "$TREE"

say "The chart's ServiceAccount and RBAC (helm template), and a token for it (TokenRequest)"
# No kubelet runs here, so the chart's Deployment would never start a Pod: keyward runs as a
# local process with exactly the identity and permissions the chart gives it in a cluster.
kubectl create namespace keyward-system --dry-run=client -o yaml | kubectl apply -f -
helm template keyward charts/keyward --namespace keyward-system --set 'watch.namespaces={acme}' \
    --set 'providerHosts={127.0.0.1}' \
    --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml | kubectl apply -f -
SA_KUBECONFIG=$KEYWARD_KUBE_HOME/keyward-sa.kubeconfig
cp "$KUBECONFIG" "$SA_KUBECONFIG"
KUBECONFIG=$SA_KUBECONFIG kubectl config set-credentials keyward-sa \
    --token="$(kubectl -n keyward-system create token keyward --duration=2h)" >/dev/null
KUBECONFIG=$SA_KUBECONFIG kubectl config set-context --current --user=keyward-sa >/dev/null
echo "keyward's identity: $(KUBECONFIG=$SA_KUBECONFIG kubectl auth whoami -o jsonpath='{.status.userInfo.username}')"

say "keyward run (the operator) as system:serviceaccount:keyward-system:keyward"
AUDIT=$TREE/audit.jsonl
KUBECONFIG=$SA_KUBECONFIG POD_NAME=keyward-demo "$KEYWARD" run --namespaces acme \
    --lease-namespace keyward-system --listen 127.0.0.1:0 --audit-log "$AUDIT" \
    2> "$TREE/operator.log" &
OPERATOR_PID=$!
kubectl -n acme wait --for=condition=Ready mfaprovider/corp-pi --timeout=60s
for _ in $(seq 100); do
    # Outcome records: each provider call is announced by an intent record before it is made.
    grep '"event":"outcome"' "$AUDIT" 2>/dev/null | grep -q '"user":"frank"' \
        && grep '"event":"outcome"' "$AUDIT" | grep -q '"user":"dave"' && break
    sleep 0.2
done
kubectl -n acme get employees,mfaproviders,accessgrants

say "Audit records of the first sweep (an intent before each provider call, then its outcome)"
cat "$AUDIT"

say "Offboarding alice: kubectl patch employee alice state=Offboarded"
start=$(date +%s%N)
kubectl -n acme patch employee alice --type merge -p '{"spec":{"state":"Offboarded"}}'
for _ in $(seq 300); do
    [[ $(grep '"event":"outcome"' "$AUDIT" 2>/dev/null | grep -c '"user":"alice"') -ge 2 ]] && break
    sleep 0.02
done
echo "alice's two tokens revoked at privacyIDEA $(( ($(date +%s%N) - start) / 1000000 )) ms after kubectl patch"
grep '"user":"alice"' "$AUDIT"
kubectl -n acme get employee alice
kubectl -n acme get events --field-selector involvedObject.name=alice

say "After the operator: leavers and people without a grant are refused, everyone else logs in"
for id in $ALL; do check "${id%-*}" "${id##*-}"; done

kill "$OPERATOR_PID"; wait "$OPERATOR_PID" 2>/dev/null || true; OPERATOR_PID=
say "The operator stopped. An admin enrols an HOTP token for bob out of band (devs hold TOTP only)"
enrol bob hotp admin


say "The CLI on the same tree: keyward validate -f examples/acme"
"$KEYWARD" validate -f "$TREE"

say "keyward plan -f examples/acme"
set +e; "$KEYWARD" plan -f "$TREE"; code=$?; set -e
echo "(exit code $code: 2 = changes pending)"

say "keyward apply -f examples/acme"
CLI_AUDIT=$TREE/cli-audit.jsonl
"$KEYWARD" apply -f "$TREE" --audit-log "$CLI_AUDIT"

say "Audit records ($CLI_AUDIT)"
cat "$CLI_AUDIT"

say "After keyward apply: bob's out-of-band HOTP is refused, everyone else still logs in"
for id in $ALL; do check "${id%-*}" "${id##*-}"; done

say "keyward plan again: nothing left to revoke (grace still has to enrol)"
set +e; "$KEYWARD" plan -f "$TREE"; code=$?; set -e
echo "(exit code $code: 0 = nothing to do)"
[[ $code == 0 ]]
