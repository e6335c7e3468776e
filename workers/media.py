"""PyAV work: probe an upload, transcode it into the rendition ladder. Runs in a worker process."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.audio.resampler import AudioResampler
from av.video.reformatter import VideoReformatter

#: quality label -> output height, smallest first
LADDER: dict[str, int] = {"240p": 240, "480p": 480, "720p": 720}
MAX_WIDTH, MAX_HEIGHT = 7680, 4320
#: demuxers we accept. An allowlist: FFmpeg also opens stills (a JPEG is `image2`), text
#: (`tty`) and playlists that fetch other files or URLs (`hls`, `concat`).
VIDEO_FORMATS = {
    "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv", "mpegts", "mpeg", "ogg",
    "asf", "mxf", "nut", "dv", "ivf", "h264", "hevc", "m4v", "mpegvideo",
}  # fmt: skip
OPEN_OPTIONS = {"protocol_whitelist": "file"}
ENCODER_OPTIONS = {"crf": "23", "preset": "veryfast"}
GOP_SECONDS = 2
#: a source whose decoded frames stop this far short of its declared length is truncated
TRUNCATION_SLACK = 0.9
#: the decoder refuses to allocate a picture larger than the limit, whatever the stream says
DECODER_OPTIONS = {"max_pixels": str(MAX_WIDTH * MAX_HEIGHT)}
#: a frame costs at least this many pixels in the budget: every decoded frame is scaled and
#: encoded once per rendition, so a stream of tiny frames is not free
MIN_FRAME_PIXELS = 320 * 240
#: decoding may run this far past the probe's estimate (rounded rates and durations)
BUDGET_SLACK = 1.05


class MediaError(Exception):
    """The file is not a video we can use; the message is meant for the uploader."""


@dataclass(frozen=True)
class Probe:
    format: str
    width: int
    height: int
    duration: float
    has_audio: bool

    @property
    def qualities(self) -> list[str]:
        return [quality for quality, _ in ladder_for(self.height)]


def pixel_cost(width: int, height: int) -> int:
    """What one decoded frame counts against the budget."""
    return max(width * height, MIN_FRAME_PIXELS)


def _check_size(width: int, height: int, *, midstream: bool = False) -> None:
    if width > MAX_WIDTH or height > MAX_HEIGHT:
        where = "changes size mid-stream to" if midstream else "is"
        raise MediaError(
            f"the video {where} {width}x{height}; the limit is {MAX_WIDTH}x{MAX_HEIGHT}"
        )


def _declared_rate(stream: Any) -> Fraction:
    return Fraction(stream.average_rate or stream.guessed_rate or 30)


@dataclass(frozen=True)
class Output:
    quality: str
    width: int
    height: int
    path: str
    size_bytes: int


@dataclass
class TranscodeResult:
    width: int
    height: int
    duration: float
    thumbnail: str | None
    outputs: list[Output] = field(default_factory=list)


def ladder_for(source_height: int) -> list[tuple[str, int]]:
    """Rungs at or below the source height; a source under 240 lines gets one rung at its size."""
    rungs = [(quality, height) for quality, height in LADDER.items() if height <= source_height]
    return rungs or [("240p", source_height - source_height % 2)]


def scaled_width(width: int, height: int, target_height: int) -> int:
    """The width that keeps the aspect ratio at `target_height`, rounded to an even number."""
    return max(2, round(width * target_height / height / 2) * 2)


def _duration(container: Any, stream: Any) -> float | None:
    if container.duration:
        return float(container.duration / av.time_base)
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _open(path: str) -> Any:
    return av.open(path, metadata_errors="ignore", options=OPEN_OPTIONS)


def probe(path: str, max_duration_s: float, pixel_budget: int) -> Probe:
    """Check that `path` is a decodable video within our limits; MediaError says why not.

    `pixel_budget` caps width x height x frame rate x duration (each frame counted at least
    MIN_FRAME_PIXELS): what the transcode of the declared stream would decode.
    """
    try:
        container = _open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError("the file is not a video FFmpeg can read") from exc
    with container:
        format_name = container.format.name
        if format_name not in VIDEO_FORMATS:
            raise MediaError(f"the file is not a video (FFmpeg reads it as {format_name!r})")
        if not container.streams.video:
            raise MediaError("the file has no video stream")
        stream = container.streams.video[0]
        stream.codec_context.options = dict(DECODER_OPTIONS)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise MediaError("the video stream has no picture size")
        _check_size(width, height)
        duration = _duration(container, stream)
        if not duration or duration <= 0:
            raise MediaError("the video has no duration")
        if duration > max_duration_s:
            raise MediaError(
                f"the video lasts {duration:.0f} s; the limit is {max_duration_s:.0f} s"
            )
        rate = _declared_rate(stream)
        cost = pixel_cost(width, height) * float(rate) * duration
        if cost > pixel_budget:
            raise MediaError(
                f"the video is too costly to transcode: {width}x{height} at {float(rate):.0f} "
                f"frames/s for {duration:.0f} s is {cost:.3g} pixels; the limit is "
                f"{pixel_budget:.3g}"
            )
        try:
            next(container.decode(stream))
        except (av.error.FFmpegError, StopIteration) as exc:
            raise MediaError("no picture in the video could be decoded") from exc
        return Probe(
            format=format_name,
            width=width,
            height=height,
            duration=duration,
            has_audio=bool(container.streams.audio),
        )


class _Rendition:
    """One output file: its container, video encoder and (optional) audio encoder."""

    def __init__(
        self, quality: str, width: int, height: int, path: str, rate: Fraction, audio: bool
    ) -> None:
        self.quality, self.width, self.height, self.path = quality, width, height, path
        # A new container and new streams: nothing of the source's metadata (the camera's GPS
        # position, creation time, make and model) is copied into a rendition.
        self.container = av.open(
            path, "w", format="mp4", container_options={"movflags": "+faststart"}
        )
        gop = str(max(1, round(float(rate) * GOP_SECONDS)))
        self.video = self.container.add_stream(
            "libx264", rate=rate, options={**ENCODER_OPTIONS, "g": gop}
        )
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.thread_type = "AUTO"
        # One reformatter per output keeps its scaler; frame.reformat() builds one every call.
        self.scaler = VideoReformatter()
        self.audio = (
            self.container.add_stream("aac", rate=48000, layout="stereo") if audio else None
        )

    def encode_video(self, frame: Any) -> None:
        picture = self.scaler.reformat(
            frame, self.width, self.height, "yuv420p", interpolation="BICUBIC"
        )
        self.container.mux(self.video.encode(picture))

    def mux_audio_copy(self, packet: Any) -> None:
        assert self.audio is not None
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.duration, copy.is_keyframe = packet.duration, packet.is_keyframe
        copy.stream = self.audio
        self.container.mux(copy)

    def finish(self) -> Output:
        self.container.mux(self.video.encode(None))
        self.container.close()
        return Output(self.quality, self.width, self.height, self.path, os.path.getsize(self.path))

    def abandon(self) -> None:
        with contextlib.suppress(av.error.FFmpegError):
            self.container.close()


def _encode_audio(renditions: list[_Rendition], frame: Any) -> None:
    """AAC is encoded once, by the first output; the others get copies of its packets."""
    first = renditions[0]
    assert first.audio is not None
    for packet in first.audio.encode(frame):
        for other in renditions[1:]:
            other.mux_audio_copy(packet)
        first.container.mux(packet)


def _thumbnail(frame: Any, path: str) -> None:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    data = b"".join(bytes(packet) for packet in [*encoder.encode(picture), *encoder.encode(None)])
    Path(path).write_bytes(data)


def _report(progress_path: str | None, percent: int) -> None:
    if progress_path is None:
        return
    tmp = f"{progress_path}.tmp"
    Path(tmp).write_text(str(percent))
    os.replace(tmp, progress_path)


def transcode(
    source: str, out_dir: str, progress_path: str | None = None, pixel_budget: int | None = None
) -> TranscodeResult:
    """Decode `source` once and encode every rung of the ladder in the same pass.

    Every decoded frame is checked: one over the size limit (a stream may change size midway)
    or pixels beyond `pixel_budget` end the transcode with a MediaError.
    """
    try:
        return _transcode(source, out_dir, progress_path, pixel_budget)
    except av.error.FFmpegError as exc:
        raise MediaError(f"the video could not be decoded: {exc.strerror or exc}") from exc


def _transcode(
    source: str, out_dir: str, progress_path: str | None, pixel_budget: int | None
) -> TranscodeResult:
    with _open(source) as container:
        if container.format.name not in VIDEO_FORMATS or not container.streams.video:
            raise MediaError("the source is not a video")
        video_in = container.streams.video[0]
        video_in.thread_type = "AUTO"
        video_in.codec_context.options = dict(DECODER_OPTIONS)
        audio_in = container.streams.audio[0] if container.streams.audio else None
        src_w, src_h = video_in.codec_context.width, video_in.codec_context.height
        _check_size(src_w, src_h)
        duration = _duration(container, video_in) or 0.0
        rate = _declared_rate(video_in)
        if rate > 120:
            rate = Fraction(30)
        renditions = [
            _Rendition(
                quality,
                scaled_width(src_w, src_h, height),
                height,
                os.path.join(out_dir, f"{quality}.mp4"),
                rate,
                audio_in is not None,
            )
            for quality, height in ladder_for(src_h)
        ]
        resampler = AudioResampler(format="fltp", layout="stereo", rate=48000)
        thumbnail_path = os.path.join(out_dir, "thumbnail.jpg")
        thumbnail_at = duration / 3
        thumbnail_done = False
        last_frame: Any = None
        decoded_until = 0.0
        reported = -1
        allowance = None if pixel_budget is None else pixel_budget * BUDGET_SLACK
        spent = 0
        start = float(video_in.start_time * video_in.time_base) if video_in.start_time else 0.0
        streams = [video_in] if audio_in is None else [video_in, audio_in]
        try:
            for frame in _frames(container, streams):
                if isinstance(frame, av.AudioFrame):
                    for resampled in resampler.resample(frame):
                        _encode_audio(renditions, resampled)
                    continue
                _check_size(frame.width, frame.height, midstream=True)
                spent += pixel_cost(frame.width, frame.height)
                if allowance is not None and spent > allowance:
                    raise MediaError(
                        "the video decodes to more pixels than it declares: over the budget "
                        f"of {pixel_budget:.3g} (width x height x frames)"
                    )
                when = float(frame.time) - start if frame.time is not None else decoded_until
                decoded_until = max(decoded_until, when)
                for rendition in renditions:
                    rendition.encode_video(frame)
                if not thumbnail_done and when >= thumbnail_at:
                    _thumbnail(frame, thumbnail_path)
                    thumbnail_done = True
                last_frame = frame
                percent = min(99, int(100 * when / duration)) if duration else 0
                if percent > reported:
                    _report(progress_path, percent)
                    reported = percent
            if audio_in is not None:
                for resampled in resampler.resample(None):
                    _encode_audio(renditions, resampled)
                _encode_audio(renditions, None)
            if last_frame is None:
                raise MediaError("no picture in the video could be decoded")
            frame_time = float(1 / rate)
            if duration and decoded_until + frame_time < duration * TRUNCATION_SLACK:
                raise MediaError(
                    f"the video is truncated or corrupt: only {decoded_until:.1f} s "
                    f"of {duration:.1f} s could be decoded"
                )
            if not thumbnail_done:
                _thumbnail(last_frame, thumbnail_path)
            outputs = [rendition.finish() for rendition in renditions]
        except BaseException:
            for rendition in renditions:
                rendition.abandon()
            raise
    _report(progress_path, 100)
    return TranscodeResult(
        width=src_w,
        height=src_h,
        duration=duration or decoded_until,
        thumbnail=thumbnail_path,
        outputs=outputs,
    )


def _frames(container: Any, streams: list[Any]) -> Any:
    """Decoded frames of `streams` in file order; a corrupt packet is skipped, not fatal.

    A packet the decoder refuses because its picture would exceed DECODER_OPTIONS' max_pixels
    is not corruption: the decoder has already taken the new size, so say so.
    """
    video = streams[0].codec_context
    for packet in container.demux(streams):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            _check_size(video.width, video.height, midstream=True)
            continue
        yield from frames
