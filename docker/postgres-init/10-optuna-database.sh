#!/bin/sh
# Run once by the postgres image on an empty data volume. Optuna's own tables (studies,
# trials, alembic_version) clash with ALTO Tune's, so its mirror needs a database of its own.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"${OPTUNA_DB:-optuna}\" OWNER \"$POSTGRES_USER\""
