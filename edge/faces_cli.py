"""``qaqpa edge enrol-face``: a staff member enrols one student's face at the school.

Only with a recorded biometric consent (refused before the image is read otherwise); from a
photo file or one frame of a camera; the photo is not kept, only the encrypted encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

EXIT_REFUSED = 2


async def _enrol(config_path: Path, student: str, photo: Path | None, camera: str | None) -> str:
    from edge.config import ConfigError, load_config
    from edge.daemon import open_store
    from edge.faces.camera import open_source
    from edge.faces.service import FaceService

    cfg = load_config(config_path)
    if cfg.face_key_file is None:
        raise ConfigError(f"{config_path}: face_key_file: needed to store face templates")
    async with (
        await open_store(cfg) as store,
        FaceService.open(store, cfg.store, cfg.face_key_file) as faces,
    ):
        if photo is not None:
            done = await faces.enrol(student, photo)
        else:
            assert camera is not None
            source = await asyncio.to_thread(open_source, camera)
            try:
                frame = await asyncio.to_thread(source.read)
            finally:
                await asyncio.to_thread(source.close)
            if frame is None:
                raise ValueError(f"camera {camera}: no frame")
            done = await faces.enrol(student, frame, source="camera")
    return f"enrolled a face for {done.student_id}: {done.templates_now} template(s) on file"


def _command(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.faces.enrol import EnrolmentRefused
    from edge.faces.service import FaceSetupError

    try:
        print(asyncio.run(_enrol(args.config, args.student, args.photo, args.camera)))
    except EnrolmentRefused as err:
        print(f"qaqpa edge enrol-face: refused ({err.reason}): {err}", file=sys.stderr)
        return EXIT_REFUSED
    except (ConfigError, FaceSetupError, ValueError, OSError) as err:
        print(f"qaqpa edge enrol-face: {err}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "enrol-face", help="enrol a student's face (needs a recorded biometric consent)"
    )
    p.add_argument("--config", type=Path, required=True, help="edge.toml (with face_key_file)")
    p.add_argument("--student", required=True, help="the student's roster id")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--photo", type=Path, help="a photo file showing exactly one face")
    src.add_argument("--camera", help="camera: device index, stream URL or folder of frames")
    p.set_defaults(func=_command)
