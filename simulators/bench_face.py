"""``qaqpa bench face``: frame -> decision latency with 5,000 enrolled templates.

In one run, on the same frames (astronaut transformations), alternating frame by frame:
- pipeline: the frame goes to the encoder worker process (HOG detect + encode), the 1:N match
  runs on the loop over the school's gallery (loaded decrypted from a real edge store), and a
  decision comes out;
- bare: face_recognition detect + encode called directly in this process (the baseline).
Also the 1:N match alone, and peak RSS (this process and the worker, models loaded).
Targets from issue 7: p95 <= 400 ms, match <= 2 ms, pipeline overhead <= 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.faces.crypto import TemplateCipher
from edge.faces.encoder import DetectorParams, FaceEncoder, detect_and_encode, peak_rss_kb
from edge.faces.lawful import TRANSFORMS, astronaut, synthetic_templates
from edge.faces.matcher import Gallery, MatchParams, identify
from edge.faces.store import FaceTemplateStore
from edge.store import EdgeStore
from protocol.messages import ConsentKind, ConsentRecord, StudentRecord, SyncSnapshot


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) * 1000.0


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_pct(xs, 50), 3),
        "p95_ms": round(_pct(xs, 95), 3),
        "mean_ms": round(statistics.fmean(xs) * 1000, 3),
    }


async def _school_gallery(tmp: Path, anchor: np.ndarray, n: int) -> tuple[Gallery, float]:
    """A real edge store with n + 1 consented students and their encrypted templates."""
    bio = [
        ConsentRecord(kind=k, granted=True, given_by="parent", at_ms=1, document="bench")
        for k in (ConsentKind.DATA, ConsentKind.BIOMETRIC)
    ]
    ids = ["astronaut"] + [f"syn{i}" for i in range(n)]
    encs = [anchor, *synthetic_templates(anchor, n, seed=1)]
    async with await EdgeStore.open(tmp / "edge.sqlite", school="B1", device="d1") as edge:
        await edge.apply_snapshot(
            SyncSnapshot(
                school="B1",
                version=1,
                policy=None,
                students=[
                    StudentRecord(id=s, grade=3, class_name="3A", shift=1, consents=bio)
                    for s in ids
                ],
                staff=[],
                cards=[],
            )
        )
        cipher = TemplateCipher.from_key_file(tmp / "face.key")
        async with await FaceTemplateStore.open(tmp / "edge.sqlite", cipher) as store:
            for sid, e in zip(ids, encs, strict=True):
                await store.add(sid, e, now_ms=1, source="file")
            t0 = time.perf_counter()
            gallery = await store.gallery()
            load_s = time.perf_counter() - t0
    return gallery, load_s


async def _run(frames_n: int, templates: int, params: MatchParams) -> dict[str, Any]:
    det = DetectorParams()
    img = astronaut()
    frames = [fn(img) for fn in TRANSFORMS.values()]
    frames = [f for f in frames if len(detect_and_encode(f, det)) == 1]  # also warms the models
    (anchor,) = detect_and_encode(img, det)
    with tempfile.TemporaryDirectory(prefix="qaqpa-bench-face-") as tmp:
        gallery, load_s = await _school_gallery(Path(tmp), anchor.encoding, templates)
    pipeline: list[float] = []
    bare: list[float] = []
    matches: list[float] = []
    decisions = {"match": 0, "no_match": 0, "no_face": 0}
    async with FaceEncoder(det) as enc:
        for i in range(frames_n):
            frame = frames[i % len(frames)]
            t0 = time.perf_counter()
            faces = await enc.encode(frame)
            if len(faces) == 1:
                t1 = time.perf_counter()
                r = identify(gallery, faces[0].encoding, params)
                matches.append(time.perf_counter() - t1)
                decisions["match" if r.matched else "no_match"] += 1
            else:
                decisions["no_face"] += 1
            pipeline.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            detect_and_encode(frame, det)
            bare.append(time.perf_counter() - t0)
        worker_rss_kb = await enc.worker_peak_rss_kb()
    probes = synthetic_templates(anchor.encoding, 2_000, seed=9, near=0.0, far=0.8)
    for p in probes:
        t1 = time.perf_counter()
        identify(gallery, p, params)
        matches.append(time.perf_counter() - t1)
    p_stats, b_stats, m_stats = _stats(pipeline), _stats(bare), _stats(matches)
    overhead = (p_stats["p50_ms"] - b_stats["p50_ms"]) / b_stats["p50_ms"]
    self_rss_kb = peak_rss_kb()
    return {
        "bench": "face",
        "frames": frames_n,
        "distinct_frames": len(frames),
        "frame_shapes": sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames}),
        "enrolled_templates": len(gallery),
        "tolerance": params.tolerance,
        "margin": params.margin,
        "detector": {"model": det.model, "upsample": det.upsample, "jitters": det.jitters},
        "gallery_load_ms": round(load_s * 1000, 1),
        "pipeline_frame_to_decision": p_stats,
        "bare_face_recognition_detect_encode": b_stats,
        "match_1_to_n": m_stats,
        "pipeline_overhead_p50": round(overhead, 4),
        "decisions": decisions,
        "peak_rss_mb": {
            "daemon_process_with_models": round(self_rss_kb / 1024, 1),
            "encoder_worker_with_models": round(worker_rss_kb / 1024, 1),
        },
        "targets": {
            "p95_ms<=400": p_stats["p95_ms"] <= 400,
            "match_p95_ms<=2": m_stats["p95_ms"] <= 2,
            "overhead<=0.10": overhead <= 0.10,
        },
        "note": (
            "bare runs in this process; the daemon process here also loads the models for the "
            "baseline, so its RSS overstates a daemon that only uses the worker"
        ),
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the face benchmark; ``args`` may carry frames, templates, tolerance, margin."""
    params = MatchParams(
        tolerance=float(getattr(args, "tolerance", None) or MatchParams().tolerance),
        margin=float(getattr(args, "margin", None) or MatchParams().margin),
    )
    return asyncio.run(
        _run(
            int(getattr(args, "frames", None) or 60),
            int(getattr(args, "templates", None) or 5_000),
            params,
        )
    )


if __name__ == "__main__":
    import json

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--templates", type=int, default=5_000)
    ap.add_argument("--tolerance", type=float)
    ap.add_argument("--margin", type=float)
    print(json.dumps(bench(ap.parse_args()), indent=2))
