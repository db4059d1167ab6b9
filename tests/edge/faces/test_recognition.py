"""True-match and false-match rates on lawful faces, printed; only coarse sanity is asserted.

What this can and cannot say: the genuine pairs are one adult face under camera-like changes;
the impostors are synthetic vectors. It shows the pipeline and threshold behave, not how often
the model confuses two real children (it was trained on adults; children are closer together).
"""

from __future__ import annotations

import numpy as np

from edge.faces.encoder import DetectorParams, detect_and_encode
from edge.faces.lawful import TRANSFORMS, astronaut, synthetic_templates
from edge.faces.matcher import DEFAULT_MARGIN, DEFAULT_TOLERANCE, Gallery, MatchParams, identify


def test_rates_on_astronaut_transformations_against_synthetic_impostors() -> None:
    params = DetectorParams()
    img = astronaut()
    (enrolled,) = detect_and_encode(img, params)
    impostors = synthetic_templates(enrolled.encoding, 5_000, seed=1)
    gallery = Gallery.build(
        [("astronaut", enrolled.encoding)] + [(f"syn{i}", v) for i, v in enumerate(impostors)]
    )
    probes: dict[str, np.ndarray | None] = {}
    for name, fn in TRANSFORMS.items():
        faces = detect_and_encode(fn(img), params)
        probes[name] = faces[0].encoding if len(faces) == 1 else None
    lines = ["", f"{'transform':<14} {'distance':>8}  decision@{DEFAULT_TOLERANCE}"]
    results = {}
    for name, probe in probes.items():
        if probe is None:
            lines.append(f"{name:<14} {'no face':>8}  -")
            continue
        d = float(np.linalg.norm(probe - enrolled.encoding))
        r = identify(gallery, probe, MatchParams(DEFAULT_TOLERANCE, DEFAULT_MARGIN))
        results[name] = r
        lines.append(f"{name:<14} {d:8.3f}  {r.reason.value} {r.student_id or ''}")
    genuine = [p for p in probes.values() if p is not None]
    for tol in (0.4, 0.5, 0.6):
        p = MatchParams(tol, DEFAULT_MARGIN)
        tm = sum(identify(gallery, g, p).student_id == "astronaut" for g in genuine)
        wrong = sum(identify(gallery, g, p).student_id not in (None, "astronaut") for g in genuine)
        # pairwise FMR: synthetic impostor vs the astronaut's template, and genuine probes vs
        # every synthetic template
        d_imp = np.linalg.norm(impostors - enrolled.encoding, axis=1)
        d_cross = np.concatenate([np.linalg.norm(impostors - g, axis=1) for g in genuine])
        fm = int((d_imp <= tol).sum() + (d_cross <= tol).sum())
        pairs = d_imp.size + d_cross.size
        lines.append(
            f"tol {tol}: TMR {tm}/{len(TRANSFORMS)} = {tm / len(TRANSFORMS):.2f} "
            f"(failed to detect {len(TRANSFORMS) - len(genuine)}), wrong identity {wrong}, "
            f"FMR {fm}/{pairs} = {fm / pairs:.2e}"
        )
    print("\n".join(lines))
    assert results["original"].student_id == "astronaut"
    assert all(r.student_id in (None, "astronaut") for r in results.values())
