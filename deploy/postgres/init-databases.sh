#!/bin/sh
# Creates the databases of the ReelRank stack on the first start of an empty
# Postgres volume (the postgres image runs /docker-entrypoint-initdb.d/*.sh once).
#   MLFLOW_DB   MLflow backend store (experiments, runs, model registry)
#   PREFECT_DB  Prefect server database (flows, runs, deployments, schedules)
set -eu

: "${MLFLOW_DB:?MLFLOW_DB is not set}"
: "${PREFECT_DB:?PREFECT_DB is not set}"

for db in "$MLFLOW_DB" "$PREFECT_DB"; do
  echo "init-databases: creating database ${db}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set=db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
