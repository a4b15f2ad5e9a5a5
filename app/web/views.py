"""``/verify``: drop a file (and its sidecar manifest) and read who signed it, when, and which
published version it is. The page calls ``POST /v1/verify``; it loads nothing from elsewhere."""

from __future__ import annotations

from flask import Blueprint, render_template

blp = Blueprint("web", __name__, template_folder="templates")


@blp.get("/verify")
def verify_page():
    """The /verify page."""
    return render_template("verify.html")
