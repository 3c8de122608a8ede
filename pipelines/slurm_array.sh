#!/usr/bin/env bash
# One task of a Slurm job array: runs shard $SLURM_ARRAY_TASK_ID of N on the node's GPU.
# Submitted by `make slurm-submit MANIFEST=... OUT=... SHARDS=N` (see the Makefile), which also queues
# `semfi-batch merge` to run after every task has ended. All tasks share one output root on a shared
# filesystem; a task that dies leaves leases that expire, and re-submitting the array finishes the rest.
#SBATCH --job-name=semfi-batch
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=96G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
manifest=${1:?manifest}
out=${2:?output root}
shards=${3:?number of shards}
backend=${4:-semfi}
cd "${SLURM_SUBMIT_DIR:-.}"
exec .venv/bin/semfi-batch run "$manifest" --out "$out" --backend "$backend" \
  --shard "${SLURM_ARRAY_TASK_ID:?run me with sbatch --array}/$shards" --ckpt-every 5
