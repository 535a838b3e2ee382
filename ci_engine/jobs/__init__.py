"""Asynchronous image jobs (CI's ``picqueue``, ``pic_jobs`` and PicProcess templates) on a
Dask cluster, with job records in SQLite.

* :class:`JobService`: the records, the dispatcher and the commit of results;
  :class:`Cluster` is its Dask client (an embedded ``LocalCluster`` or a named scheduler).
* :class:`JobsAPI`: the XML requests and responses, for an HTTP layer to route to.
* :class:`Buckets`: where the objects live (a directory or ``s3://``), shared with workers.

This package uses the library's public API (``persist``, ``process``, the stores); it never
imports a backend or the planner. ``docs/jobs.md`` describes it.
"""

from __future__ import annotations

from ci_engine.jobs.api import JobsAPI, parse_request
from ci_engine.jobs.buckets import Buckets
from ci_engine.jobs.records import (
    CANCEL,
    FAILED,
    RUNNING,
    SUBMITTED,
    SUCCESS,
    Job,
    JobNotFoundError,
    JobRecords,
    JobStateError,
    Queue,
    QueueNotFoundError,
    Template,
    TemplateNotFoundError,
)
from ci_engine.jobs.service import Cluster, JobRequest, JobService, QueueFullError

__all__ = [
    "JobService",
    "Cluster",
    "JobRequest",
    "JobsAPI",
    "parse_request",
    "Buckets",
    "JobRecords",
    "Job",
    "Queue",
    "Template",
    "SUBMITTED",
    "RUNNING",
    "SUCCESS",
    "FAILED",
    "CANCEL",
    "QueueNotFoundError",
    "TemplateNotFoundError",
    "JobNotFoundError",
    "JobStateError",
    "QueueFullError",
]
