"""TensorBoard: `<logdir>/<study>/<name>-<run_id>/` holds one record's event file — scalars with step = epoch, the
summary as `summary/*` at the last epoch, the config as hparams with the run's success or failure — and
`<logdir>/<study>/report/` holds report.md as text, the figures as images and the law's numbers as scalars.

Event files are append-only, so the run folder's name is the key: a record that changed since it was exported has
its folder's event files replaced. A `fingerprint` file beside them says which record they hold."""
from __future__ import annotations

import struct
from pathlib import Path

from .mapping import ReportView, RunView

__all__ = ["TensorBoardExporter", "DEFAULT_LOGDIR"]

DEFAULT_LOGDIR = "runs"  # torch.utils.tensorboard's default, and what `tensorboard --logdir runs` expects
_FINGERPRINT = "fingerprint"


class TensorBoardExporter:
    def __init__(self, logdir: str | None = None):
        import tensorboard.summary.writer.event_file_writer  # noqa: F401 — a missing extra fails here, not mid-study

        self.logdir = Path(logdir or DEFAULT_LOGDIR)
        self.where = f"TensorBoard logdir {self.logdir}"
        self.logdir.mkdir(parents=True, exist_ok=True)  # an unusable logdir fails here, once

    def export_run(self, view: RunView) -> str:
        folder = self.logdir / view.study / f"{view.name}-{view.run_id}"
        state = self._prepare(folder, view.fingerprint)
        if state == "skipped":
            return state
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import summary_v2 as hp

        start = (view.start_ms or 0) / 1000
        with _Writer(folder) as w:
            w.write(hp.hparams_pb({**view.hparams, "cell": view.cell, "status": view.status}, trial_id=view.run_id,
                                  start_time_secs=start or None), 0, start)
            for epoch, row in view.history:
                w.write(Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in row.items()]), epoch,
                        (view.epoch_ms(epoch) or 0) / 1000)
            end = (view.end_ms or 0) / 1000
            w.write(Summary(value=[Summary.Value(tag=f"summary/{k}", simple_value=v) for k, v in view.summary.items()]),
                    view.epochs, end)
            w.write(_text("provenance", _table(view.tags)), 0, end)
            w.write(_session_end(view.failed), view.epochs, end)
        (folder / _FINGERPRINT).write_text(view.fingerprint + "\n")
        return state

    def export_report(self, view: ReportView) -> str:
        folder = self.logdir / view.study / "report"
        state = self._prepare(folder, view.fingerprint)
        if state == "skipped":
            return state
        from tensorboard.compat.proto.summary_pb2 import Summary

        with _Writer(folder) as w:
            if view.report_md:
                w.write(_text("report", view.report_md), 0, 0)
            if view.params:
                w.write(_text("law", _table(view.params)), 0, 0)
            if view.metrics:
                w.write(Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in view.metrics.items()]), 0, 0)
            for path in view.files:
                if path.suffix == ".png":
                    w.write(_image(f"figures/{path.stem}", path.read_bytes()), 0, 0)
        (folder / _FINGERPRINT).write_text(view.fingerprint + "\n")
        return state

    def close(self) -> None:
        pass

    @staticmethod
    def _prepare(folder: Path, fingerprint: str | None) -> str:
        """created, skipped (same fingerprint), or updated (old event files removed)."""
        events = list(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
        if not events:
            return "created"
        mark = folder / _FINGERPRINT
        if fingerprint is not None and mark.is_file() and mark.read_text().strip() == fingerprint:
            return "skipped"
        for path in events:
            path.unlink()
        mark.unlink(missing_ok=True)
        return "updated"


class _Writer:
    def __init__(self, folder: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(folder))

    def write(self, summary, step: int, wall_time: float) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._writer.add_event(Event(summary=summary, step=int(step), wall_time=wall_time))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()  # flushes


def _session_end(failed: bool):
    """The hparams plugin's end-of-session status: TensorBoard's only notion of a failed run."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    status = api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS
    data = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(status=status),
                                             version=metadata.PLUGIN_DATA_VERSION)
    return Summary(value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                                        metadata=metadata.create_summary_metadata(data))])


def _text(tag: str, markdown: str):
    from tensorboard.plugins.text.summary_v2 import text_pb

    return text_pb(tag, markdown)


def _table(values: dict) -> str:
    return "\n".join(["| key | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in values.items()])


def _image(tag: str, png: bytes):
    from tensorboard.compat.proto.summary_pb2 import Summary

    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk, right after the 8-byte signature
    image = Summary.Image(encoded_image_string=png, height=height, width=width, colorspace=4)
    return Summary(value=[Summary.Value(tag=tag, image=image)])
