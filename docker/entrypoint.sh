#!/bin/sh
# One image, several roles: the first argument picks what this container runs (see the
# README's Deployment section); anything that is not a role runs as a plain command, so
# `docker compose run --rm api alto token create admin --admin` works too.
set -eu

role="${1:-api}"
if [ "$#" -gt 0 ]; then shift; fi

# The health check runs as a separate process that cannot see these arguments: leave it
# the role where it can read it (docker/healthcheck.py).
remember_role() {
    mkdir -p "${ALTO_RUN_DIR:-/tmp/alto}"
    printf '%s\n' "$1" >"${ALTO_RUN_DIR:-/tmp/alto}/role"
}

case "$role" in
    migrate)
        remember_role migrate
        exec alto db upgrade "$@"
        ;;
    api)
        remember_role api
        # Migrations belong to the one-off `migrate` role: API replicas starting together
        # must not race each other through Alembic. The tuning worker runs elsewhere.
        exec alto serve --no-worker --no-migrate "$@"
        ;;
    worker)
        # A dispatcher alone: embedded Ray, or the cluster in RAY_ADDRESS (e.g. KubeRay).
        remember_role worker
        exec alto worker "$@"
        ;;
    ray-head)
        remember_role ray-head
        # Ray's own processes daemonise, so the dispatcher can become the main process:
        # `docker stop` then reaches it first and it hands its job back to the queue.
        # The image has no ray[default], hence no Ray dashboard. RAY_START_ARGS is split
        # into words on purpose.
        # shellcheck disable=SC2086
        ray start --head --port="${RAY_PORT:-6379}" --include-dashboard=false \
            --disable-usage-stats ${RAY_START_ARGS:-}
        # "auto" reads the address this node registered under; 127.0.0.1 would not match
        # the head's container address and Ray would find no local raylet.
        exec alto worker --ray-address auto "$@"
        ;;
    ray-worker)
        remember_role ray-worker
        # shellcheck disable=SC2086
        exec ray start --address="${RAY_HEAD_ADDRESS:-ray-head:6379}" --block \
            --disable-usage-stats ${RAY_START_ARGS:-} "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
