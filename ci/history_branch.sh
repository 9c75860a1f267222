#!/usr/bin/env bash
# Keep the bnbench history on a results branch of the repository itself (as asv does):
# fetch the branch's history.sqlite, add this commit's summaries, commit the file onto the
# branch and push. Works from any checkout without touching its work tree or index (the
# branch commit is made with git plumbing). If another CI job pushed meanwhile, the push is
# refused: fetch again, add again (adding a commit twice replaces it) and retry.
#
#   ci/history_branch.sh ADD_ARGS...     e.g.  ci/history_branch.sh --store gate-report/current.sqlite
#
# Environment: HISTORY_BRANCH (default bnbench-history), HISTORY_REMOTE (default origin),
# HISTORY_FILE (local copy, default history/history.sqlite), BNBENCH (default bnbench),
# HISTORY_TRIES (default 5). The commit id, date and branch default to the CI's or git's.
set -euo pipefail

branch="${HISTORY_BRANCH:-bnbench-history}"
remote="${HISTORY_REMOTE:-origin}"
file="${HISTORY_FILE:-history/history.sqlite}"
bnbench="${BNBENCH:-bnbench}"
tries="${HISTORY_TRIES:-5}"
ref="refs/bnbench/history-tip"
# CI checkouts often have no git identity; the branch's commits need one.
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-bnbench}" GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-bnbench@localhost}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}"   # a private ref for the fetched tip (FETCH_HEAD is shared)

mkdir -p "$(dirname "$file")"
for attempt in $(seq 1 "$tries"); do
    rm -f "$file" "$file-wal" "$file-shm"
    parent=()
    if git fetch -q "$remote" "+refs/heads/$branch:$ref" 2>/dev/null; then
        git show "$ref:history.sqlite" > "$file"
        parent=(-p "$ref")
    fi
    $bnbench history add --history "$file" "$@"
    blob=$(git hash-object -w "$file")
    tree=$(printf '100644 blob %s\thistory.sqlite\n' "$blob" | git mktree)
    commit=$(git commit-tree "$tree" "${parent[@]}" -m "bnbench history: $(git rev-parse --short HEAD)")
    if git push -q "$remote" "$commit:refs/heads/$branch"; then
        echo "history: pushed to $remote/$branch (attempt $attempt)" >&2
        exit 0
    fi
    echo "history: $remote/$branch moved meanwhile; retrying" >&2
    sleep $((attempt * 2))
done
echo "history: could not push to $remote/$branch after $tries attempts" >&2
exit 1
