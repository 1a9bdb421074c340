#!/usr/bin/env bash
# keyward end to end on one machine: a real privacyIDEA, the example company of
# examples/acme, its people enrolling their own tokens, then `keyward plan` and
# `keyward apply` — and proof with /validate/check that the leavers' tokens stopped working
# while everyone else's still work.
#
#   scripts/demo.sh              (KEYWARD_DEMO_KEEP=1 leaves privacyIDEA running afterwards)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building keyward"
cargo build --locked --quiet
KEYWARD=$REPO/target/debug/keyward

say "Starting privacyIDEA 3.14 on loopback (installs into a venv on first use)"
export KEYWARD_PI_HOME=${KEYWARD_PI_HOME:-$REPO/.cache/demo-privacyidea}
eval "$(bash scripts/privacyidea.sh start)"
export KEYWARD_PI_URL KEYWARD_PI_ADMIN KEYWARD_PI_PASSWORD KEYWARD_PI_REALM KEYWARD_PI_RESOLVER KEYWARD_PI_HOME
if [[ ${KEYWARD_DEMO_KEEP:-0} != 1 ]]; then
    trap 'bash scripts/privacyidea.sh stop' EXIT
fi
echo "privacyIDEA at $KEYWARD_PI_URL, admin $KEYWARD_PI_ADMIN, realm $KEYWARD_PI_REALM"

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
enrol() { # user kind
    local out
    users user add "$1" > /dev/null
    out=$(users enrol "$1" --type "$2")
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

say "keyward validate -f examples/acme"
"$KEYWARD" validate -f "$TREE"

say "keyward plan -f examples/acme"
set +e; "$KEYWARD" plan -f "$TREE"; code=$?; set -e
echo "(exit code $code: 2 = changes pending)"

say "keyward apply -f examples/acme"
AUDIT=$TREE/audit.jsonl
"$KEYWARD" apply -f "$TREE" --audit-log "$AUDIT"

say "Audit records ($AUDIT)"
cat "$AUDIT"

say "After keyward: leavers and people without a grant are refused, everyone else logs in"
for id in $ALL; do check "${id%-*}" "${id##*-}"; done

say "keyward plan again: nothing left to revoke (grace still has to enrol)"
set +e; "$KEYWARD" plan -f "$TREE"; code=$?; set -e
echo "(exit code $code: 0 = nothing to do)"
[[ $code == 0 ]]
