# Copyright (c) mmbinpc contributors. All rights reserved.
"""Grids of training runs for the paper's comparisons (Tables 3-6, Figs 2-4).

* :mod:`.grid` - experiment definitions and scales, expanded into jobs;
* :mod:`.runner` - running, skipping and resuming jobs, collecting metrics;
* :mod:`.report` - CSV, markdown and PNG reports from ``result.json`` files;
* :mod:`.paper` - the paper's reported figures.

The command line is ``tools/experiments/run.py``; see docs/experiments.md.
"""
from .errors import ExperimentError
from .grid import (Experiment, Job, Plan, RunSpec, Scale, TeacherSpec, expand,
                   get_scale, load_experiment, load_scales)
from .paper import PaperKey, PaperTable
from .report import collect, make_report
from .runner import (DataInfo, Status, Summary, check_data, execute,
                     job_status, read_result, run_job)

__all__ = [
    'ExperimentError', 'Experiment', 'Job', 'Plan', 'RunSpec', 'Scale',
    'TeacherSpec', 'expand', 'get_scale', 'load_experiment', 'load_scales',
    'PaperKey', 'PaperTable', 'collect', 'make_report', 'DataInfo', 'Status',
    'Summary', 'check_data', 'execute', 'job_status', 'read_result', 'run_job'
]
