"""`GET /api/v1/environments/<env>/export/<format>`: an export over HTTP.

JSON `{"files": {path: text}, "warnings": [...]}` by default, a zip of the files (with
the warnings file inside) when the client sends `Accept: application/zip`. Errors use the
API's shape, `{"error": {"code", "message"}}`: 404 for an unknown environment or format,
422 when the environment's files cannot be exported. Spec values stay placeholders here:
`--include-spec-values` is for the CLI, whose user has the repository anyway. Only
`resolve_env` is needed, so the blueprint is tested without a server.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from reconciler.core.errors import ReconcilerError

from . import FORMATS, ExportError, ExportSource, render

ZIP = "application/zip"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same export, the same bytes


def _error(status: int, code: str, message: str) -> Response:
    resp = jsonify({"error": {"code": code, "message": message}})
    resp.status_code = status
    return resp


def create_blueprint(
    resolve_env: Callable[[str], ExportSource | None], url_prefix: str = "/api/v1"
) -> Blueprint:
    """The export route. Mounted on its own it has no access control; nested in the API
    blueprint (`api_bp.register_blueprint(create_blueprint(resolve, url_prefix=""))`) it
    gets the API's read check and error handlers, as Flask runs a parent's hooks for its
    nested blueprints."""
    bp = Blueprint("export", __name__, url_prefix=url_prefix or None)

    @bp.get("/environments/<env>/export/<fmt>")
    def export(env: str, fmt: str) -> Response:
        if fmt not in FORMATS:
            known = ", ".join(FORMATS)
            return _error(404, "unknown_format", f"no export format {fmt!r}; one of: {known}")
        try:
            source = resolve_env(env)
            if source is None:
                return _error(404, "not_found", f"no environment named {env!r}")
            result = render(fmt, source)
        except (ExportError, ReconcilerError) as exc:
            return _error(422, "cannot_export", str(exc))
        if request.accept_mimetypes.best_match(["application/json", ZIP]) == ZIP:
            return _zip(f"{env}-{fmt}", result.files)
        return jsonify({"files": result.files, "warnings": result.warnings})

    return bp


def _zip(name: str, files: dict[str, str]) -> Response:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            info = zipfile.ZipInfo(f"{name}/{path}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"), zipfile.ZIP_DEFLATED)
    resp = Response(buffer.getvalue(), mimetype=ZIP)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return resp
