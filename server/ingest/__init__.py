"""Ingest: stateless workers that store signed event batches idempotently and acknowledge them."""

from server.ingest.core import IngestOutcome, IngestStore, Rejection, RejectReason
from server.ingest.worker import IngestWorker

__all__ = ["IngestOutcome", "IngestStore", "IngestWorker", "RejectReason", "Rejection"]
