#!/usr/bin/env bash
# keyward on a pull request: validate the people tree, plan against the real providers, post
# the plan as one sticky PR comment, and fail the check when the plan is blocked or broken.
#
#   ci/keyward-pr.sh [PATH…]        (default: people/)
#
# Exit 0: valid, and the plan is empty or has changes that keyward may make once merged.
# Exit 1: invalid manifests, a provider error, or a plan over a revocation budget (blocked:
# merging it would revoke nothing until someone approves the digest; see the comment).
#
# Environment:
#   KEYWARD          the keyward command, word-split (default `keyward`), e.g.
#                    `docker run --rm -v $PWD:$PWD -w $PWD registry.example/keyward:0.1.0`
#   KEYWARD_SECRETS  extra manifest paths with the providers' credential Secrets, written by
#                    the workflow from CI secrets (never committed)
#   OUT_DIR          where plan.json, plan.md and comment.md go (default .keyward)
#   PR_NUMBER, GITHUB_REPOSITORY
#                    when both are set, the comment is posted with `gh` (GH_TOKEN must allow
#                    writing PR comments); otherwise it is only written to OUT_DIR
#   GH               the gh command (default `gh`)
#   KEYWARD_ALLOWED_HOSTS
#                    required: the provider hosts the credentials may go to (`acme.okta.com`,
#                    `pi.acme.example:443`). A pull request can point an MfaProvider at a host
#                    of its own, and `plan` would sign in there with the admin Secret.
set -euo pipefail

if [[ -z ${KEYWARD_ALLOWED_HOSTS:-} ]]; then
    echo "keyward: KEYWARD_ALLOWED_HOSTS is not set; refusing to plan: a pull request could point a" >&2
    echo "provider at a host of its own and receive the credentials. Set it to your providers' hosts" >&2
    echo "(a repository variable), and give CI read-only credentials where the provider has them." >&2
    exit 1
fi

read -r -a KEYWARD_CMD <<< "${KEYWARD:-keyward}"
read -r -a GH_CMD <<< "${GH:-gh}"
OUT_DIR=${OUT_DIR:-.keyward}
MARKER='<!-- keyward-plan -->'
mkdir -p "$OUT_DIR"

paths=("$@")
[[ ${#paths[@]} -gt 0 ]] || paths=(people)
args=()
for p in "${paths[@]}"; do args+=(-f "$p"); done
for p in ${KEYWARD_SECRETS:-}; do args+=(-f "$p"); done

post_comment() {
    local body=$1
    if [[ -z ${PR_NUMBER:-} || -z ${GITHUB_REPOSITORY:-} ]]; then
        echo "keyward: no PR_NUMBER/GITHUB_REPOSITORY; comment left in $body" >&2
        return 0
    fi
    # One comment per PR, updated on every push, found by its marker.
    local id
    id=$("${GH_CMD[@]}" api "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" --paginate \
        --jq ".[] | select(.body | contains(\"$MARKER\")) | .id" | tail -n 1)
    if [[ -n $id ]]; then
        "${GH_CMD[@]}" api -X PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$body" > /dev/null
    else
        "${GH_CMD[@]}" api "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" -F "body=@$body" > /dev/null
    fi
}

comment=$OUT_DIR/comment.md
revision=${GITHUB_SHA:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

# 1. Offline checks first: a typo must never reach the providers as a "deleted" Employee.
if ! "${KEYWARD_CMD[@]}" validate "${args[@]}" > "$OUT_DIR/validate.txt" 2>&1; then
    {
        echo "$MARKER"
        echo "## keyward plan"
        echo
        echo "❌ \`keyward validate\` failed at \`$revision\`; nothing was planned."
        echo
        echo '```'
        cat "$OUT_DIR/validate.txt"
        echo '```'
    } > "$comment"
    cat "$OUT_DIR/validate.txt" >&2
    post_comment "$comment"
    exit 1
fi

# 2. The plan, for machines (blocked?) and for people (the comment). Exit codes of plan:
#    0 nothing to do, 2 changes pending (or blocked), 1 error.
set +e
"${KEYWARD_CMD[@]}" plan "${args[@]}" --output json > "$OUT_DIR/plan.json" 2> "$OUT_DIR/plan.err"
code=$?
"${KEYWARD_CMD[@]}" plan "${args[@]}" --output markdown > "$OUT_DIR/plan.md" 2>> "$OUT_DIR/plan.err"
set -e

blocked=$(python3 - "$OUT_DIR/plan.json" <<'PY'
import json, sys
try:
    plan = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("unreadable")
    sys.exit(0)
names = [p.get("provider", "?") for p in plan.get("providers", []) if p.get("blocked")]
print(" ".join(names))
PY
)

{
    echo "$MARKER"
    cat "$OUT_DIR/plan.md"
    echo
    case $code in
        0) echo "Nothing to revoke at \`$revision\`." ;;
        2) echo "Plan at \`$revision\`: keyward makes these changes once this is merged." ;;
        *) echo "❌ \`keyward plan\` failed (exit $code) at \`$revision\`."
           if [[ -s $OUT_DIR/plan.err ]]; then
               echo '```'
               cat "$OUT_DIR/plan.err"
               echo '```'
           fi ;;
    esac
    if [[ -n $blocked && $blocked != unreadable ]]; then
        echo
        echo "⛔ Blocked on $blocked: the revocations exceed the provider's budget. After merging,"
        echo "nothing is revoked there until an administrator approves the plan digest with the"
        echo "annotation \`keyward.dev/approve-revocations: <digest>\` on the MfaProvider."
    fi
} > "$comment"
post_comment "$comment"

if [[ $code -ne 0 && $code -ne 2 ]]; then
    cat "$OUT_DIR/plan.err" >&2
    echo "keyward: plan failed (exit $code)" >&2
    exit 1
fi
if [[ $blocked == unreadable ]]; then
    echo "keyward: plan JSON unreadable" >&2
    exit 1
fi
if [[ -n $blocked ]]; then
    echo "keyward: plan blocked on $blocked (over the revocation budget; needs approval)" >&2
    exit 1
fi
echo "keyward: plan ok (exit $code)" >&2
