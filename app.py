"""x2face in the browser: a Gradio app over ``X2FacePipeline`` with four tabs.

    python app.py                      # http://127.0.0.1:7860, the bundled demo weights, GPU when present
    python app.py --share              # and a public link
    python app.py --weights you/x2face-vox --host 0.0.0.0 --port 7860

Tabs (each run is an API endpoint: ``gradio_client.Client(url).predict(..., api_name="/animate_frames")``):

1. Frame-driven ``/animate_frames``: source photo(s) (several = the multi-frame embedding) and a
   driving video, photo or webcam clip -> the animated video and source | driving | result.
2. Pose-driven ``/animate_pose``: yaw/pitch/roll sliders move a live preview (``/pose_preview``, one
   driving pass on the cached embedding); the button renders a head-motion video.
3. Audio-driven ``/animate_audio``: a photo and speech from the microphone or a file -> an MP4 with it.
4. Video editing ``/edit_video``: paint on the embedded face (``/embed_face``) or overlay a picture;
   a driving clip then renders the edited face, before and after.

Every tab with a photo has a Face menu for a photo of several people (a parameter after the endpoint's
earlier ones: "largest", "0" = leftmost, ..., "-1" = rightmost; left out, the largest). The frame-driven, live
and editing tabs also have a Relative motion box (``X2FacePipeline.drive_frames(relative=True)``) and its Motion
strength slider (``motion_scale``), the two parameters after it; ``/animate_frames`` then takes the Driving face
menu. The frame-driven, audio and editing tabs' Start at (seconds into the clip or recording) is the parameter after
those (``start``), and the frame-driven and editing tabs' "... from the frame posed most like the photo" the last
(``from_best``).

The handlers only read the widgets and call ``x2face.app_helpers`` (settings, weights and source
caches, temporary folders, render jobs), which sits on the pipeline. ``demo`` is built at import;
``launch()`` runs only under ``__main__`` (``main``). Environment: ``X2FACE_WEIGHTS``,
``X2FACE_DEVICE``, ``X2FACE_APP_MAX_SECONDS``, ``X2FACE_APP_MAX_FPS``, ``X2FACE_APP_CONCURRENCY``,
``X2FACE_APP_MAX_FILE_SIZE``.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from x2face import __version__  # noqa: E402
from x2face import app_helpers as helpers  # noqa: E402
from x2face import media  # noqa: E402
from x2face.app_helpers import (FACE_CHOICES, POSE_MOTIONS, WEIGHTS_SOURCES, AppSettings, ModelCache,  # noqa: E402
                                 SourceCache)
from x2face.control.edit import read_overlay  # noqa: E402
from x2face.control.pose import POSE_RANGE, SWEEP_AMPLITUDE, source_pose  # noqa: E402
from x2face.errors import X2FaceError  # noqa: E402
from x2face.faces import EVERY_FACE  # noqa: E402
from x2face.pipeline import MAX_MOTION_SCALE  # noqa: E402

TEMP = helpers.app_temp()  # before gradio is imported: its cache goes inside the app's own temp folder

import anyio.to_thread  # noqa: E402  (a dependency of Gradio's)
import gradio as gr  # noqa: E402
import PIL.Image  # noqa: E402

# Gradio opens uploaded photos lazily (header only); let it, so that x2face's own header check gives
# the message for a huge photo (nothing is decoded before that check).
PIL.Image.MAX_IMAGE_PIXELS = max(PIL.Image.MAX_IMAGE_PIXELS or 0, 2**32)
media.register_image_formats()  # and HEIC photos (iPhones' default) open in Gradio's upload as in x2face

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "assets" / "examples"
SETTINGS = AppSettings.from_env()
MODELS = ModelCache(SETTINGS)
SOURCES = SourceCache(MODELS)
SESSION_JOBS = helpers.SessionJobs()
JOBS = dict(concurrency_id="x2face-jobs", concurrency_limit="default")  # render jobs: --concurrency at once
LIGHT = dict(concurrency_id="x2face-preview", concurrency_limit=2)  # crops, previews, weights
TITLE = "x2face: animate a face with a video, a head pose or a voice"
LIVE_SECONDS = 300  # one live webcam stream runs at most this long (start it again for more)


def user_errors(fn):
    """Turn x2face's errors (bad input, no face, missing weights) into ``gr.Error`` messages."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except X2FaceError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except MemoryError:
            raise gr.Error("out of memory: try a shorter clip, fewer seconds or smaller photos") from None

    return wrapper


def cancellable(fn):
    """A render handler (``user_errors`` applied; its last parameter ``request: gr.Request``) run in a worker thread
    by an async wrapper, so that a job nobody waits for stops rendering at its next frame (``helpers.STOP``) instead
    of taking the CPU from the next job for up to a minute: one an API client cancels (Gradio then frees its place
    at once), or one whose browser tab was closed (``stop_session_jobs``, on Gradio's ``unload``)."""

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        stop = threading.Event()
        request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
        token = helpers.STOP.set(stop)  # (the worker runs fn in a copy of this context)
        try:
            with SESSION_JOBS.running(getattr(request, "session_hash", None), stop):
                # Gradio's own worker threads (anyio's limiter: as many as its sync handlers may use), given up at
                # once on a cancel while the render winds down on its own
                return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), abandon_on_cancel=True)
        except helpers.JobCancelled:  # (nobody sees it: its page is gone)
            raise gr.Error("the job was stopped: its page was closed", print_exception=False) from None
        except asyncio.CancelledError:
            stop.set()
            raise
        finally:
            helpers.STOP.reset(token)

    return wrapper


def stop_session_jobs(request: gr.Request):
    """A browser session ended (its tab closed or reloaded): its running renders stop."""
    SESSION_JOBS.stop(request.session_hash if request is not None else None)


def example(*names: str) -> list[str]:
    return [str(EXAMPLES / n) for n in names]


# ============================================================================================ handlers
def show_weights(spec):
    """Page load: the chooser's choice for the app's weights, and what is loaded (or why nothing is)."""
    choice, text = helpers.chooser_default(SETTINGS.weights)
    try:
        status = MODELS.get(spec).markdown()
    except X2FaceError as exc:
        status = helpers.missing_weights_markdown(exc)
    return gr.update(value=choice), gr.update(value=text), status


@user_errors
def load_weights(source, text):
    spec = helpers.weights_spec(source, text, SETTINGS)
    return spec, MODELS.get(spec).markdown()


@user_errors
def crop_sources(photos, face, spec):
    if not photos:
        return [], ("Upload one or several photos (or a short clip) of the same person; their face crops appear "
                    "here.")
    with SOURCES.get(spec, photos, face, wait=False) as pipe:
        sources = pipe.sources
        crops = [(c, n) for src in sources for c, n in zip(src.crops, src.names)]
        what = "each animated and pasted back" if len(sources) > 1 else "embedded together"
        return crops, f"{len(crops)} face crop(s) found ({pipe.source.backend} detector), {what}" + \
            (helpers.group_note(pipe) or ".")


@cancellable
@user_errors
def animate_frames(photos, video, image, paste_back, keep_audio, seconds, face, relative, strength, driving_face, spec,
                   start=0, from_best=False, progress=gr.Progress(track_tqdm=True),
                   request: gr.Request = None):
    driving = video or image
    if not driving:
        raise gr.Error("add a driving video, photo or webcam clip")
    with SOURCES.get(spec, photos, face) as pipe:
        r = helpers.animate_frames(pipe, driving, helpers.job_dir(), seconds=SETTINGS.clamp_seconds(seconds),
                                   paste_back=bool(paste_back), keep_audio=bool(keep_audio), relative=bool(relative),
                                   motion_scale=_strength(relative, strength), driving_face=driving_face,
                                   limits=SETTINGS.limits(), batch_size=SETTINGS.batch_size, max_fps=SETTINGS.max_fps,
                                   start=SETTINGS.start(start), reference=_reference(relative, from_best))
        return r.video, r.comparison, r.still, r.summary + helpers.group_note(pipe)


def _reference(relative, from_best):
    """Where relative motion counts from: the clip's frame posed most like the photo when that box is ticked."""
    return "best" if relative and from_best else "first"


def _strength(relative, strength):
    """The motion strength slider counts only with relative motion (it is greyed out without)."""
    return float(strength) if relative and strength is not None else 1.0


def _pose_values(pose):
    return [max(-lim, min(lim, round(float(a), 1))) + 0.0 for a, lim in zip(pose, POSE_RANGE)]  # + 0.0: no "-0"


@user_errors
def pose_source(photo, face, spec):
    if not photo:
        return None, 0, 0, 0, "Upload a photo; the sliders then start at the pose of its head."
    with SOURCES.get(spec, [photo], face, wait=False) as pipe:
        if pipe.model.pose is None:
            return (pipe.source.crops[0], 0, 0, 0, "These weights have no pose head, so the sliders cannot move "
                    "the face: fit one with `python -m x2face fit-pose` or choose other weights.")
        yaw, pitch, roll = _pose_values(source_pose(pipe))
        return helpers.preview(pipe.drive_pose(yaw, pitch, roll)), yaw, pitch, roll, \
            f"The head in the photo reads as yaw {yaw:g}, pitch {pitch:g}, roll {roll:g} degrees" + \
            (helpers.group_note(pipe) or ".")


@user_errors
def pose_preview(photo, yaw, pitch, roll, face, spec):
    if not photo:
        raise gr.Error("upload a photo first")
    with SOURCES.get(spec, [photo], face, wait=False) as pipe:
        return helpers.preview(pipe.drive_pose(float(yaw), float(pitch), float(roll)))


@cancellable
@user_errors
def animate_pose(photo, motion, yaw, pitch, roll, seconds, paste_back, face, spec,
                 progress=gr.Progress(track_tqdm=True), request: gr.Request = None):
    if not photo:
        raise gr.Error("upload a photo first")
    with SOURCES.get(spec, [photo], face) as pipe:
        r = helpers.animate_pose(pipe, motion, helpers.job_dir(), seconds=SETTINGS.clamp_seconds(seconds),
                                 target=(float(yaw), float(pitch), float(roll)), paste_back=bool(paste_back),
                                 batch_size=SETTINGS.batch_size)
        return r.video, r.summary + helpers.group_note(pipe)


@cancellable
@user_errors
def animate_audio(photo, audio, seconds, paste_back, face, spec, start=0, progress=gr.Progress(track_tqdm=True),
                  request: gr.Request = None):
    if not photo:
        raise gr.Error("upload a photo first")
    if not audio:
        raise gr.Error("record or upload some speech first")
    with SOURCES.get(spec, [photo], face) as pipe:
        r = helpers.animate_audio(pipe, audio, helpers.job_dir(), seconds=SETTINGS.clamp_seconds(seconds),
                                  limits=SETTINGS.limits(), paste_back=bool(paste_back), batch_size=SETTINGS.batch_size,
                                  start=SETTINGS.start(start))
        return r.video, r.summary + helpers.group_note(pipe)


@user_errors
def embed_face(photos, face, edit_face, spec):
    if not photos:
        return None, None, "Upload one or several photos of a person: their embedded face appears to paint on."
    with SOURCES.get(spec, photos, face) as pipe:
        editor, confidence, which = helpers.painting_canvas(pipe, edit_face)
        group = helpers.group_note(pipe)
    return editor, confidence, (f"Paint on the embedded face{which} (it is the face's texture: the paint will follow "
                                "the head), or choose an overlay picture, then add a driving clip and render"
                                + (group or "."))


@cancellable
@user_errors
def edit_video(photos, painting, overlay, x, y, scale, driving, seconds, face, relative, strength, driving_face,
               edit_face, spec, start=0, from_best=False, progress=gr.Progress(track_tqdm=True),
               request: gr.Request = None):
    if not driving:
        raise gr.Error("add a driving video or webcam clip")
    sticker = read_overlay(overlay, SETTINGS.max_image_pixels) if overlay else None
    with SOURCES.get(spec, photos, face) as pipe:
        r = helpers.edit_video(pipe, driving, helpers.job_dir(), seconds=SETTINGS.clamp_seconds(seconds),
                               painting=painting, overlay=sticker, position=(float(x), float(y)), scale=float(scale),
                               limits=SETTINGS.limits(), batch_size=SETTINGS.batch_size, relative=bool(relative),
                               motion_scale=_strength(relative, strength), driving_face=driving_face,
                               edit_face=edit_face, max_fps=SETTINGS.max_fps, start=SETTINGS.start(start),
                               reference=_reference(relative, from_best))
        return r.still, r.video, r.comparison, r.summary + helpers.group_note(pipe)


def live_frame(frame, photo, paste_back, session, face, relative, strength, driving_face, spec, recording=None):
    """A webcam frame (streamed) -> driving crop | result, the tracking session, a status line, the recording."""
    if frame is None:
        return gr.skip(), session, gr.skip(), recording
    if not photo:
        return None, None, "Upload a photo of a face first, then start the webcam.", recording
    recording = recording or helpers.LiveRecording()
    try:
        return *helpers.live_step(SOURCES, spec, photo, frame, session, paste_back=bool(paste_back), face=face,
                                  relative=bool(relative), motion_scale=_strength(relative, strength),
                                  driving_face=driving_face, recording=recording), recording
    except X2FaceError as exc:  # e.g. no face in the photo: say it beside the picture, not once per frame
        return None, None, str(exc), recording


@user_errors
def save_live(recording):
    r = helpers.save_live(recording, helpers.job_dir())
    return r.video, r.summary


@user_errors
def to_gif(video):
    if not video:
        raise gr.Error("render a video first")
    longest = max(SETTINGS.max_seconds, helpers.LIVE_RECORD_SECONDS) + 1.0  # a result (or a saved live recording)
    return helpers.video_gif(video, helpers.job_dir(), longest)


# ============================================================================================ layout
def _result_video(label: str, elem_id: str, loop: bool = True, height: int | None = None) -> gr.Video:
    """A result video that plays at once; not an upload slot (it also feeds its GIF button, which would make it
    one: Gradio offers uploads in any component that is an event's input)."""
    return gr.Video(label=label, autoplay=True, loop=loop, elem_id=elem_id, interactive=False, height=height)


def _gif_button(video: gr.Video, api_name: str | None = None) -> None:
    """A button under a result video that makes a looping GIF of it to share (one API name: ``/to_gif``)."""
    with gr.Row(elem_id=f"{video.elem_id}-gif"):
        button = gr.Button("Make a GIF of it (no sound)", size="sm", scale=0, min_width=200)
        gif = gr.File(label="GIF", interactive=False, visible=False, scale=1)  # shown once made
    visibility = {"api_name": api_name} if api_name else {"api_visibility": "private"}
    button.click(to_gif, video, gif, **visibility, **LIGHT).success(
        lambda: gr.File(visible=True), None, gif, api_visibility="private", queue=False)


def _seconds_slider(label="Seconds to animate", low=0.5, high=None, value=None):
    high = min(high or SETTINGS.max_seconds, SETTINGS.max_seconds)
    low = min(low, high / 2)
    value = min(value or SETTINGS.default_seconds, high)
    return gr.Slider(low, high, value=value, step=0.1, label=label, info=f"at most {high:g} s per run")


def _start_number(what="clip", elem_id=None):
    return gr.Number(0, minimum=0, step=0.5, label="Start at (seconds)", info=f"where in the {what} to begin",
                     elem_id=elem_id, min_width=140)


def _image_slot(**kwargs) -> gr.Image:
    """A ``gr.Image`` for uploads (type="filepath", image_mode=None: passed on without decoding) whose file PIL cannot
    open gets the app's one-line message: Gradio opens it before any handler runs, and its failure showed as
    Gradio's generic "error" (an empty file, a text file named .png, a sound in the photo slot). The instance's
    ``preprocess`` is wrapped, not the class subclassed: Gradio writes a ``.pyi`` file beside the module of every
    component class defined."""
    slot = gr.Image(type="filepath", image_mode=None, **kwargs)
    preprocess = slot.preprocess

    def readable(payload):
        try:
            return preprocess(payload)
        except (OSError, ValueError, SyntaxError):  # (PIL.UnidentifiedImageError is an OSError)
            name = Path(getattr(payload, "orig_name", None) or getattr(payload, "path", None) or "the file").name
            raise gr.Error(media.unsupported_image(name), print_exception=False) from None

    slot.preprocess = readable
    return slot


def _photo(label="Photo of a face", elem_id=None):
    return _image_slot(label=label, sources=["upload", "webcam", "clipboard"], height=280, elem_id=elem_id)


#: the driving-face menus' "all": each face of the group photo driven by the driving face in its place
EACH_FACE = "each face: the one in its place (with every face as the Face)"


def _face_choice(elem_id=None, label="Face (in a photo of several people)", every="every face (pasted back)"):
    """The face menu; ``every``: the label of its "all" choice, if any (the source: every face of a group photo,
    each driven and pasted back; the driving face: each face of the clip drives the photo's face in its place)."""
    choices = FACE_CHOICES + ([(every, EVERY_FACE)] if every else [])
    return gr.Dropdown(choices, value="largest", label=label, min_width=160, elem_id=elem_id)


def _relative_motion(tab, best=False):
    """The relative motion box and its strength slider (usable once the box is ticked); with ``best``, a box that
    counts the motion from the clip's frame posed most like the photo (returned third)."""
    relative = gr.Checkbox(label="Relative motion", value=False, elem_id=f"{tab}-relative",
                           info="keep the photo's own pose and head shape; move it as the driving face moves from its "
                                "first frame (start posed as the photo is" + (", or tick the box after it)" if best
                                                                             else ")"))
    strength = gr.Slider(0, MAX_MOTION_SCALE, value=1.0, step=0.1, label="Motion strength", interactive=False,
                         info="with relative motion: 1 = as much as the driving face, 2 = twice",
                         elem_id=f"{tab}-strength")
    relative.change(lambda on: gr.Slider(interactive=bool(on)), relative, strength, queue=False,
                    api_visibility="private")
    if not best:
        return relative, strength
    from_best = gr.Checkbox(label="... from the frame posed most like the photo", value=False, interactive=False,
                            info="instead of the clip's first: the frame whose driving vector is nearest the photo's; "
                                 "reliable for a clip of the same person (the clip is read twice)",
                            elem_id=f"{tab}-best")
    relative.change(lambda on: gr.Checkbox(interactive=bool(on)), relative, from_best, queue=False,
                    api_visibility="private")
    return relative, strength, from_best


def _video(label, elem_id=None):
    return gr.Video(label=label, sources=["upload", "webcam"], format=None, height=280, elem_id=elem_id)


def build_demo() -> gr.Blocks:
    """The app's ``gr.Blocks`` (not launched, queue not set: see ``main``)."""
    with gr.Blocks(title="x2face", analytics_enabled=False, delete_cache=(900, SETTINGS.cache_minutes * 60)) as demo:
        weights = gr.State(None)  # the session's weights spec (None: the app's default)
        gr.Markdown(f"# {TITLE}\nX2Face (Wiles, Koepke and Zisserman, ECCV 2018), x2face {__version__}. "
                    "Photos and clips stay on this server only while they are being used.")
        with gr.Row():
            weights_md = gr.Markdown("Loading the weights ...", elem_id="weights-status")
            with gr.Accordion("Choose weights", open=False):
                weights_source = gr.Radio(list(WEIGHTS_SOURCES), value=WEIGHTS_SOURCES[0], label="Weights")
                weights_text = gr.Textbox(label="Hub repo id (owner/name[@revision]) or folder", max_lines=1)
                load_button = gr.Button("Load weights", size="sm")

        with gr.Tabs():
            # ---------------------------------------------------------------- 1. frame-driven
            with gr.Tab("Frame-driven", id="frames"):
                with gr.Row():
                    with gr.Column():
                        f_photos = gr.File(label="Source photo(s): several photos (or a clip) of one person are "
                                                 "embedded together", file_count="multiple",
                                           file_types=["image", "video"], height=140,
                                           elem_id="frames-photos")
                        f_face = _face_choice("frames-face")
                        f_crops = gr.Gallery(label="Face crops the model sees", columns=4, height=180,
                                             object_fit="contain", interactive=False, elem_id="frames-crops")
                        f_crop_md = gr.Markdown()
                    with gr.Column():
                        f_video = _video("Driving video or webcam clip", "frames-driving")
                        f_image = _image_slot(label="... or a driving photo or animated GIF",
                                              sources=["upload", "clipboard"], height=160)
                        f_dface = _face_choice("frames-driving-face", "Driving face (in a clip of several people)",
                                               every=EACH_FACE)
                with gr.Row():
                    f_paste = gr.Checkbox(label="Paste back into the original photo", value=False)
                    f_audio = gr.Checkbox(label="Keep the driving clip's sound", value=True)
                    f_rel, f_strength, f_best = _relative_motion("frames", best=True)
                    f_seconds = _seconds_slider()
                    f_start = _start_number(elem_id="frames-start")
                f_run = gr.Button("Animate", variant="primary")
                with gr.Row():
                    f_out = _result_video("Result", "frames-result")
                    f_cmp = gr.Video(label="Source | driving | result", loop=True, elem_id="frames-comparison")
                _gif_button(f_out, "to_gif")
                f_still = gr.Image(label="Source | driving photo | result", height=200)
                f_md = gr.Markdown()
                gr.Examples([[example("photo_a.jpg", "photo_b.jpg"), str(EXAMPLES / "driving.mp4")]],
                            inputs=[f_photos, f_video], cache_examples=False, elem_id="frames-examples")
                gr.on([f_photos.change, f_face.input], crop_sources, [f_photos, f_face, weights], [f_crops, f_crop_md],
                      api_name="crop_sources", **LIGHT)
                f_run.click(animate_frames, [f_photos, f_video, f_image, f_paste, f_audio, f_seconds, f_face, f_rel,
                                             f_strength, f_dface, weights, f_start, f_best],
                            [f_out, f_cmp, f_still, f_md], api_name="animate_frames", **JOBS)

            # ---------------------------------------------------------------- live webcam
            with gr.Tab("Live webcam", id="live"):
                gr.Markdown("Your webcam drives the photo live: each frame's face is found and drives the photo's "
                            "face, shown as your face | the result. Webcam frames go to this server and are not "
                            f"kept; the results of the last {helpers.LIVE_RECORD_SECONDS} s are, for Save, until "
                            "the photo changes or you leave.")
                with gr.Row():
                    l_photo = _photo(elem_id="live-photo")
                    l_cam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy",
                                     height=280, elem_id="live-webcam")
                    l_out = gr.Image(label="Your face | the photo driven by it", height=280, format="jpeg",
                                     elem_id="live-result")
                with gr.Row():
                    l_paste = gr.Checkbox(label="Paste back into the original photo", value=False, scale=0,
                                          min_width=300)
                    l_face = _face_choice("live-face")
                    l_dface = _face_choice("live-driving-face", "Driving face (several people at the webcam)",
                                           every=EACH_FACE)
                    l_rel, l_strength = _relative_motion("live")
                    l_md = gr.Markdown(elem_id="live-status")
                l_session = gr.State(None)
                l_recording = gr.State(None, time_to_live=2 * LIVE_SECONDS)  # the last results, to save
                with gr.Row():
                    l_save = gr.Button(f"Save the last {helpers.LIVE_RECORD_SECONDS} s as a video", scale=0,
                                       min_width=300, elem_id="live-save")
                    l_video = _result_video("Saved from the live result", "live-video", height=320)
                _gif_button(l_video)
                l_save_md = gr.Markdown()
                gr.Examples([[str(EXAMPLES / "photo_a.jpg")]], inputs=[l_photo], cache_examples=False,
                            elem_id="live-examples")
                l_cam.stream(live_frame, [l_cam, l_photo, l_paste, l_session, l_face, l_rel, l_strength, l_dface,
                                          weights, l_recording],
                             [l_out, l_session, l_md, l_recording],
                             api_name="live_frame", stream_every=0.1, time_limit=LIVE_SECONDS,
                             concurrency_id="x2face-live", concurrency_limit=2, show_progress="hidden")
                l_photo.change(lambda: (None, None, "", None), None, [l_out, l_session, l_md, l_recording],
                               api_visibility="private", queue=False)
                l_save.click(save_live, [l_recording], [l_video, l_save_md], api_name="save_live", **LIGHT)

            # ---------------------------------------------------------------- 2. pose-driven
            with gr.Tab("Pose-driven", id="pose"):
                with gr.Row():
                    with gr.Column():
                        p_photo = _photo(elem_id="pose-photo")
                        p_face = _face_choice("pose-face")
                        p_md = gr.Markdown()
                    with gr.Column():
                        p_preview = gr.Image(label="Preview", height=280, elem_id="pose-preview", format="png")
                sliders = [gr.Slider(-lim, lim, value=0, step=1, label=f"{name} (degrees)", elem_id=f"pose-{name}")
                           for name, lim in zip(("yaw", "pitch", "roll"), POSE_RANGE)]
                with gr.Row():
                    p_motion = gr.Dropdown(list(POSE_MOTIONS), value=next(iter(POSE_MOTIONS)), label="Head motion")
                    p_seconds = _seconds_slider("Length (seconds)", low=1, high=10, value=3)
                    p_paste = gr.Checkbox(label="Paste back into the original photo", value=False)
                p_run = gr.Button("Render head-motion video", variant="primary")
                p_out = _result_video("Head motion", "pose-result")
                _gif_button(p_out)
                p_run_md = gr.Markdown(f"Sweeps go to +-{SWEEP_AMPLITUDE['yaw']:g} degrees of yaw, "
                                       f"+-{SWEEP_AMPLITUDE['pitch']:g} of pitch or roll, from the photo's own pose.")
                gr.Examples([[str(EXAMPLES / "photo_a.jpg")]], inputs=[p_photo], cache_examples=False,
                            elem_id="pose-examples")
                gr.on([p_photo.change, p_face.input], pose_source, [p_photo, p_face, weights],
                      [p_preview, *sliders, p_md], api_name="pose_source", **LIGHT)
                gr.on([s.input for s in sliders], pose_preview, [p_photo, *sliders, p_face, weights], p_preview,
                      api_name="pose_preview", trigger_mode="always_last", show_progress="minimal", **LIGHT)
                p_run.click(animate_pose, [p_photo, p_motion, *sliders, p_seconds, p_paste, p_face, weights],
                            [p_out, p_run_md], api_name="animate_pose", **JOBS)

            # ---------------------------------------------------------------- 3. audio-driven
            with gr.Tab("Audio-driven", id="audio"):
                with gr.Row():
                    with gr.Column():
                        a_photo = _photo()
                        a_face = _face_choice("audio-face")
                    with gr.Column():
                        a_audio = gr.Audio(label="Speech: record it or upload a file", sources=["microphone", "upload"],
                                           type="filepath")
                        with gr.Row():
                            a_seconds = _seconds_slider("Seconds of speech to use")
                            a_start = _start_number("recording", elem_id="audio-start")
                        a_paste = gr.Checkbox(label="Paste back into the original photo", value=False)
                a_run = gr.Button("Speak", variant="primary")
                a_out = _result_video("Result (with the speech)", "audio-result", loop=False)
                _gif_button(a_out)
                a_md = gr.Markdown()
                gr.Examples([[str(EXAMPLES / "photo_a.jpg"), str(EXAMPLES / "speech.wav")]], inputs=[a_photo, a_audio],
                            cache_examples=False, elem_id="audio-examples")
                a_run.click(animate_audio, [a_photo, a_audio, a_seconds, a_paste, a_face, weights, a_start],
                            [a_out, a_md],
                            api_name="animate_audio", **JOBS)

            # ---------------------------------------------------------------- 4. video editing
            with gr.Tab("Video editing", id="edit"):
                with gr.Row():
                    with gr.Column():
                        e_photos = gr.File(label="Source photo(s) or a clip of the person", file_count="multiple",
                                           file_types=["image", "video"], height=140)
                        e_face = _face_choice("edit-face")
                        e_which = gr.Dropdown([("every face", EVERY_FACE)] + FACE_CHOICES[1:], value=EVERY_FACE,
                                              label="Edit which face (with every face above)", min_width=160,
                                              elem_id="edit-which")
                        e_conf = gr.Image(label="Where the embedded face has evidence (bright)", height=200)
                        e_md = gr.Markdown()
                    with gr.Column(scale=2):
                        e_editor = gr.ImageEditor(label="Embedded face: paint on it", type="numpy", sources=[],
                                                  image_mode="RGBA", format="png", height=520, canvas_size=(512, 512),
                                                  transforms=[], layers=False, elem_id="edit-canvas")
                with gr.Row():
                    e_overlay = _image_slot(label="... or overlay a picture (PNG with transparency)",
                                            sources=["upload", "clipboard"], height=160)
                    with gr.Column():
                        e_x = gr.Slider(0, 1, value=0.5, step=0.01, label="Overlay centre x (0 = left)")
                        e_y = gr.Slider(0, 1, value=0.3, step=0.01, label="Overlay centre y (0 = top)")
                        e_scale = gr.Slider(0.05, 1.0, value=0.3, step=0.01, label="Overlay width (of the face)")
                with gr.Row():
                    e_video = _video("Driving video or webcam clip")
                    e_dface = _face_choice("edit-driving-face", "Driving face (in a clip of several people)",
                                           every=EACH_FACE)
                    e_seconds = _seconds_slider()
                    e_start = _start_number(elem_id="edit-start")
                    e_rel, e_strength, e_best = _relative_motion("edit", best=True)
                e_run = gr.Button("Render the edited face", variant="primary")
                with gr.Row():
                    e_faces = gr.Image(label="Embedded face before | after", height=200)
                    e_out = _result_video("Edited face, driven", "edit-result")
                    e_cmp = gr.Video(label="Driving | before | after", loop=True)
                _gif_button(e_out)
                e_run_md = gr.Markdown()
                gr.Examples([[example("photo_a.jpg"), str(EXAMPLES / "sticker.png"), str(EXAMPLES / "driving.mp4")]],
                            inputs=[e_photos, e_overlay, e_video], cache_examples=False, elem_id="edit-examples")
                gr.on([e_photos.change, e_face.input, e_which.input], embed_face, [e_photos, e_face, e_which, weights],
                      [e_editor, e_conf, e_md], api_name="embed_face", **LIGHT)
                e_run.click(edit_video, [e_photos, e_editor, e_overlay, e_x, e_y, e_scale, e_video, e_seconds, e_face,
                                         e_rel, e_strength, e_dface, e_which, weights, e_start, e_best],
                            [e_faces, e_out, e_cmp, e_run_md], api_name="edit_video", **JOBS)

        demo.load(show_weights, [weights], [weights_source, weights_text, weights_md], api_visibility="private")
        load_button.click(load_weights, [weights_source, weights_text], [weights, weights_md], api_name="load_weights",
                          **LIGHT)
        demo.unload(stop_session_jobs)  # a closed tab's renders stop (its queued jobs Gradio drops itself)
    return demo


demo = build_demo()
demo.queue(default_concurrency_limit=SETTINGS.concurrency, max_size=SETTINGS.queue_size)


# ============================================================================================ launching
#: Small model outputs (64-256 px) are shown filling their box.
CSS = "#pose-preview img, #frames-crops img { width: 100%; height: 100%; object-fit: contain; }"


def launch_kwargs(settings: AppSettings = SETTINGS) -> dict:
    """What ``demo.launch`` gets besides host, port and share (the tests launch with the same)."""
    return dict(max_file_size=settings.max_file_size, allowed_paths=[], run_history=False, ssr_mode=False,
                footer_links=["api", "gradio"], show_error=False, css=CSS)


def build_parser() -> argparse.ArgumentParser:
    d = AppSettings()
    p = argparse.ArgumentParser(prog="python app.py", description=f"{TITLE} (the x2face Gradio app).")
    p.add_argument("--share", action="store_true", help="also serve a public gradio.live link")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    p.add_argument("--weights", default=None,
                   help="default weights: a folder, a Hub repo 'owner/name[@rev]' or 'demo' (the bundled ones)")
    p.add_argument("--device", default=None, help="auto (default: CUDA when present, else CPU), cpu, cuda, cuda:1")
    p.add_argument("--max-file-size", default=None,
                   help=f"largest upload, e.g. 200mb (default {d.max_file_size // 2**20}mb)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help=f"most seconds of a clip one run animates (default {d.max_seconds:g})")
    p.add_argument("--max-upload-seconds", type=float, default=None,
                   help=f"refuse longer videos and recordings (default {d.max_upload_seconds:g})")
    p.add_argument("--max-fps", type=float, default=None,
                   help=f"read faster driving clips at a whole fraction of their rate within this, e.g. a 60 fps "
                        f"clip at 30 (default {d.max_fps:g})")
    p.add_argument("--concurrency", type=int, default=None, help="render jobs at once (default 1; others queue)")
    p.add_argument("--queue-size", type=int, default=None, help=f"jobs that may wait (default {d.queue_size})")
    p.add_argument("--local-weights", action=argparse.BooleanOptionalAction, default=None,
                   help="let the weights chooser load folders on this server (default: yes when it listens on this "
                        "machine only; not with --share, --host 0.0.0.0 or on a Space)")
    return p


def apply_args(args: argparse.Namespace, settings: AppSettings = SETTINGS) -> AppSettings:
    """Update ``settings`` in place (the caches hold it) from the command line."""
    given = {"weights": args.weights, "device": args.device, "max_file_size": args.max_file_size,
             "max_seconds": args.max_seconds, "max_upload_seconds": args.max_upload_seconds,
             "max_fps": args.max_fps, "concurrency": args.concurrency, "queue_size": args.queue_size}
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    local = args.local_weights if args.local_weights is not None else \
        (settings.allow_local_weights and not args.share and host in ("127.0.0.1", "localhost", "::1"))
    new = AppSettings(**{**{f.name: getattr(settings, f.name) for f in fields(AppSettings)},
                         **{k: v for k, v in given.items() if v is not None}, "allow_local_weights": local})
    for f in fields(AppSettings):
        setattr(settings, f.name, getattr(new, f.name))
    return settings


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python app.py [--share] [--host H] [--port P] [--weights W] ...``: serve the app until interrupted."""
    args = build_parser().parse_args(argv)
    try:
        apply_args(args)
    except X2FaceError as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    demo.queue(default_concurrency_limit=SETTINGS.concurrency, max_size=SETTINGS.queue_size)
    from x2face.fast import configure_cpu_threads
    from x2face.hub import pick_device

    configure_cpu_threads()  # one torch thread per physical core (X2FACE_THREADS / OMP_NUM_THREADS override it)

    try:
        where = helpers.device_label(pick_device(SETTINGS.device))
    except X2FaceError as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"x2face app: networks run on {where}; outputs in {TEMP.root}", file=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop`: close like Ctrl-C, so the temp folder is deleted
    demo.launch(share=args.share, server_name=args.host, server_port=args.port, **launch_kwargs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
