"""``emoget animate STILL --expression E -o OUT`` (or ``--drive VIDEO``)."""
from __future__ import annotations

import argparse

import numpy as np


def register(subparsers) -> None:
    from video_gen.expressions import EXPRESSIONS
    from video_gen.presets import PRESETS

    p = subparsers.add_parser("animate", help="animate a still face (expression or driving video) to GIF/WebP/APNG/MP4")
    p.add_argument("still", help="image of a face (a stylised still or a photo crop)")
    p.add_argument("--landmarks", metavar="JSON",
                   help="the still's 68 (x, y) points: what `emoget landmarks STILL --json` prints, a bare "
                        "[[x, y], ...] list or {'points': [...]}; default: detect them")
    p.add_argument("--expression", default="happy", choices=list(EXPRESSIONS))
    p.add_argument("--intensity", type=float, default=1.0)
    p.add_argument("--frames", type=int, default=None,
                   help="frames in the loop (default 24; with --drive, the video's own)")
    p.add_argument("--fps", type=float, default=None,
                   help="frames per second (default 12; with --drive, the video's own). With --drive, --fps alone "
                        "keeps the clip's speed, --frames alone spreads the clip over that many frames, and both "
                        "fit the whole clip into FRAMES frames at FPS")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--prior", action="store_true", help="sample the AU prior instead of the motion model")
    p.add_argument("--method", choices=["affine", "tps"], default="affine", help="warp")
    p.add_argument("--preset", choices=list(PRESETS), help="fit a platform's sticker limits")
    p.add_argument("--transparent", action="store_true", help="cut the background out (MediaPipe selfie segmentation)")
    p.add_argument("--drive", metavar="VIDEO", help="drive the still with the face in this video instead")
    p.add_argument("-o", "--output", required=True, help="OUT.gif / .webp / .png (APNG) / .mp4 / .webm")
    p.set_defaults(func=_run)


def _points(args, image) -> np.ndarray:
    if args.landmarks:
        from video_gen.animate import load_points

        return load_points(args.landmarks, image_size=(image.shape[1], image.shape[0]))
    import landmarks

    return np.asarray(landmarks.detect(image[..., :3]).points, np.float32)


def _run(args: argparse.Namespace) -> int:
    from video_gen.export import inspect, save_animation
    from video_gen.matte import load_still
    from video_gen.warp import WarpOptions

    image = load_still(args.still)  # [H,W,4] when the still is transparent: the animation stays so
    points = _points(args, image)
    warp = WarpOptions(method=args.method)
    if args.drive:
        from video_gen.drive import drive

        anim = drive(image, points, args.drive, fps=args.fps, frames=args.frames, intensity=args.intensity, warp=warp)
    else:
        from video_gen.animate import animate

        anim = animate(image, points, expression=args.expression, intensity=args.intensity,
                       frames=24 if args.frames is None else args.frames, fps=12.0 if args.fps is None else args.fps,
                       seed=args.seed, source="prior" if args.prior else "model", warp=warp)
    alpha = None
    if args.transparent:
        from video_gen.matte import alpha_matte

        frames = np.asarray(anim.frames)
        alpha = alpha_matte(frames[..., :3]) * (frames[..., 3] / 255.0 if frames.shape[3] == 4 else 1.0)
    out = save_animation(anim.frames, args.output, fps=anim.fps, preset=args.preset, alpha=alpha)
    info = inspect(out)
    print(f"{out}: {info.n_frames} frames {info.size[0]}x{info.size[1]}, {info.total_ms / 1000:.2f} s, "
          f"{info.bytes / 1000:.1f} KB")
    return 0
