"""Cowatch's one-pass 240/480/720 ladder against the ffmpeg command line doing the same.

    /work/venv/bin/python bench/transcode.py [--runs 3] [--seconds 20]

Generates a 1080p30 clip (FFmpeg's testsrc2 pattern plus a tone), then times, in turn:
  cowatch      workers.media.transcode in a fresh Python process (what a job runs)
  ffmpeg-1     one ffmpeg process: -filter_complex split=3, three libx264 + aac outputs
  ffmpeg-3     three ffmpeg processes, one rendition each, one after the other
Same encoder settings everywhere (libx264 veryfast CRF 23, GOP 2 s, bicubic scaling, AAC
48 kHz stereo, +faststart). Runs are interleaved so background load hits every variant alike.
Prints median wall time, median CPU time (user+sys of the process tree) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers.media import ENCODER_OPTIONS, GOP_SECONDS, LADDER  # noqa: E402

FPS = 30


def make_source(path: Path, seconds: int) -> None:
    import av

    pattern = f"testsrc2=size=1920x1080:rate={FPS}:duration={seconds}"
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "fast", "crf": "20"})
        video.width, video.height, video.pix_fmt = 1920, 1080, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        with av.open(pattern, format="lavfi") as source:
            for frame in source.decode(video=0):
                out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
        with av.open(tone, format="lavfi") as source:
            for sample in source.decode(audio=0):
                for resampled in resampler.resample(sample):
                    out.mux(audio.encode(resampled))
        out.mux(audio.encode(None))


def _encoder_args() -> list[str]:
    return [
        "-c:v", "libx264", "-preset", ENCODER_OPTIONS["preset"], "-crf", ENCODER_OPTIONS["crf"],
        "-g", str(FPS * GOP_SECONDS), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ar", "48000", "-ac", "2", "-movflags", "+faststart",
    ]  # fmt: skip


def cowatch_command(source: Path, out: Path) -> list[str]:
    code = "import sys; from workers.media import transcode; transcode(sys.argv[1], sys.argv[2])"
    return [sys.executable, "-c", code, str(source), str(out)]


def ffmpeg_one_process(ffmpeg: str, source: Path, out: Path) -> list[list[str]]:
    labels = [f"[v{height}]" for height in LADDER.values()]
    scales = ";".join(
        f"[s{i}]scale=-2:{height}:flags=bicubic[v{height}]"
        for i, height in enumerate(LADDER.values())
    )
    graph = f"[0:v]split={len(LADDER)}" + "".join(f"[s{i}]" for i in range(len(LADDER)))
    command = [ffmpeg, "-v", "error", "-y", "-i", str(source)]
    command += ["-filter_complex", f"{graph};{scales}"]
    for label, quality in zip(labels, LADDER, strict=True):
        command += ["-map", label, "-map", "0:a", *_encoder_args(), str(out / f"{quality}.mp4")]
    return [command]


def ffmpeg_separate(ffmpeg: str, source: Path, out: Path) -> list[list[str]]:
    commands = []
    for quality, height in LADDER.items():
        command = [ffmpeg, "-v", "error", "-y", "-i", str(source)]
        command += ["-vf", f"scale=-2:{height}:flags=bicubic", *_encoder_args()]
        commands.append([*command, str(out / f"{quality}.mp4")])
    return commands


def run(commands: list[list[str]]) -> tuple[float, float]:
    """Wall and CPU (user+sys, children included) seconds for the commands in sequence."""
    before = os.times()
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("the ffmpeg command line is needed for the comparison: apt-get install -y ffmpeg")
    import av

    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout
    print(f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}); {version.splitlines()[0]}")
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="cowatch-bench-") as directory:
        work = Path(directory)
        source = work / "source.mp4"
        make_source(source, args.seconds)
        print(f"source: 1920x1080 {FPS} fps, {args.seconds} s, {source.stat().st_size} bytes")
        variants = {
            "cowatch": lambda out: [cowatch_command(source, out)],
            "ffmpeg-1": lambda out: ffmpeg_one_process(ffmpeg, source, out),
            "ffmpeg-3": lambda out: ffmpeg_separate(ffmpeg, source, out),
        }
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        for attempt in range(args.runs):
            for name, commands in variants.items():
                out = work / f"{name}-{attempt}"
                out.mkdir()
                wall, cpu = run(commands(out))
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"  run {attempt + 1} {name:9} wall {wall:6.2f} s  cpu {cpu:6.2f} s")
                shutil.rmtree(out)
    base_wall = statistics.median(walls["ffmpeg-1"])
    base_cpu = statistics.median(cpus["ffmpeg-1"])
    print(f"load average after: {os.getloadavg()}")
    print()
    print("| variant | median wall s | x ffmpeg-1 | median CPU s | x ffmpeg-1 | runs |")
    print("|---|---|---|---|---|---|")
    for name in variants:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"| {name} | {wall:.2f} | {wall / base_wall:.2f} | {cpu:.2f} | "
            f"{cpu / base_cpu:.2f} | {args.runs} |"
        )


if __name__ == "__main__":
    main()
