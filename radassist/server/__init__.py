"""The RadAssist inference server (`radassist serve`): FastAPI + uvicorn, one job queue per process.

Needs the ``server`` extra (fastapi, uvicorn, python-multipart); the client side (radassist.client) needs only
requests. See docs/deployment.md.
"""

from radassist.server.settings import ServerSettings, ZipLimits

__all__ = ["ServerSettings", "ZipLimits"]
