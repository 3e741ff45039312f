#!/usr/bin/env python3
"""scikit-learn's IsolationForest on feature matrices written by bench/src/bin/adfa_ld.rs.

Usage: sklearn_iforest.py JOBS.json OUT.json

JOBS.json is a list of jobs: {"name", "train", "test" (.npy paths, float32),
"seeds" (list of ints), "n_estimators", "single_rows" (rows of the test
matrix to score one per call, for seed[0]; 0 for none), "all_cores" (also
time fit and score on every core)}. For every seed the forest is fitted on
the training matrix and scores the test matrix (score_samples,
scikit-learn's sign: lower is more anomalous), both timed with
time.perf_counter on one thread (n_jobs=None, OMP_NUM_THREADS=1 set by the
caller). With "all_cores", the same seed is fitted again with n_jobs = the
number of cores and scored under joblib's threading backend with as many
jobs (scikit-learn's documented way to score in parallel); only the times
of that second run are kept. OUT.json maps each job name to its runs.
"""

import json
import os
import sys
import time

from joblib import parallel_config

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest


def run(job):
    train = np.load(job["train"])
    test = np.load(job["test"])
    assert train.dtype == np.float32 and test.dtype == np.float32, "expected float32 matrices"
    runs = []
    single_row_seconds = None
    for seed in job["seeds"]:
        forest = IsolationForest(n_estimators=job["n_estimators"], random_state=seed)
        started = time.perf_counter()
        forest.fit(train)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = forest.score_samples(test)
        score_seconds = time.perf_counter() - started
        run = {
            "seed": seed,
            "fit_seconds": fit_seconds,
            "score_seconds": score_seconds,
            "offset": float(forest.offset_),
            "scores": [float(s) for s in scores],
        }
        if job.get("all_cores", False):
            run.update(time_all_cores(job, seed, train, test))
        runs.append(run)
        rows = min(job.get("single_rows", 0), len(test))
        if single_row_seconds is None and rows > 0:
            started = time.perf_counter()
            for i in range(rows):
                forest.score_samples(test[i : i + 1])
            single_row_seconds = (time.perf_counter() - started) / rows
    return {"runs": runs, "single_row_seconds": single_row_seconds}


def time_all_cores(job, seed, train, test):
    cores = os.cpu_count() or 1
    forest = IsolationForest(
        n_estimators=job["n_estimators"], random_state=seed, n_jobs=cores
    )
    started = time.perf_counter()
    forest.fit(train)
    fit_seconds = time.perf_counter() - started
    with parallel_config(backend="threading", n_jobs=cores):
        started = time.perf_counter()
        forest.score_samples(test)
        score_seconds = time.perf_counter() - started
    return {
        "cores": cores,
        "fit_seconds_all_cores": fit_seconds,
        "score_seconds_all_cores": score_seconds,
    }


def main():
    jobs_path, out_path = sys.argv[1], sys.argv[2]
    with open(jobs_path) as f:
        jobs = json.load(f)
    out = {"sklearn": sklearn.__version__, "numpy": np.__version__, "jobs": {}}
    for job in jobs:
        out["jobs"][job["name"]] = run(job)
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
