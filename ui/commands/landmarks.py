"""``emoget landmarks PHOTO``: detect a face's 68 landmarks, optionally save the aligned crop and an overlay."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from landmarks.align import MAX_SIZE, MIN_SIZE
from landmarks.detect import BACKENDS, DEFAULT_BACKEND
from ui.pipeline import OptionsError


def register(subparsers) -> None:
    p = subparsers.add_parser("landmarks", help="find a face's 68 landmarks; save its aligned crop or an overlay",
                              description="Detect faces in PHOTO and print the chosen face's 68 iBUG landmarks.")
    p.add_argument("photo", metavar="PHOTO", help="the photo (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--backend", choices=sorted(BACKENDS), default=DEFAULT_BACKEND,
                   help=f"landmark detector (default: {DEFAULT_BACKEND})")
    p.add_argument("--face-index", type=int, default=None, metavar="N",
                   help="which face when there are several: 0 = largest (default)")
    p.add_argument("--json", action="store_true",
                   help='print {"landmarks", "box", "score", "backend", "faces"} as JSON')
    p.add_argument("-o", "--output", metavar="CROP", help="save the FFHQ-aligned face crop here (PNG, JPEG...)")
    p.add_argument("--size", type=int, default=256,
                   help=f"crop size in pixels, {MIN_SIZE}-{MAX_SIZE} (default 256)")
    p.add_argument("--draw", metavar="OVERLAY", help="save the photo with the landmarks drawn here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landmarks import align, detect_all, load_image
    from landmarks.detect import choose_face
    from landmarks.draw import draw_landmarks
    from landmarks.io import save_image

    if not MIN_SIZE <= args.size <= MAX_SIZE:
        raise OptionsError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {args.size}")
    image = load_image(args.photo)
    faces = detect_all(image, backend=args.backend)
    face = choose_face(faces, face_index=args.face_index, label=repr(args.photo), backend=args.backend,
                       image_size=(image.shape[1], image.shape[0]))
    if args.output:
        save_image(align(image, face.points, size=args.size).image, args.output)
    if args.draw:
        save_image(draw_landmarks(image, face), args.draw)
    if args.json:
        print(json.dumps({**face.to_json(), "faces": len(faces)}))
    else:
        x0, y0, x1, y1 = face.box
        print(f"{Path(args.photo).name}: {len(faces)} face(s); face {args.face_index or 0} "
              f"box ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) score {face.score:.2f} backend {face.backend}, "
              f"{face.inter_ocular:.0f} px between the eyes")
        for path in (args.output, args.draw):
            if path:
                print(f"wrote {path}")
    return 0
