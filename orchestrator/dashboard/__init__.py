"""A read-only web dashboard of a consortium (``python -m orchestrator dashboard``).

FastAPI with server-rendered Jinja2 templates and SVG charts; static files served from this
package (nothing is loaded from the internet). Data comes from :mod:`orchestrator.indexer`,
view calls and the IPFS documents the chain points to; see :mod:`orchestrator.dashboard.data`.
"""
