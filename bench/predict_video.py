"""Whole-clip prediction: wall time per frame, peak memory in clip length, overlay frame count.

  OMP_NUM_THREADS=1 .venv/bin/python bench/predict_video.py --run RUN CLIP... [--long 100,1000] [--work DIR]

For every clip, runs ``cohesiv predict CLIP --detect-hands`` in a fresh process under
``/usr/bin/time -v`` and prints its frames, ms per frame (predict pass and overlay pass, as the command
reports them), wall time, peak RSS, and the overlay's frame count decoded back with PyAV. With
``--long``, the first clip is looped (forward then backward) into synthetic clips of those lengths,
to show that memory does not grow with the clip's length. With ``--tracking``, it also counts, per
real clip, the frames where MediaPipe gives two hands the same side and the frame-to-frame side flips,
per frame (MediaPipe alone) and after the tracking that ``predict --detect-hands`` applies.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def loop_clip(src: Path, n: int, dst: Path) -> Path:
    """Write ``n`` frames of ``src`` played forward then backward, H.264 at 30 fps."""
    if dst.is_file():
        return dst
    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    seq = frames + frames[::-1]
    out = av.open(str(dst), "w")
    s = out.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    for i in range(n):
        for p in s.encode(
            av.VideoFrame.from_ndarray(np.ascontiguousarray(seq[i % len(seq)]), format="rgb24")
        ):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    return dst


def measure(run: str, clip: Path, out: Path) -> dict:
    """Run the command once (fresh output folder) and collect its numbers."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = ["/usr/bin/time", "-v", str(REPO / ".venv/bin/cohesiv"), "predict", "--run", run, str(clip)]
    cmd += ["--detect-hands", "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
    with av.open(str(out / "overlay.mp4")) as c:
        decoded = sum(1 for _ in c.decode(c.streams.video[0]))
    return dict(summary, wall_s=wall, peak_rss_mb=rss / 1024, overlay_decoded=decoded)


def side_consistency(clip: Path) -> dict:
    """Same-side pairs and side flips of MediaPipe's hands, per frame and tracked (cohesiv.hands.track_hands)."""
    from cohesiv.hands.detector import FRAME_STEP_MS, HandDetector
    from cohesiv.hands.tracking import track_hands
    from cohesiv.io import FrameReader

    with HandDetector(video=True) as det:
        raw = {
            t: det.detect_raw(im, timestamp_ms=t * FRAME_STEP_MS) for t, im in enumerate(FrameReader(clip))
        }
    tracked = track_hands(raw)

    def counts(sides: list[list]) -> tuple[int, int]:
        dup = sum(len(s) != len(set(s)) for s in sides)
        flips = sum(len(a) == len(b) > 0 and sorted(a) != sorted(b) for a, b in zip(sides, sides[1:]))
        return dup, flips

    per_frame = counts([[d.side for d in raw[t]] for t in sorted(raw)])
    after = counts([[h.side for h in tracked[t]] for t in sorted(tracked)])
    return {
        "frames": len(raw),
        "hands": sum(map(len, raw.values())),
        "per_frame": per_frame,
        "tracked": after,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--long", default="", help="lengths of looped synthetic clips, e.g. 100,1000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cohesiv-bench-predict"))
    ap.add_argument(
        "--tracking", action="store_true", help="also count side conflicts with and without tracking"
    )
    args = ap.parse_args()
    if args.tracking:
        print("frames with two hands of one side / side flips between frames (equal hand counts)")
        for clip in args.clips:
            c = side_consistency(clip)
            print(
                f"{clip.name[:47]:<48}{c['frames']:>4} frames {c['hands']:>4} hands: "
                f"per frame {c['per_frame'][0]} / {c['per_frame'][1]}, tracked {c['tracked'][0]} / {c['tracked'][1]}"
            )
    args.work.mkdir(parents=True, exist_ok=True)
    clips = list(args.clips)
    for n in [int(v) for v in args.long.split(",") if v]:
        clips.append(loop_clip(args.clips[0], n, args.work / f"loop{n}.mp4"))
    print("ms/frame: the predict pass (network + labels); overlay: the overlay pass; all: wall time / frames")
    head = f"{'clip':<48}{'frames':>7}{'ms/frame':>10}{'overlay':>9}{'all':>7}{'wall s':>8}{'peak RSS MB':>12}{'decoded':>8}"
    print(head)
    for clip in clips:
        m = measure(args.run, clip, args.work / f"out-{clip.stem}")
        print(
            f"{clip.name[:47]:<48}{m['frames_read']:>7}{m['predict_ms_per_frame']:>10.0f}"
            f"{m['overlay_ms_per_frame']:>9.0f}{1000 * m['wall_s'] / max(m['frames_read'], 1):>7.0f}"
            f"{m['wall_s']:>8.1f}{m['peak_rss_mb']:>12.0f}{m['overlay_decoded']:>8}"
        )


if __name__ == "__main__":
    main()
